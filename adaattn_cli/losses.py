"""Training losses of the four methods and, per method, the losses of one training step.

AdaAttN's global style and local feature losses, its video variant's image similarity, the content, style and
identity losses of AdaIN and SANet, warp consistency and colour distillation.

Layers are given as relu indices: 1 = relu1_1 ... 5 = relu5_1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import functional as fn
from .attention import select_positions
from .methods import get_method
from .models import StyleTransferModel

# Style positions the local feature loss attends to at each layer (a random subset beyond it), as in the authors' code.
LOCAL_MAX_POSITIONS = 4096


def global_style_loss(output: list[torch.Tensor], style: list[torch.Tensor], layers, weights=()) -> torch.Tensor:
    """sum over layers of w * (MSE(mu(out), mu(style)) + MSE(sigma(out), sigma(style))), w = 1 unless `weights`
    (one per layer) says otherwise."""
    terms = []
    for layer, weight in zip(layers, weights or [1.0] * len(layers), strict=True):
        out_mean, out_std = fn.mean_std(output[layer - 1])
        style_mean, style_std = fn.mean_std(style[layer - 1])
        terms.append(weight * (F.mse_loss(out_mean, style_mean) + F.mse_loss(out_std, style_std)))
    return fn.sum_terms(terms)


def normalised_content_loss(output: list[torch.Tensor], content: list[torch.Tensor], layers) -> torch.Tensor:
    """sum over layers of MSE(Norm(out), Norm(content)) (SANet's content loss; AdaAttN's ablation)."""
    return fn.sum_terms(F.mse_loss(fn.mean_variance_norm(output[i - 1]), fn.mean_variance_norm(content[i - 1])) for i in layers)


def local_feature_loss(
    output: list[torch.Tensor],
    content: list[torch.Tensor],
    style: list[torch.Tensor],
    layers,
    *,
    max_positions=LOCAL_MAX_POSITIONS,
    generator=None,
) -> torch.Tensor:
    """AdaAttN's local feature loss: the output's features should equal a parameter-free AdaAttN of the
    encoder features (keys = normalised shallow+deep features, values = raw style features)."""
    terms = []
    for layer in layers:
        content_key = fn.shallow_deep_key(content[:layer])
        style_value, style_key = select_positions(
            [style[layer - 1], fn.shallow_deep_key(style[:layer])], cap=max_positions, generator=generator, mask=None
        )
        batch, channels, height, width = content[layer - 1].shape
        mean, std = fn.attention_mean_std(content_key.flatten(2).transpose(1, 2), style_key, style_value.transpose(1, 2))
        mean, std = (t.transpose(1, 2).reshape(batch, channels, height, width) for t in (mean, std))
        target = std * fn.mean_variance_norm(content[layer - 1]) + mean
        terms.append(F.mse_loss(output[layer - 1], target.detach()))
    return fn.sum_terms(terms)


def cosine_distance_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B, C, n] x [B, C, m] -> [B, n, m] of 1 - cos between every position of a and every position of b."""
    a = a / (a.norm(dim=1, keepdim=True) + 1e-8)
    b = b / (b.norm(dim=1, keepdim=True) + 1e-8)
    return 1.0 - torch.bmm(a.transpose(1, 2), b)


def image_similarity_loss(
    content_pair: tuple[list, list], output_pair: tuple[list, list], layers, *, max_positions=1024, generator=None
) -> torch.Tensor:
    """Temporal image-similarity loss of AdaAttN's video variant: the stylised pair must keep the content pair's relative
    cosine-distance structure. D_ij = 1 - cos(F_u^i, F_v^j), normalised per column, compared by L1.
    Positions are subsampled (the same ones for content and output) so memory stays bounded."""
    terms = []
    for layer in layers:
        c1, c2 = content_pair[0][layer - 1], content_pair[1][layer - 1]
        o1, o2 = output_pair[0][layer - 1], output_pair[1][layer - 1]
        c1, o1 = select_positions([c1, o1], cap=max_positions, generator=generator, mask=None)
        c2, o2 = select_positions([c2, o2], cap=max_positions, generator=generator, mask=None)
        distances = []
        for u, v in ((c1, c2), (o1, o2)):
            d = cosine_distance_matrix(u, v)
            distances.append(d / (d.sum(dim=1, keepdim=True) + 1e-8))
        terms.append((distances[0].detach() - distances[1]).abs().sum(dim=(1, 2)).mean() / distances[0].shape[1])
    return fn.sum_terms(terms)


