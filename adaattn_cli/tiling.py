"""Tiles: any content size in bounded memory, with the result of a single pass.

Everything in a model is local (convolutions, pooling, per-position attention) except the instance
normalisation of content maps (Norm(F) in the keys and the blocks), which uses whole-image channel statistics.
So a large content runs in two passes over tiles:
  1. encode each tile and accumulate those statistics; where the content is also its own style (alpha < 1,
     masks), gather its features at the positions the style cap draws (the same draw as one pass makes);
  2. encode, transfer and decode each tile with a halo wider than the model's receptive field, normalising
     with the whole-image statistics, and keep the tile's core.
Memory then depends on the tile size, not on the image size; the encoder runs twice over each pixel.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from . import functional as fn
from .attention import StyleMemory, sample_index
from .models import Encoded, StyleTransferModel

ALIGN = 16  # tile edges on the coarsest pooling grid, so pooling and nearest resizes line up with the whole image's
ENCODER_HALO = 96  # px of context after which a tile's border changes no encoder tap (relu5_1: radius ~80 px)
HALO = 128  # px for encoder + blocks + decoder (output radius measured at ~102 px for adaattn and sanet)
# The smallest tile `--tile` takes: below it a tile's window is mostly halo (a 16-px tile runs a 272-px window per
# 16-px core, 20x slower than no tiles). The library takes any size, and its tests use small ones.
MIN_TILE = 2 * HALO

Box = tuple[int, int, int, int]  # top, bottom, left, right in image pixels


def tiles(height: int, width: int, tile: int, halo: int) -> Iterator[tuple[Box, Box]]:
    """(core, window) boxes: the cores cover the image once; each window is its core plus `halo`, clipped."""
    if tile % ALIGN or halo % ALIGN:
        raise ValueError(f"tile and halo must be multiples of {ALIGN}, got {tile} and {halo}")
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            yield (
                (top, bottom, left, right),
                (max(0, top - halo), min(height, bottom + halo), max(0, left - halo), min(width, right + halo)),
            )


def _crop(x: torch.Tensor, box: Box, scale: int = 1, origin: Box = (0, 0, 0, 0)) -> torch.Tensor:
    top, bottom, left, right = ((v - o) // scale for v, o in zip(box, (origin[0], origin[0], origin[2], origin[2])))
    return x[..., top:bottom, left:right]


def _resized(features: list[torch.Tensor], tap: int, level: int) -> torch.Tensor:
    f, size = features[tap - 1], features[level - 1].shape[-2:]
    return f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="nearest")


def whole_image_pass(
    model: StyleTransferModel,
    image: torch.Tensor,
    tile: int,
    encode: Callable[[torch.Tensor], list[torch.Tensor]],
    content_as_style_generator: torch.Generator | None,
) -> tuple[dict, list[StyleMemory] | None]:
    """Pass 1: the whole-image statistics of every normalised map, and the content's own style memory
    (when `content_as_style_generator` is given: drawn as model.memorize would draw it on the whole image)."""
    batch, _, height, width = image.shape
    maps = model.normalised_maps()
    sums: dict = {}
    # per block: (level, the sampled flat indices at that level, the taps gathered there), None for AdaIN's
    plan: list[tuple[int, torch.Tensor, dict[int, torch.Tensor | None]] | None] = []
    if content_as_style_generator is not None:
        for block, level in zip(model.transfer_blocks(), model.block_levels):
            if not block.attends_to_positions:  # AdaIN: the whole-image statistics are its whole memory
                plan.append(None)
                continue
            count = (height >> (level - 1)) * (width >> (level - 1))
            index = sample_index(count, block.max_style_positions, content_as_style_generator)
            index = torch.arange(count) if index is None else index
            taps = range(1, level + 1) if level in model.key_levels else (level,)
            plan.append((level, index, {tap: None for tap in taps}))
    for core, window in tiles(height, width, tile, ENCODER_HALO):
        features = encode(image[..., window[0] : window[1], window[2] : window[3]])
        for tap, level in maps:
            part = _crop(_resized(features, tap, level), core, 1 << (level - 1), window).flatten(2).double()
            total, squares, count = sums.get((tap, level), (0.0, 0.0, 0))
            sums[(tap, level)] = (total + part.sum(2), squares + (part * part).sum(2), count + part.shape[2])
        for entry in plan:
            if entry is not None:
                _gather(entry, features, core, window, width)
        del features
    stats = {}
    for key, (total, squares, count) in sums.items():
        mean = total / count
        var = (squares - total * mean) / max(1, count - 1)
        stats[key] = tuple(t.float().view(batch, -1, 1, 1) for t in (mean, (var.clamp_min(0) + fn.STD_EPS).sqrt()))
    if content_as_style_generator is None:
        return stats, None
    return stats, model.memorize(_gathered_encoded(model, plan, stats))


def _gather(entry, features: list[torch.Tensor], core: Box, window: Box, width: int) -> None:
    """Copy the sampled positions inside this tile's core into the plan's gathered [B, C, n] tensors."""
    level, index, gathered = entry
    scale = 1 << (level - 1)
    rows, cols = index // (width // scale), index % (width // scale)
    top, bottom, left, right = (v // scale for v in core)
    inside = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)).nonzero().squeeze(1)
    if inside.numel() == 0:
        return
    window_width = (window[3] - window[2]) // scale
    local = (rows[inside] - window[0] // scale) * window_width + (cols[inside] - window[2] // scale)
    for tap in gathered:
        values = _resized(features, tap, level).flatten(2)
        local_on = local.to(values.device)
        if gathered[tap] is None:
            gathered[tap] = values.new_empty(values.shape[0], values.shape[1], index.numel())
        gathered[tap][..., inside.to(values.device)] = values.index_select(2, local_on)


def _gathered_encoded(model: StyleTransferModel, plan, stats: dict) -> Encoded:
    """An Encoded whose block maps are the gathered positions as [B, C, 1, n] images: memorize on it keeps them all."""
    features: list = [None] * model.depth
    keys = []
    for entry in plan:
        if entry is None:
            continue
        level, _, gathered = entry
        features[level - 1] = gathered[level].unsqueeze(2)
        if level in model.key_levels:
            keys.append(model.key([gathered[tap].unsqueeze(2) for tap in range(1, level + 1)], level, stats))
    return Encoded(features, keys, stats)


def tiled_pass(
    model: StyleTransferModel,
    image: torch.Tensor,
    tile: int,
    stats: dict,
    terms: list,
    run: Callable[[torch.Tensor, list], torch.Tensor],
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Pass 2: the stylised image [B, 3, H, W] (fp32, on the CPU) assembled from the tiles' cores.

    run(window image, window terms) -> decoded window; weight maps in `terms` are cropped to each window."""
    batch, _, height, width = image.shape
    output = torch.empty(batch, 3, height, width)
    boxes = list(tiles(height, width, tile, HALO))
    for done, (core, window) in enumerate(boxes):
        window_terms = [(m, w if isinstance(w, (int, float)) else _crop(w, window)) for m, w in terms]
        decoded = run(_crop(image, window), window_terms)
        output[..., core[0] : core[1], core[2] : core[3]] = _crop(decoded, core, 1, window).float().cpu()
        if progress is not None:
            progress(done + 1, len(boxes))
    return output
