"""How several styles, alpha and masks combine into one mix (api.Stylizer's stylize and refine share it).

A mix is a list of (style, weight) terms plus the weight of the content used as its own style (the model's
reconstruction of the content), each weight a number or a per-position map [1, 1, H, W]; at every position the
weights sum to 1. alpha = 1 without masks is exactly the plain model; alpha = 0 its reconstruction. A style's mask
says where it applies; content outside every mask keeps the content's own statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F

from .errors import BadInputError

S = TypeVar("S")
Weight = float | torch.Tensor  # a number, or a map [1, 1, H, W]


def checked_mix(
    count: int, weights: Sequence[float] | None, alpha: float, masks: Sequence[torch.Tensor | None] | None, size
) -> tuple[list[float], list[torch.Tensor | None]]:
    """The checks of a mix of `count` styles: the weights normalised to sum 1, the masks one per style ([H, W] of the
    content's `size`, in [0, 1]; an all-white mask becomes None)."""
    if count == 0:
        raise BadInputError("at least one style is needed")
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"alpha must be between 0 and 1, got {alpha}")
    return _normalised_weights(weights, count), _checked_masks(masks, count, size)


def mix_terms(
    styles: Sequence[S], weights: list[float], alpha: float, masks: list[torch.Tensor | None], size, device
) -> tuple[list[tuple[S, Weight]], Weight | None, torch.Tensor | None]:
    """The (style, weight) terms that apply somewhere, the weight of the content as its own style (None: no such
    term), and the region the styles cover, [1, 1, H, W] (None without masks: everywhere). Masks are padded like the
    content to `size` (height, width)."""
    region = None
    content_as_style_weight: Weight
    terms: list[tuple[S, Weight]]
    if all(m is None for m in masks):
        terms = [(s, alpha * w) for s, w in zip(styles, weights)]
        content_as_style_weight = 1.0 - alpha
    else:
        maps = torch.stack([_pad_mask(m, size, device) for m in masks])  # [K, 1, 1, H, W]
        weight_column = torch.tensor(weights, device=device).view(-1, 1, 1, 1, 1)
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


def _somewhere(weight: Weight) -> bool:
    """Whether a mixing weight (a number or a map) is above 0 anywhere."""
    return weight > 0 if isinstance(weight, float) else bool((weight > 0).any())


def _normalised_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if not isinstance(weights, Sequence):
        raise BadInputError(f"weights: give a list with one weight per style, e.g. [0.7, 0.3]; got {weights!r}")
    if len(weights) != count:
        raise BadInputError(f"got {len(weights)} weights for {count} styles; give one weight per style")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise BadInputError(f"style weights must be finite and non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [w / total for w in weights]


def _checked_masks(masks: Sequence[torch.Tensor | None] | None, count: int, size) -> list[torch.Tensor | None]:
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