def warp_consistency_loss(output: torch.Tensor, second_output: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Mean |O2 - warp(O1)| where the second content is the first warped by a known `motion` (data.shifted_view):
    the synthetic-flow temporal loss of ReReVST (Wang et al. 2020), i.e. the warping error of bench/temporal.py
    with exact flow. Pixels whose source falls outside the first frame (reflected in the view) are not counted.
    Averaged per sample, then over the batch, so that several processes' slices of a batch give its loss."""
    valid = fn.warp(torch.ones_like(output[:, :1]), motion) > 0.999
    output, second_output = output.float(), second_output.float()
    difference = (second_output - fn.warp(output, motion)).abs().mean(dim=1, keepdim=True)
    per_sample = (difference * valid).sum(dim=(1, 2, 3)) / valid.sum(dim=(1, 2, 3)).clamp_min(1)
    return per_sample.mean()


def colour_distillation_loss(output: torch.Tensor, teacher_output: torch.Tensor, scale: int) -> torch.Tensor:
    """Mean |avgpool(O) - avgpool(T)| over scale x scale blocks: the trained model's coarse colour field should be a
    teacher model's (train --teacher). At 1/8 resolution it carries where the palette goes, not the fine texture
    whose frame-to-frame changes are the flicker the video model is trained to avoid."""
    return F.l1_loss(F.avg_pool2d(output.float(), scale, ceil_mode=True), F.avg_pool2d(teacher_output.float(), scale, ceil_mode=True))


def palette_loss(output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """MSE between the mean RGB of O and of S ([0, 1] pixels): the painting's colour as a whole. The local term
    answers each region with the colours its attention finds there, so nothing else pulls the picture's overall
    colour toward the painting's, and that cast is two thirds of the model's style loss (docs/training.md)."""
    return F.mse_loss(output.float().mean(dim=(2, 3)), style.float().mean(dim=(2, 3)))


def distillation_loss(output: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """Mean |O - R| against a refined picture R of the same pair (train --teacher-set, teacher_set.py): the answer
    that `--refine` reaches for this very pair, pixel by pixel, without the relief and halos of the model's own."""
    return F.l1_loss(output.float(), refined.float())


def feature_distillation_loss(output: list[torch.Tensor], refined: list[torch.Tensor], layers) -> torch.Tensor:
    """sum over layers of MSE(F(O), F(R)): the refined picture's strokes and edges as the encoder sees them, which
    tolerates the sub-pixel shifts of a texture that the pixel term would average into blur."""
    return fn.sum_terms(F.mse_loss(output[i - 1].float(), refined[i - 1].float()) for i in layers)


# Earlier names of renamed losses: configs read back from JSON (a checkpoint's config, a model file's
# provenance) and the log lines of a run resumed across the rename still load.
_EARLIER_NAMES = {"identity1": "identity_pixels", "identity2": "identity_features"}


def with_current_names(values: dict) -> dict:
    """`values` keyed by today's loss names (a LossConfig's fields, a log line's losses)."""
    return {_EARLIER_NAMES.get(k, k): v for k, v in values.items()}


@dataclass
class LossConfig:
    """Loss weights and layers for one method; the defaults per method follow each method's reference training code."""

    style: float = 10.0
    local: float = 0.0
    content: float = 0.0
    identity_pixels: float = 0.0  # SANet's identity losses: the content (style) as its own style redraws its pixels
    identity_features: float = 0.0  # ... and its encoder features
    similarity: float = 0.0
    warp: float = 0.0
    teacher: float = 0.0  # colour distillation from TrainConfig.teacher's outputs
    teacher_scale: int = 8
    distill: float = 0.0  # pixels of the teacher set's refined pictures (TrainConfig.teacher_set)
    distill_features: float = 0.0  # ... and their encoder features at distill_layers
    distill_layers: tuple = (1, 2, 3)
    colour: float = 0.0  # the output's mean RGB against the style image's (palette_loss)
    style_layers: tuple = (2, 3, 4, 5)
    style_layer_weights: tuple = ()  # one per style layer; () = 1 each
    local_layers: tuple = (2, 3, 4, 5)
    content_layers: tuple = (4, 5)
    similarity_layers: tuple = (2, 3, 4)
    local_max_positions: int = LOCAL_MAX_POSITIONS
    similarity_max_positions: int = 1024

    @classmethod
    def for_method(cls, method: str) -> "LossConfig":
        """The losses of a registered method (methods.py) with their default weights."""
        return cls(**get_method(method).losses)

    @classmethod
    def from_dict(cls, values: dict) -> "LossConfig":
        """A LossConfig from its asdict() form read back from JSON (lists for tuples; earlier field names accepted)."""
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in with_current_names(values).items()}
        return cls(**fields)


def training_losses(
    model: StyleTransferModel, batch: dict[str, torch.Tensor], config: LossConfig, generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Unweighted loss terms of one step and the stylised output (for sample sheets)."""
    encoder = model.encoder
    content, style = batch["content"], batch["style"]
    content_enc, style_enc = model.encode(content), model.encode(style)
    memory = model.memorize(style_enc, generator=generator)
    transferred = model.transfer(content_enc, memory)
    output = model.decode(transferred)
    output_feats = encoder(output, 5)
    content_feats = encoder(content, 5) if len(content_enc.features) < 5 else content_enc.features
    style_feats = encoder(style, 5) if len(style_enc.features) < 5 else style_enc.features
    terms = {}
    if config.style:
        terms["style"] = global_style_loss(output_feats, style_feats, config.style_layers, config.style_layer_weights)
    if config.local:
        terms["local"] = local_feature_loss(
            output_feats, content_feats, style_feats, config.local_layers, max_positions=config.local_max_positions, generator=generator
        )
    if config.content:
        if get_method(model.method).content_target == "transferred":  # AdaIN's form: re-encode to the transferred features
            terms["content"] = F.mse_loss(output_feats[3], transferred[0].detach())
        else:
            terms["content"] = normalised_content_loss(output_feats, content_feats, config.content_layers)
    if config.identity_pixels or config.identity_features:
        identity_content = model.decode(model.transfer(content_enc, model.memorize(content_enc, generator=generator)))
        identity_style = model.decode(model.transfer(style_enc, model.memorize(style_enc, generator=generator)))
        terms["identity_pixels"] = F.mse_loss(identity_content, content) + F.mse_loss(identity_style, style)
        pairs = ((encoder(identity_content, 5), content_feats), (encoder(identity_style, 5), style_feats))
        terms["identity_features"] = fn.sum_terms(F.mse_loss(a, b) for out, ref in pairs for a, b in zip(out, ref))
    if config.similarity or config.warp:
        second = batch["content2"]
        second_output = model.decode(model.transfer(model.encode(second), memory))
    if config.similarity:
        terms["similarity"] = image_similarity_loss(
            (content_feats, encoder(second, 5)),
            (output_feats, encoder(second_output, 5)),
            config.similarity_layers,
            max_positions=config.similarity_max_positions,
            generator=generator,
        )
    if config.warp:
        terms["warp"] = warp_consistency_loss(output, second_output, batch["motion"])
    if config.teacher:
        terms["teacher"] = colour_distillation_loss(output, batch["teacher"], config.teacher_scale)
    if config.colour:
        terms["colour"] = palette_loss(output, style)
    if config.distill:
        terms["distill"] = distillation_loss(output, batch["refined"])
    if config.distill_features:
        with torch.no_grad():
            refined_feats = encoder(batch["refined"], max(config.distill_layers))
        terms["distill_features"] = feature_distillation_loss(output_feats, refined_feats, config.distill_layers)
    weights = {
        "style": config.style,
        "local": config.local,
        "content": config.content,
        "identity_pixels": config.identity_pixels,
        "identity_features": config.identity_features,
        "similarity": config.similarity,
        "warp": config.warp,
        "teacher": config.teacher,
        "distill": config.distill,
        "distill_features": config.distill_features,
        "colour": config.colour,
    }
    total = fn.sum_terms(weights[name] * value for name, value in terms.items())
    return {"total": total, **terms}, output
