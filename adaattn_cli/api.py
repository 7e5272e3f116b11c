"""The library's entry point: a model ready to stylise pictures.

    from adaattn_cli import Stylizer
    stylizer = Stylizer.load("adaattn")                          # the bundled model; device and precision "auto"
    stylizer.stylize("photo.jpg", "monet.jpg").save("out.png")   # what `adaattn stylize photo.jpg -s monet.jpg` writes

Pictures are file paths, PIL images, (H, W, 3) arrays or tensors, and come back as the kind given (pictures.py;
a path comes back as a PIL image). A style used more than once is encoded once with `encode_style`.
The mixing of styles, alpha and masks is one mechanism (mixing.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, TypeVar, Union, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import functional as fn
from . import tiling
from .attention import StyleMemory
from .devices import pick_device, resolve_precision, tune_cpu_for_inference
from .errors import BadInputError, SettingError
from .methods import get_method
from .mixing import Weight, checked_mix, mix_terms
from .models import StyleTransferModel
from .pictures import PictureLike, as_mask, as_picture, style_picture
from .refine import Carried, Refiner, RefineSettings, StyleTargets
from .weights import load_model

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

MIN_SIDE = 32  # relu5_1 is 1/16 of the input; reflection-padded convs there need at least 2 pixels
# Contents above this many pixels run in tiles of AUTO_TILE px (tiling.py: same result, memory bounded by the
# tile): one pass's peak memory grows with the image, 2048-px tiles keep it at a few GiB whatever the image size
# (see docs/performance.md, "Large images").
AUTO_TILE_PIXELS, AUTO_TILE = 4096 * 4096, 2048

Progress = Callable[[int, int], None]  # progress(done, total)
# What stylize gives back for what it is given: a tensor, an array or a PIL image as given; a path as a PIL image.
Given = TypeVar("Given", torch.Tensor, np.ndarray, Image.Image)


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
    """A style encoded once (Stylizer.encode_style): the model's memory of it (its sampled positions included), its
    image [3, h, w] at the size it was encoded, the seed of the sampling and its mask [h, w] (None: all of it)."""

    memory: list[StyleMemory]
    image: torch.Tensor
    seed: int
    mask: torch.Tensor | None = None
    model: StyleTransferModel | None = field(default=None, repr=False)  # whose memory it is (another model re-encodes it)
    # refinement targets per working scale, computed on first use (a batch refines against them once)
    refine_targets: dict[float, StyleTargets] = field(default_factory=dict, repr=False)


StyleLike = Union[Style, PictureLike]
_ONE_STYLE = (Style, str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)  # anything else: a sequence of styles


class StylizeOptions(TypedDict, total=False):
    """The keyword options of Stylizer.stylize (their defaults and meaning: its docstring)."""

    weights: Sequence[float] | None
    alpha: float
    masks: Sequence[PictureLike | None] | None
    preserve_color: bool
    match_color: bool
    seed: int
    refine: int
    style_size: int | None
    progress: Progress | None
    refine_progress: Progress | None


class Stylizer:
    """A model ready for inference. Build one with Stylizer.load; it owns its model (it moves and configures it).

    device: "auto" (CUDA, then MPS, then the CPU), "cpu", "cuda", "cuda:1", ... or a torch.device.
    precision: "fp32" (exact), "bf16" (bf16 convs and attention matmuls, moments combined in fp32: about 2-3x faster
    on CPUs with avx512_bf16, outputs within bf16 tolerance) or "auto" (bf16 where it is measured faster).
    style_positions: cap on the style positions each attention block attends to (a random subset drawn from the
    style's seed); None: the method's default (methods.py), 0: every position.
    tile_size: contents larger than this many pixels per side run in tiles of that size (bounded memory, same
    result; tiling.py); 0 = never; None = AUTO_TILE above AUTO_TILE_PIXELS.
    refine: the objective and schedule of `stylize(..., refine=N)` (refine.RefineSettings; None: its defaults).
    """

    def __init__(
        self,
        model: StyleTransferModel,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        style_positions: int | None = None,
        tile_size: int | None = None,
        refine: RefineSettings | None = None,
    ):
        if tile_size is not None and tile_size < 0:
            raise SettingError(f"{{tile_size}} must be 0 (never) or a number of pixels, got {tile_size}")
        self.tile_size = tile_size
        self.device = pick_device(device) if isinstance(device, str) else device
        if self.device.type == "cpu":
            tune_cpu_for_inference()  # process-wide and idempotent: denormals off, freed memory kept (devices.py)
        self.precision = resolve_precision(precision, self.device)
        if style_positions is None:
            style_positions = get_method(model.method).style_positions
        if style_positions < 0:
            raise BadInputError(f"style_positions must be 0 (all) or positive, got {style_positions}")
        self.style_positions = style_positions
        # channels_last: oneDNN and cuDNN run 3x3 convs faster on NHWC tensors, in fp32 too. bf16 weights when
        # fast: autocast would cast them to bf16 at every call anyway (same results, less time: docs/performance.md).
        # (Module.to takes device, dtype and memory_format together; torch's type hints only know them apart)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.model = model.to(self.device, dtype=dtype, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        matmul_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.model.configure_inference(matmul_dtype=matmul_dtype, style_positions=style_positions)
        self.refiner = Refiner(self.model.encoder, precision=self.precision, settings=refine)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | StyleTransferModel = "adaattn",
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        style_positions: int | None = None,
        tile_size: int | None = None,
        refine: RefineSettings | None = None,
    ) -> Stylizer:
        """A model by name (an installed one: `adaattn models`, list_models()), by file, or a model object."""
        loaded = model if isinstance(model, StyleTransferModel) else load_model(model)
        return cls(loaded, device=device, precision=precision, style_positions=style_positions, tile_size=tile_size, refine=refine)

    def _autocast(self) -> AbstractContextManager:
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _encode(self, image: torch.Tensor):
        with self._autocast():
            return self.model.encode(image.to(self.device, memory_format=torch.channels_last))

    @torch.inference_mode()
    def encode_style(self, image: PictureLike, *, mask: PictureLike | None = None, seed: int = 0, style_size: int | None = None) -> Style:
        """Encode a style picture once, for any number of contents.

        mask: where in the style picture its style is taken from (white: used; any kind of picture, or an [h, w]
        tensor/array, with the picture's aspect ratio). seed: the draw of the style positions (style_positions).
        style_size: the style's shorter side in pixels, as the CLI's --style-size (0: as given); None: STYLE_SIZE for
        a path, a PIL image or an array, and as given for a tensor (prepared by the caller)."""
        prepared = check_image(style_picture(image, style_size), "style image")[0]
        fitted = None if mask is None else as_mask(mask, prepared.shape[-2:], "style mask", "the style")
        return self._encode_style(prepared, fitted, seed)

    def _encode_style(self, image: torch.Tensor, mask: torch.Tensor | None, seed: int) -> Style:
        """Encode a prepared style image [3, h, w] with its mask [h, w] (or None)."""
        generator = torch.Generator().manual_seed(seed)  # private: the global RNG is never reseeded
        encoded = self._encode(image[None])
        with self._autocast():
            memory = self.model.memorize(encoded, generator=generator, mask=None if mask is None else mask.to(self.device))
        return Style(memory, image, seed, mask, model=self.model)

    @overload
    def stylize(self, content: Given, style: StyleLike | Sequence[StyleLike], **options: Unpack[StylizeOptions]) -> Given: ...
    @overload
    def stylize(
        self, content: str | os.PathLike[str], style: StyleLike | Sequence[StyleLike], **options: Unpack[StylizeOptions]
    ) -> Image.Image: ...
    @torch.inference_mode()
    def stylize(
        self,
        content: PictureLike,
        style: StyleLike | Sequence[StyleLike],
        *,
        weights: Sequence[float] | None = None,
        alpha: float = 1.0,
        masks: Sequence[PictureLike | None] | None = None,
        preserve_color: bool = False,
        match_color: bool = True,
        seed: int = 0,
        refine: int = 0,
        style_size: int | None = None,
        progress: Progress | None = None,
        refine_progress: Progress | None = None,
    ) -> PictureLike:
        """Stylise `content` with one style or several (a list); returns the same kind of picture, the same size.

        A path or a PIL image gives a PIL image (its transparency and colour profile kept), an (H, W, 3) array an array
        of its dtype, a tensor [3, H, W] or [B, 3, H, W] in [0, 1] a tensor of the same rank, dtype and device.
        style: Styles from encode_style, or pictures (encoded here with `seed` and `style_size`, as encode_style does).
        weights: blend of the styles (normalised to sum 1). masks: per style, where on the content it applies (any
        kind of picture or an [H, W] tensor/array, with the content's aspect ratio); content outside every mask
        keeps its own statistics. alpha: 1 = full style, 0 = the model's reconstruction of the content.
        preserve_color: recolour each style with the content's palette first (a Style keeps its mask and seed).
        match_color: move the picture's mean colour to each style's where that style applies (fn.match_mean_colour);
        False gives the model's own colours.
        refine: the budget of test-time refinement of the model's picture, `--refine N` (refine.plan: N steps at half
        size, a full-size step counting four; 0 = the model's picture).
        progress(done, total): called after each tile when the content runs in tiles; refine_progress(done, total)
        after each refinement step.
        """
        _check_steps(refine)
        picture = as_picture(content, "content image")
        batch = check_image(picture.rgb, "content image").to(self.device)
        if isinstance(style, _ONE_STYLE):
            styles = [style]
        elif isinstance(style, Sequence):
            styles = list(style)
        else:
            raise BadInputError(f"style: expected a Style, a picture or a list of them, got {type(style).__name__}")
        size = batch.shape[-2:]
        weights, fitted = checked_mix(len(styles), weights, alpha, _fitted_masks(masks, size), size)
        if preserve_color:
            if batch.shape[0] != 1:
                raise BadInputError("preserve_color works on one content image at a time")
            styles = [self._recoloured(s, batch[0].cpu(), seed, style_size) for s in styles]
        encoded = [self.as_style(s, seed, style_size) for s in styles]
        padded = pad_to_multiple(batch, self.model.size_multiple)
        mix, content_as_style_weight, region = mix_terms(encoded, weights, alpha, fitted, padded.shape[-2:], self.device)
        output = self._transfer(padded, mix, content_as_style_weight, seed, progress)[..., : size[0], : size[1]]
        output = output.float().clamp(0, 1).contiguous()
        if match_color and mix:
            colours = [(fn.mean_colour(style.image, style.mask), _cropped(weight, size)) for style, weight in mix]
            output = fn.match_mean_colour(output, colours)
        if refine:
            output = torch.cat(
                [
                    self._refine(c[None], o[None], mix, content_as_style_weight, region, refine, refine_progress)
                    for c, o in zip(batch, output)
                ]
            )
        return picture.as_given(output)

    def as_style(self, style: StyleLike, seed: int = 0, style_size: int | None = None) -> Style:
        """A Style of this stylizer's model: a picture is encoded, another model's Style encoded again (same image,
        mask and seed)."""
        if not isinstance(style, Style):
            return self.encode_style(style, seed=seed, style_size=style_size)
        return style if style.model is self.model else self._encode_style(style.image, style.mask, style.seed)

    def _recoloured(self, style: StyleLike, content: torch.Tensor, seed: int, style_size: int | None) -> Style:
        """`style` with the palette of `content` [3, H, W] (fn.coral), encoded with its own mask and seed if it is a
        Style, else with `seed`."""
        if isinstance(style, Style):
            return self._encode_style(fn.coral(style.image, content), style.mask, style.seed)
        prepared = check_image(style_picture(style, style_size), "style image")[0]
        return self._encode_style(fn.coral(prepared, content), None, seed)

    def _transfer(self, padded: torch.Tensor, mix, content_as_style_weight, seed: int, progress) -> torch.Tensor:
        """The model's picture of a padded content batch for a mix (mixing.mix_terms)."""
        terms = [(style.memory, weight) for style, weight in mix]
        content_as_style_generator = None if content_as_style_weight is None else torch.Generator().manual_seed(seed)
        tile = self._tile_for(padded)
        with self._autocast():
            if tile is not None:
                return self._stylize_tiled(padded, terms, content_as_style_weight, content_as_style_generator, tile, progress)
            encoded = self._encode(padded)
            if content_as_style_generator is not None:
                terms.append((self.model.memorize(encoded, generator=content_as_style_generator), content_as_style_weight))
            mixed = self.model.transfer_mixed(encoded, terms)
            del encoded  # the shallow encoder taps are the largest tensors; free them before decoding
            return self.model.decode(mixed)

    def refine(
        self,
        content: torch.Tensor,
        picture: torch.Tensor,
        styles: Style | torch.Tensor | Sequence[Style | torch.Tensor],
        *,
        steps: int,
        weights: Sequence[float] | None = None,
        alpha: float = 1.0,
        masks: Sequence[torch.Tensor | None] | None = None,
        seed: int = 0,
        progress: Progress | None = None,
        previous: Carried | None = None,
    ) -> torch.Tensor:
        """Refine `picture` [3, H, W], a stylisation of the tensor `content` (refine.py): its pixels are optimised for
        the style, local and content losses against the same styles, weights, alpha and masks. steps: the budget
        `--refine N` (refine.plan), or with `previous` the number of steps at the working size. previous: for a video
        frame, what it takes over from the previous refined frame (video_filters.FrameRefiner)."""
        _check_steps(steps)
        styles = [styles] if isinstance(styles, (Style, torch.Tensor)) else list(styles)
        content = check_image(content, "content image")
        picture = check_image(picture, "picture")
        if picture.shape != content.shape:
            raise BadInputError(f"the picture is {tuple(picture.shape[1:])} but the content is {tuple(content.shape[1:])}")
        size = content.shape[-2:]
        weights, fitted = checked_mix(len(styles), weights, alpha, masks, size)
        encoded = [self.as_style(s, seed, None) for s in styles]
        mix, content_as_style_weight, region = mix_terms(encoded, weights, alpha, fitted, size, self.device)
        refined = self._refine(content, picture, mix, content_as_style_weight, region, steps, progress, previous)
        return refined.squeeze(0)

    def _refine(
        self,
        content: torch.Tensor,
        picture: torch.Tensor,
        mix: list[tuple[Style, Weight]],
        content_as_style_weight: Weight | None,
        region: torch.Tensor | None,
        steps: int,
        progress: Progress | None,
        previous: Carried | None = None,
    ) -> torch.Tensor:
        """Refine one [1, 3, H, W] picture, returned on the picture's device. Where no style applies (alpha = 0, outside
        every mask) the picture stays exactly as it is."""
        if steps < 0:
            raise BadInputError(f"refine must be 0 or more, got {steps}")
        if not mix or steps == 0:
            return picture
        height, width = content.shape[-2:]

        def targets_of(style: Style) -> Callable[[float], StyleTargets]:
            def at(scale: float) -> StyleTargets:
                key = round(scale, 6)
                if key not in style.refine_targets:
                    style.refine_targets[key] = self.refiner.style_targets(style.image, scale, style.seed, style.mask)
                return style.refine_targets[key]

            return at

        def cropped(weight_map: torch.Tensor) -> torch.Tensor:  # a copy: autograd cannot save inference tensors
            return weight_map[..., :height, :width].clone()

        def cropped_weight(weight: Weight) -> Weight:
            return weight if isinstance(weight, float) else cropped(weight)

        with torch.inference_mode(False), torch.enable_grad():
            terms = [(targets_of(style), cropped_weight(weight)) for style, weight in mix]
            own = None if content_as_style_weight is None else cropped_weight(content_as_style_weight)
            refined = self.refiner.refine(
                content, picture, terms, own, steps, progress, previous, region=None if region is None else cropped(region)
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


def _cropped(weight, size):
    """A mixing weight (a number or a map of the padded content) cropped to the content's size."""
    return weight[..., : size[0], : size[1]] if isinstance(weight, torch.Tensor) else weight


def _check_steps(refine) -> None:
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise BadInputError(f"refine is a whole number, 0 or more, got {refine!r} (its settings go to Stylizer.load)")


def _fitted_masks(masks: Sequence[PictureLike | None] | None, size) -> list[torch.Tensor | None] | None:
    """Each mask of a content as [H, W] at its `size` (pictures.as_mask); None stays None."""
    if masks is None:
        return None
    if isinstance(masks, _ONE_STYLE):
        raise BadInputError("masks: give a list with one mask (or None) per style, e.g. masks=[mask]")
    return [None if mask is None else as_mask(mask, size, "mask", "the content") for mask in masks]
