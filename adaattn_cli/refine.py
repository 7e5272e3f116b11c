"""Test-time refinement (`--refine N`): optimise the stylised picture's pixels in the encoder's feature space.

The feed-forward models are fast but, trained briefly, paint a relief-like texture. Starting from their output,
a few dozen steps of Adam on the pixels (Gatys et al. 2016, started from the model's picture instead of noise)
lower the model's own training objective for this one picture:

  style    global mean/std loss over relu1_1..relu5_1 against each style's statistics (blends: each term's
           statistics weighted by its share; masks: each region's statistics against its own style)
  local    AdaAttN's local feature loss over relu3_1..relu5_1: per position, the attention-weighted mean and
           std of the style's features (parameter-free attention on the shallow+deep keys), computed once
  content  the normalised content loss over relu4_1 and relu5_1 against the photo
  smooth   a total-variation term against pixel speckle (off: none was seen without it)

alpha keeps its meaning: the content, as its own style, takes the share 1 - alpha of every style term (as in
the feed-forward mix), and alpha = 0 leaves the model's reconstruction untouched. Masks (`region`) confine the
refinement: a pixel takes the share `region` of each step, so where no style applies it stays exactly the model's
pixel, at any size.

The start is the model's picture blurred plus the photo's own detail above that blur: the model's relief and
halos along strong edges live in its fine detail, which the objective does not remove once it is there.
Speed and memory: `--refine N` is a budget counted in steps at half size, where a step costs about a quarter of one
at full size (plan): 40 % of the steps run there, over all five encoder blocks; the coarse change is carried onto the
full-size start, which gets the remaining steps over blocks 1-4 (relu5_1's 1/16-scale map is met at the coarse
level). Pictures above `max_pixels` are refined at that working size and the change is carried up to full
resolution, so memory stays bounded; pixels that take no step (outside the masks, still video pixels) keep their
start exactly there too. Video frames after the first take N steps at their working size.
Style targets are computed once per style and working size (a batch reuses them). Video frames carry over
the previous refined frame (Carried, video_filters.FrameRefiner).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import functional as fn
from .attention import select_positions
from .losses import LOCAL_MAX_POSITIONS  # the local loss's cap on attended style positions, as in training

STYLE_LAYERS = (1, 2, 3, 4, 5)
LOCAL_LAYERS = (3, 4, 5)
CONTENT_LAYERS = (4, 5)


@dataclass(frozen=True)
class RefineSettings:
    """Weights of the objective's terms (the style term has weight 1) and the schedule."""

    content_weight: float = 125.0
    frame_content_weight: float = 100.0  # video frames after the first (with the temporal term; docs/video.md)
    local_weight: float = 0.1
    smooth_weight: float = 0.0
    learning_rate: float = 0.02
    # share of the steps run at coarse_scale: 0.4-0.6 keeps the photo better than 0.7 for the same time per picture,
    # with the same or less style loss (docs/performance.md, "Half the steps at half size", "relu5_1 at the coarse level")
    coarse_share: float = 0.4
    coarse_scale: float = 0.5
    min_coarse_side: int = 128  # no coarse level when it would be smaller than this
    # The deepest encoder block of the full-size steps after a coarse level, and of video frames after the first:
    # relu5_1's terms (a 1/16-scale map) are met at the coarse level (the first frame's, carried), and at full size
    # its three convs are a sixth of a step and hold the style back (docs/performance.md, "relu5_1 at the coarse
    # level only").
    full_size_depth: int = 4
    # working size cap, beyond which the change is carried up to full resolution: refining a 1024x1024 picture
    # at full size peaks at 2.7x the feed-forward path's memory, at 768x768 at 2.1x (bench/stylize_speed.py)
    max_pixels: int = 640 * 640
    start_blur: float = 8.0  # sigma (px at 512 px) of a blur of the start: the model's relief is not kept
    # A budget below this blurs the start less, in proportion: a few steps cannot paint back the texture a full blur
    # takes (docs/performance.md, "A start blurred less for small budgets").
    full_blur_budget: int = 50
    photo_detail: float = 1.0  # share of the photo's detail (above start_blur) added to the blurred start
    # video (Carried): weight of the mean squared difference from the previous refined frame where it is carried
    temporal_weight: float = 1e4


