"""Inference API: what the CLI calls. No Typer or Rich here.

    stylizer = Stylizer.load("adaattn", device="auto")            # precision "auto": bf16 where it pays
    style = stylizer.encode_style(style_image, seed=0)          # once per style
    result = stylizer.stylize(content_image, [style], alpha=0.8)  # [3, H, W] in [0, 1]

Alpha, blending and masks are one mechanism: per block, the output is a per-position weighted sum of
the block outputs for each style and for the content used as its own style (the model's reconstruction
of the content). alpha=1 without masks is exactly the plain model; alpha=0 its reconstruction.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import functional as fn
from . import tiling
from .attention import StyleMemory
from .config import DEFAULT_STYLE_POSITIONS
from .devices import pick_device, resolve_precision
from .errors import BadInputError
from .models import StyleTransferModel
from .refine import Carried, Refiner, RefineSettings, StyleTargets
from .weights import load_model

MIN_SIDE = 32  # relu5_1 is 1/16 of the input; reflection-padded convs there need at least 2 pixels
# Contents above this many pixels run in tiles of AUTO_TILE px (tiling.py: same result, memory bounded by the
# tile): one pass's peak memory grows with the image, 2048-px tiles keep it at a few GiB whatever the image size
# (see docs/performance.md, "Large images").
AUTO_TILE_PIXELS, AUTO_TILE = 4096 * 4096, 2048


def check_image(image: torch.Tensor, what: str) -> torch.Tensor:
    """[3, H, W] or [B, 3, H, W] float in [0, 1] -> [B, 3, H, W]; rejects tiny images with a clear message."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[1] != 3:
        raise BadInputError(f"{what}: expected an RGB image tensor [3, H, W], got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if min(height, width) < MIN_SIDE:
        raise BadInputError(f"{what} is {width}x{height} pixels; each side must be at least {MIN_SIDE}")
    if not bool(torch.isfinite(image).all()):
        raise BadInputError(f"{what} holds NaN or infinite values")
    return image


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad right/bottom up to a multiple of `multiple` (reflection: no hard edge for the convs to see)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")


@dataclass
class Style:
    """A style encoded once: the model's memory of it (sampled positions included) and its image."""

    memory: list[StyleMemory]
    image: torch.Tensor
    seed: int
    # refinement targets per working scale, computed on first use (a batch refines against them once)
    refine_targets: dict[float, StyleTargets] = field(default_factory=dict, repr=False)


class Stylizer:
    """Runs a model for inference. It owns the model it is given (it moves and configures it).

    precision: "fp32" (exact), "bf16" (bf16 convs and attention matmuls, moments combined in fp32: about
    2-3x faster on CPUs with avx512_bf16, outputs within bf16 tolerance) or "auto" (bf16 where it pays).
    style_positions: cap on the style positions each attention block attends to (random subset drawn
    from the style's seed); None keeps the model's own caps.
    tile_size: contents larger than this many pixels per side run in tiles of that size (bounded memory,
    same result; tiling.py); 0 = never; None = AUTO_TILE above AUTO_TILE_PIXELS.
    """

    def __init__(
        self,
        model: StyleTransferModel,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        style_positions: int | None = None,
        tile_size: int | None = None,
        refine_settings: RefineSettings | None = None,
    ):
        self.tile_size = tile_size
        self.device = pick_device(device) if isinstance(device, str) else device
        self.precision = resolve_precision(precision, self.device)
        # channels_last: oneDNN and cuDNN run 3x3 convs faster on NHWC tensors, in fp32 too. bf16 weights when
        # fast: autocast would cast them to bf16 at every call anyway (same results, less time: docs/performance.md).
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.model = model.to(self.device, dtype=dtype, memory_format=torch.channels_last).eval()
        matmul_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.model.configure_inference(matmul_dtype=matmul_dtype, style_positions=style_positions)
        self.refiner = Refiner(self.model.encoder, precision=self.precision, settings=refine_settings)

    @classmethod
    def load(
        cls,
        model: str = "adaattn",
        *,
        device: str = "auto",
        precision: str = "auto",
        style_positions: int | None = DEFAULT_STYLE_POSITIONS,
    ) -> "Stylizer":
        return cls(load_model(model), device=device, precision=precision, style_positions=style_positions)

    def _autocast(self):
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _encode(self, image: torch.Tensor):
        with self._autocast():
            return self.model.encode(image.to(self.device, memory_format=torch.channels_last))

    @torch.inference_mode()
    def encode_style(self, image: torch.Tensor, *, seed: int = 0, mask: torch.Tensor | None = None) -> Style:
        """Encode a style image [3, h, w]; `mask` [h, w] restricts which style pixels may be attended to."""
        image = check_image(image, "style image")
        generator = torch.Generator().manual_seed(seed)  # private: the global RNG is never reseeded
        encoded = self._encode(image)
        with self._autocast():
            memory = self.model.memorize(encoded, generator=generator, mask=None if mask is None else mask.to(self.device))
        return Style(memory, image[0].cpu(), seed)

    @torch.inference_mode()
    def stylize(
        self,
        content: torch.Tensor,
        styles: list[Style | torch.Tensor],
        *,
        weights: list[float] | None = None,
        alpha: float = 1.0,
        masks: list[torch.Tensor | None] | None = None,
        preserve_color: bool = False,
        seed: int = 0,
        progress=None,
        refine: int = 0,
        refine_progress=None,
    ) -> torch.Tensor:
        """Stylise content [3, H, W] (or a batch) with one or more styles; returns the same size, clamped to [0, 1].

        weights: blend of the styles (normalised to sum 1). masks: per style, an [H, W] map of where it applies
        (content outside every mask keeps the content's own statistics). alpha: 1 = full style, 0 = the model's
        reconstruction of the content. preserve_color: recolour each style with the content's palette first.
        progress(done, total): called after each tile when the content runs in tiles.
        refine: steps of test-time refinement of the model's picture (Stylizer.refine; 0 = the model's picture);
        refine_progress(done, total) is called after each step.
        """
        content = check_image(content, "content image").to(self.device)
        weights, masks = _checked_mix(styles, weights, alpha, masks, content.shape[-2:])
        height, width = content.shape[-2:]
        padded = pad_to_multiple(content, self.model.size_multiple)
        if preserve_color:
            if content.shape[0] != 1:
                raise BadInputError("preserve_color works on one content image at a time")
            styles = [fn.coral(s.image if isinstance(s, Style) else s, content[0].cpu()) for s in styles]
        styles = [s if isinstance(s, Style) else self.encode_style(s, seed=seed) for s in styles]
        mix, content_as_style_weight, region = self._mixing_weights(styles, weights, alpha, masks, padded.shape[-2:])
        terms = [(style.memory, weight) for style, weight in mix]
        content_as_style_generator = None if content_as_style_weight is None else torch.Generator().manual_seed(seed)
        tile = self._tile_for(padded)
        with self._autocast():
            if tile is None:
                encoded = self._encode(padded)
                if content_as_style_generator is not None:
                    terms.append((self.model.memorize(encoded, generator=content_as_style_generator), content_as_style_weight))
                mixed = self.model.transfer_mixed(encoded, terms)
                del encoded  # the shallow encoder taps are the largest tensors; free them before decoding
                output = self.model.decode(mixed)
            else:
                output = self._stylize_tiled(padded, terms, content_as_style_weight, content_as_style_generator, tile, progress)
        output = output[..., :height, :width].float().clamp(0, 1).contiguous()
        if refine:
            output = torch.cat(
                [
                    self._refine(c[None], o[None], mix, content_as_style_weight, region, refine, refine_progress)
                    for c, o in zip(content, output)
                ]
            )
        return output.squeeze(0)

    def refine(
        self,
        content: torch.Tensor,
        picture: torch.Tensor,
        styles: list[Style | torch.Tensor],
        *,
        steps: int,
        weights: list[float] | None = None,
        alpha: float = 1.0,
        masks: list[torch.Tensor | None] | None = None,
        seed: int = 0,
        progress=None,
        previous: Carried | None = None,
    ) -> torch.Tensor:
        """Refine `picture` [3, H, W], a stylisation of `content`, for `steps` steps (refine.py): its pixels are
        optimised for the style, local and content losses against the same styles, weights, alpha and masks.
        previous: for a video frame, what it takes over from the previous refined frame (video_filters.FrameRefiner)."""
        content = check_image(content, "content image")
        picture = check_image(picture, "picture")
        if picture.shape != content.shape:
            raise BadInputError(f"the picture is {tuple(picture.shape[1:])} but the content is {tuple(content.shape[1:])}")
        weights, masks = _checked_mix(styles, weights, alpha, masks, content.shape[-2:])
        styles = [s if isinstance(s, Style) else self.encode_style(s, seed=seed) for s in styles]
        mix, content_as_style_weight, region = self._mixing_weights(styles, weights, alpha, masks, content.shape[-2:])
        return self._refine(content, picture, mix, content_as_style_weight, region, steps, progress, previous).squeeze(0)

    def _refine(self, content, picture, mix, content_as_style_weight, region, steps: int, progress, previous=None) -> torch.Tensor:
        """Refine one [1, 3, H, W] picture, returned on the picture's device. Where no style applies (alpha = 0, outside
        every mask) the picture stays exactly as it is."""
        if steps < 0:
            raise BadInputError(f"refine steps must be 0 or more, got {steps}")
        if not mix or steps == 0:
            return picture
        height, width = content.shape[-2:]

        def targets_of(style: Style):
            def at(scale: float) -> StyleTargets:
                key = round(scale, 6)
                if key not in style.refine_targets:
                    style.refine_targets[key] = self.refiner.style_targets(style.image, scale, style.seed)
                return style.refine_targets[key]

            return at

        def cropped(weight):  # a copy: autograd cannot save the inference tensors made under inference_mode
            return weight if weight is None or isinstance(weight, float) else weight[..., :height, :width].clone()

        with torch.inference_mode(False), torch.enable_grad():
            terms = [(targets_of(style), cropped(weight)) for style, weight in mix]
            refined = self.refiner.refine(
                content, picture, terms, cropped(content_as_style_weight), steps, progress, previous, region=cropped(region)
            )
        return refined.to(picture.device)

    def _tile_for(self, padded: torch.Tensor) -> int | None:
        height, width = padded.shape[-2:]
        if self.tile_size is None:
            return AUTO_TILE if height * width > AUTO_TILE_PIXELS else None
        if self.tile_size == 0 or max(height, width) <= self.tile_size:
            return None
        return -(-self.tile_size // tiling.ALIGN) * tiling.ALIGN

    def _stylize_tiled(self, padded, terms, content_as_style_weight, content_as_style_generator, tile, progress) -> torch.Tensor:
        def to_device(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.device, memory_format=torch.channels_last)

        stats, content_as_style_memory = tiling.whole_image_pass(
            self.model, padded, tile, lambda x: self.model.encoder(to_device(x), self.model.depth), content_as_style_generator
        )
        if content_as_style_memory is not None:
            terms = terms + [(content_as_style_memory, content_as_style_weight)]
        return tiling.tiled_pass(
            self.model,
            padded,
            tile,
            stats,
            terms,
            run=lambda x, window_terms: self.model.decode(self.model.transfer_mixed(self.model.encode(to_device(x), stats), window_terms)),
            progress=progress,
        )

    def _mixing_weights(self, styles, weights, alpha, masks, padded_size):
        """The (style, weight) terms that apply somewhere, the weight of the content as its own style (None: no such
        term), and the region the styles cover, [1, 1, H, W] (None without masks: everywhere)."""
        region = None
        if all(m is None for m in masks):
            terms = [(s, alpha * w) for s, w in zip(styles, weights)]
            content_as_style_weight = 1.0 - alpha
        else:
            maps = torch.stack([_pad_mask(m, padded_size, self.device) for m in masks])  # [K, 1, 1, H, W]
            weight_column = torch.tensor(weights, device=self.device).view(-1, 1, 1, 1, 1)
            raw = maps * weight_column
            share = raw / raw.sum(dim=0, keepdim=True).clamp_min(1e-8)
            coverage = (maps * (weight_column > 0)).sum(dim=0).clamp(0, 1)  # a weight-0 style covers nothing
            terms = [(s, alpha * coverage * share[k]) for k, s in enumerate(styles)]
            content_as_style_weight = 1.0 - alpha * coverage
            region = coverage
        # A term of weight 0 everywhere (alpha 0, a black mask, a weight of 0) changes nothing in the mix, and the
        # refinement must not optimise for it.
        terms = [(style, weight) for style, weight in terms if _somewhere(weight)]
        return terms, (content_as_style_weight if _somewhere(content_as_style_weight) else None), region


def _somewhere(weight: float | torch.Tensor) -> bool:
    """Whether a mixing weight (a number or a map) is above 0 anywhere."""
    return weight > 0 if isinstance(weight, float) else bool((weight > 0).any())


def _checked_mix(styles, weights, alpha: float, masks, size) -> tuple[list[float], list[torch.Tensor | None]]:
    """The checks of a mix of styles (stylize and refine): the weights normalised, the masks one per style."""
    if not styles:
        raise BadInputError("at least one style is needed")
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"alpha must be between 0 and 1, got {alpha}")
    return _normalised_weights(weights, len(styles)), _checked_masks(masks, len(styles), size)


def _normalised_weights(weights, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise BadInputError(f"got {len(weights)} weights for {count} styles; give one weight per style")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise BadInputError(f"style weights must be finite and non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [w / total for w in weights]


def _checked_masks(masks, count: int, size) -> list[torch.Tensor | None]:
    """The masks, one per style; an all-white mask becomes None, no mask: it is the same mix, and it must give the
    same picture bit for bit (the refinement amplifies the last bits of any other computation of it)."""
    if masks is None:
        return [None] * count
    if len(masks) != count:
        raise BadInputError(f"got {len(masks)} masks for {count} styles; give one mask per style")
    for mask in masks:
        if mask is None:
            continue
        if tuple(mask.shape[-2:]) != tuple(size):
            raise BadInputError(
                f"mask is {mask.shape[-1]}x{mask.shape[-2]} but the content is {size[1]}x{size[0]}; masks must match the content size"
            )
        if not bool(((mask >= 0) & (mask <= 1)).all()):  # NaN fails both
            raise BadInputError("mask values must be numbers from 0 to 1")
    return [None if mask is None or bool((mask == 1).all()) else mask for mask in masks]


def _pad_mask(mask: torch.Tensor | None, size, device) -> torch.Tensor:
    """[H, W] mask in [0, 1] -> [1, 1, H', W'] padded like the content (None = everywhere)."""
    if mask is None:
        return torch.ones(1, 1, *size, device=device)
    mask = mask.to(device=device, dtype=torch.float32).reshape(1, 1, *mask.shape[-2:])
    return F.pad(mask, (0, size[1] - mask.shape[-1], 0, size[0] - mask.shape[-2]), mode="replicate")