@dataclass
class Carried:
    """What a video frame takes over from the previous refined frame (video_filters.FrameRefiner), all [1, C, H, W]
    at the frame's size: `picture` (that frame, carried along the motion), `weight` (where it holds, in [0, 1]: the start
    there and the temporal term's mask) and `step_scale` (the share of each optimisation step a pixel takes: Adam
    moves every pixel by about the learning rate per step, however small its gradient, so the temporal term alone
    cannot keep carried pixels steady; 0 keeps `picture` exactly, at any working size). `blur`: the sigma of the
    start's blur (start_blur), the first frame's, so that what appears later starts as the first frame did."""

    picture: torch.Tensor
    weight: torch.Tensor
    step_scale: torch.Tensor
    blur: float


@dataclass
class StyleTargets:
    """One style seen at one working size: per layer, the features' statistics; per local layer, its sampled
    shallow+deep keys and values."""

    means: list[torch.Tensor]
    stds: list[torch.Tensor]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def _resize(image: torch.Tensor, size) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def _scaled_size(size, scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _weighted_mean_std(features: torch.Tensor, weight) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel statistics of [1, C, h, w] features, over the positions weighted by `weight` (a float: all alike),
    estimated as the style's own: an all-white mask gives the statistics of no mask."""
    if isinstance(weight, float):
        return fn.mean_std(features)
    return fn.weighted_mean_std(features, _layer_weight(weight, features))


def _share(weight) -> float | torch.Tensor:
    return weight if isinstance(weight, float) else weight.mean()


class Refiner:
    """Refines pictures with a frozen encoder; `precision` "bf16" runs the encoder under bf16 autocast."""

    def __init__(self, encoder, *, precision: str = "fp32", settings: RefineSettings | None = None):
        self.encoder = encoder
        self.precision = precision
        self.settings = settings or RefineSettings()
        self.device = encoder.input_weight.device

    def _autocast(self):
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def features(self, image: torch.Tensor, depth: int = 5) -> list[torch.Tensor]:
        """The encoder's taps relu1_1..relu{depth}_1 of `image`, in fp32."""
        with self._autocast():
            return [f.float() for f in self.encoder(image.to(self.device, memory_format=torch.channels_last), depth)]

    @torch.no_grad()
    def style_targets(self, style_image: torch.Tensor, scale: float, seed: int, mask: torch.Tensor | None = None) -> StyleTargets:
        """Targets of a style [3, h, w] resized by `scale` (the content's working scale, so strokes keep their size);
        `mask` [h, w]: only the style's pixels where it is above 0.5 count, as in the model's attention."""
        image = _resize(style_image[None].to(self.device), _scaled_size(style_image.shape[-2:], scale))
        features = self.features(image)
        if mask is None:
            means, stds = zip(*(fn.mean_std(f) for f in features))
        else:
            inside = (mask.to(self.device).float() > 0.5).float()[None, None]
            weights = [F.interpolate(inside, size=f.shape[-2:], mode="nearest") for f in features]
            means, stds = zip(*(fn.weighted_mean_std(f, w) for f, w in zip(features, weights)))
        generator = torch.Generator().manual_seed(seed)
        keys, values = [], []
        for layer in LOCAL_LAYERS:
            value, key = select_positions(
                [features[layer - 1], fn.shallow_deep_key(features[:layer])],
                cap=LOCAL_MAX_POSITIONS,
                generator=generator,
                mask=mask,
            )
            keys.append(key)
            values.append(value.transpose(1, 2))
        return StyleTargets(list(means), list(stds), keys, values)

    def refine(
        self,
        content: torch.Tensor,
        start: torch.Tensor,
        terms: list[tuple[Callable[[float], StyleTargets], float | torch.Tensor]],
        content_as_style_weight: float | torch.Tensor | None,
        steps: int,
        progress: Callable[[int, int], None] | None = None,
        previous: Carried | None = None,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refine `start` [1, 3, H, W] (the model's picture of `content`) with `steps` (`--refine N`): a picture's
        budget (plan), or with `previous` (a video frame) that many steps at the working size.

        terms: (targets of a style at a scale, weight) with float weights or [1, 1, H, W] maps;
        content_as_style_weight: the share of the content as its own style (None: none). previous (video): what the
        frame takes over from the previous refined frame; all steps then run at the working size. region: [1, 1, H, W]
        in [0, 1], where the styles apply (masks; None: everywhere): the share of each step a pixel takes, so that
        pixels outside it stay exactly as in `start`. Returns [1, 3, H, W] in [0, 1] on the refiner's device.
        """
        if steps <= 0:
            return start
        settings = self.settings
        height, width = start.shape[-2:]
        work_scale = min(1.0, math.sqrt(settings.max_pixels / (height * width)))
        coarse_scale = work_scale * settings.coarse_scale
        if previous is not None:
            coarse_steps, full_steps = 0, steps
        else:
            coarse_steps, full_steps = plan(steps, min(_scaled_size((height, width), coarse_scale)) >= settings.min_coarse_side, settings)
        # (scale, steps, the encoder's depth) of each level
        full_depth = settings.full_size_depth if coarse_steps or previous is not None else 5
        levels = [(coarse_scale, coarse_steps, 5), (work_scale, full_steps, full_depth)]
        levels = [level for level in levels if level[1] > 0]
        total, done = coarse_steps + full_steps, 0
        content_weight = settings.content_weight if previous is None else settings.frame_content_weight

        def step_done() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        picture, photo = start.to(self.device).float(), content.to(self.device).float()
        start = picture
        blur = previous.blur if previous is not None else start_blur(steps, settings)
        if blur:
            sigma = blur * max(height, width) / 512
            start = fn.gaussian_blur(start, sigma)
            if settings.photo_detail:
                start = start + settings.photo_detail * (photo - fn.gaussian_blur(photo, sigma))
        # The full-size start and the share of each step each pixel takes (None: all of it). Every level works on a
        # resized copy of this start, and at the end the pixels that take no step are this start exactly: at a
        # working size below full resolution the change carried up would otherwise reach them too.
        step_scale = None
        if previous is not None:
            held, weight = (t.to(self.device).float() for t in (previous.picture, previous.weight))
            start = torch.lerp(start, held, weight)
            step_scale = previous.step_scale.to(self.device).float()
        if region is not None:
            region = region.to(self.device).float()
            start = torch.lerp(picture, start, region)  # outside the styles' region: the model's pixel
            step_scale = region if step_scale is None else step_scale * region
        current = None  # the picture at the previous level's size
        for scale, count, depth in levels:
            size = _scaled_size((height, width), scale)
            level_start = _resize(start, size)
            image = level_start if current is None else _with_change(start, current, size)  # the coarse change carried
            level_scale = None if step_scale is None else _resize(step_scale, size)
            if level_scale is not None:
                image = torch.where(level_scale > 0, image, level_start)
            objective = self.objective(_resize(photo, size), terms, content_as_style_weight, scale, depth, content_weight)
            if previous is not None:
                objective = _with_temporal_term(objective, _resize(held, size), _resize(weight, size), settings.temporal_weight)
            current = self._optimise(image.clamp(0, 1), objective, count, step_done, level_scale)
        assert current is not None  # steps > 0: at least one level ran
        if current.shape[-2:] != (height, width):  # the working size's change carried up to full resolution
            current = _with_change(start, current, (height, width))
        if step_scale is not None:
            current = torch.where(step_scale > 0, current, start)
        return current.clamp(0, 1)

    def _optimise(self, image: torch.Tensor, objective, count: int, step_done, step_scale=None) -> torch.Tensor:
        """Adam on the pixels; step_scale [1, 1, H, W]: the share of each step a pixel takes (None: all)."""
        image = image.detach().clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        optimizer = torch.optim.Adam([image], lr=self.settings.learning_rate)
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            objective(image).backward()
            before = None if step_scale is None else image.detach().clone()
            optimizer.step()
            with torch.no_grad():
                if before is not None:
                    image.copy_(torch.lerp(before, image, step_scale))
                image.clamp_(0, 1)
            step_done()
        return image.detach()

    @torch.no_grad()
    def objective(
        self, content: torch.Tensor, terms, content_as_style_weight, scale: float, depth: int = 5, content_weight: float | None = None
    ):
        """The loss of a picture at this level, over the encoder's blocks up to `depth` (content_weight: None, the
        settings'): targets computed once here, only the picture's side per step."""
        settings = self.settings
        content_weight = settings.content_weight if content_weight is None else content_weight
        style_layers, local_layers, content_layers = (
            [layer for layer in layers if layer <= depth] for layers in (STYLE_LAYERS, LOCAL_LAYERS, CONTENT_LAYERS)
        )
        content_features = self.features(content, depth)
        size = content.shape[-2:]
        # (statistics per layer, weight) of each term, the content as its own style when it has a share; and per
        # local layer, the sum of the terms' weighted targets
        stat_terms: list[tuple[list[torch.Tensor], list[torch.Tensor], float | torch.Tensor]] = []
        local_targets = [torch.zeros((), device=self.device) for _ in local_layers]
        for make_targets, weight in terms:
            targets = make_targets(scale)
            weight = weight if isinstance(weight, float) else _resize(weight.to(self.device).float(), size)
            stat_terms.append((targets.means, targets.stds, weight))
            for i, layer in enumerate(local_layers):
                target = self._local_target(content_features, layer, targets.keys[i], targets.values[i])
                local_targets[i] = local_targets[i] + _layer_weight(weight, target) * target
        if content_as_style_weight is not None:
            weight = content_as_style_weight
            weight = weight if isinstance(weight, float) else _resize(weight.to(self.device).float(), size)
            own = [_weighted_mean_std(f, weight) for f in content_features]
            stat_terms.append(([m for m, _ in own], [s for _, s in own], weight))
            for i, layer in enumerate(local_layers):
                feature = content_features[layer - 1]
                local_targets[i] = local_targets[i] + _layer_weight(weight, feature) * feature
        content_norms = [fn.mean_variance_norm(content_features[layer - 1]) for layer in content_layers]
        del content_features

        def objective(image: torch.Tensor) -> torch.Tensor:
            features = self.features(image, depth)
            style = fn.sum_terms(
                _share(weight)
                * fn.sum_terms(
                    F.mse_loss(mean, means[layer - 1]) + F.mse_loss(std, stds[layer - 1])
                    for layer in style_layers
                    for mean, std in [_weighted_mean_std(features[layer - 1], weight)]
                )
                for means, stds, weight in stat_terms
            )
            local = fn.sum_terms(F.mse_loss(features[layer - 1], target) for layer, target in zip(local_layers, local_targets))
            content_loss = fn.sum_terms(
                F.mse_loss(fn.mean_variance_norm(features[layer - 1]), norm) for layer, norm in zip(content_layers, content_norms)
            )
            loss = style + settings.local_weight * local + content_weight * content_loss
            if settings.smooth_weight:
                loss = loss + settings.smooth_weight * _total_variation(image)
            return loss

        return objective

    def _local_target(self, content_features, layer: int, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """S * Norm(F_c) + M at one layer: the attention-weighted statistics of the style's features."""
        feature = content_features[layer - 1]
        batch, channels, height, width = feature.shape
        query = fn.shallow_deep_key(content_features[:layer]).flatten(2).transpose(1, 2)
        matmul_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32  # as the models' attention
        mean, std = fn.attention_mean_std(query, key, value, matmul_dtype=matmul_dtype)
        mean, std = (t.transpose(1, 2).reshape(batch, channels, height, width) for t in (mean, std))
        return std * fn.mean_variance_norm(feature) + mean


def plan(budget: int, coarse: bool, settings: RefineSettings) -> tuple[int, int]:
    """(coarse steps, full-size steps) that a picture's budget `--refine N` buys. N is counted in steps at the coarse
    level; a step at the working size costs 1 / coarse_scale**2 of them (4 at half size), as its pixels do. So N sets
    the time whatever the schedule, and the schedule can change without changing what N costs. `coarse`: whether the
    picture has a coarse level (small pictures have none: all at the working size). At least one full-size step."""
    full_cost = 1 / settings.coarse_scale**2
    if not coarse:
        return 0, max(1, round(budget / full_cost))
    steps = budget / (settings.coarse_share + (1 - settings.coarse_share) * full_cost)
    coarse_steps = round(steps * settings.coarse_share)
    return coarse_steps, max(1, round(steps) - coarse_steps)


def start_blur(budget: int, settings: RefineSettings) -> float:
    """The sigma (px at 512 px) of the blur of a picture's start for the budget `--refine N`."""
    return settings.start_blur * min(1.0, budget / settings.full_blur_budget)


def _with_change(start: torch.Tensor, current: torch.Tensor, size) -> torch.Tensor:
    """`start` at `size` plus the change that `current` (a refined copy of it at another size) made to it."""
    return _resize(start, size) + _resize(current - _resize(start, current.shape[-2:]), size)


def _with_temporal_term(objective, held: torch.Tensor, still: torch.Tensor, weight: float):
    def temporal_objective(image: torch.Tensor) -> torch.Tensor:
        return objective(image) + weight * (still * (image - held).square()).mean()

    return temporal_objective


def _layer_weight(weight, feature: torch.Tensor):
    """A term's weight at a layer's resolution."""
    return weight if isinstance(weight, float) else F.interpolate(weight, size=feature.shape[-2:], mode="area")


def _total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
