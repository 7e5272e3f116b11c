"""The kinds of picture the library takes and gives back: a file path, a PIL image, an H x W x 3 array or a tensor.

    picture = as_picture("monet.jpg", "style image")  # -> Picture (a [3, H, W] float tensor in [0, 1] and its kind)
    result = picture.returned(stylized)               # the same kind as given: path or PIL -> PIL, array -> array, ...

A path is read as the CLI reads it (image_io.load_image: EXIF orientation, transparency and ICC profile kept) and
comes back as a PIL image carrying the transparency and profile, so that `.save()` writes what `adaattn stylize`
writes. Arrays are uint8 (0-255) or float (0-1) and come back as the same dtype. Tensors are float RGB in [0, 1],
[3, H, W] or a batch [B, 3, H, W]; they come back with the same rank, dtype and device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image

from .errors import BadInputError
from .image_io import LoadedImage, fit_mask, from_pil, load_image, resize, shorter_side_at, to_pil

PictureLike = Union[str, "os.PathLike[str]", Image.Image, np.ndarray, torch.Tensor]


@dataclass
class Picture:
    """A picture as given: its pixels as a float tensor [3, H, W] (or [B, 3, H, W]) in [0, 1] and what to give back."""

    rgb: torch.Tensor
    given: PictureLike
    loaded: LoadedImage | None = None  # a file or a PIL image: its transparency and ICC profile

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.given, torch.Tensor)

    def returned(self, rgb: torch.Tensor) -> PictureLike:
        """`rgb` (the same size as this picture, float in [0, 1]) as the kind this picture was given."""
        given = self.given
        if isinstance(given, torch.Tensor):
            rgb = rgb.reshape(given.shape) if given.dim() == 4 else rgb.reshape(rgb.shape[-3:])
            return rgb.to(device=given.device, dtype=given.dtype)
        if isinstance(given, np.ndarray):
            pixels = rgb.reshape(rgb.shape[-3:]).detach().float().cpu().permute(1, 2, 0)
            if given.dtype == np.uint8:
                return np.asarray(to_pil(pixels.permute(2, 0, 1)))  # the rounding of saved files
            return pixels.numpy().astype(given.dtype)
        loaded = self.loaded
        assert loaded is not None  # a path or a PIL image is loaded by as_picture
        return to_pil(rgb.reshape(rgb.shape[-3:]), alpha=loaded.alpha, icc_profile=loaded.icc_profile)


def as_picture(picture: PictureLike, what: str) -> Picture:
    """Any kind of picture -> Picture; `what` names it in errors ("content image", "style image", ...)."""
    if isinstance(picture, torch.Tensor):
        if not picture.is_floating_point():
            raise BadInputError(f"{what}: a tensor must hold floats in [0, 1], got {picture.dtype}")
        if picture.dim() not in (3, 4) or picture.shape[-3] != 3:
            raise BadInputError(f"{what}: expected an RGB tensor [3, H, W] or [B, 3, H, W], got shape {tuple(picture.shape)}")
        return Picture(picture.float(), picture)
    if isinstance(picture, np.ndarray):
        if picture.ndim != 3 or picture.shape[2] != 3:
            raise BadInputError(f"{what}: expected an RGB array of shape (H, W, 3), got {picture.shape}")
        if picture.dtype == np.uint8:
            rgb = torch.from_numpy(np.array(picture)).permute(2, 0, 1).float().div_(255)  # a copy: arrays may be read-only
        elif np.issubdtype(picture.dtype, np.floating):
            rgb = torch.from_numpy(np.array(picture, dtype=np.float32)).permute(2, 0, 1)
        else:
            raise BadInputError(f"{what}: an array must be uint8 (0-255) or float (0-1), got {picture.dtype}")
        return Picture(rgb, picture)
    if isinstance(picture, Image.Image):
        loaded = from_pil(picture)
        return Picture(loaded.rgb, picture, loaded)
    if isinstance(picture, (str, os.PathLike)):
        loaded = load_image(Path(picture))
        return Picture(loaded.rgb, picture, loaded)
    raise BadInputError(f"{what}: expected a file path, a PIL image, an (H, W, 3) array or a tensor, got {type(picture).__name__}")


def as_mask(mask: PictureLike, size, what: str, image: str) -> torch.Tensor:
    """A mask of any kind -> [H, W] float in [0, 1] at `size` (height, width) of `image` (named in errors): a picture is
    made greyscale (the mean of its channels), a 2-D tensor or array is taken as grey (uint8: 0-255); it is resized
    (bilinear) if it has the aspect ratio of `size` within a pixel (image_io.fit_mask)."""
    if isinstance(mask, torch.Tensor) and mask.dim() == 2:
        grey = mask.float()
    elif isinstance(mask, np.ndarray) and mask.ndim == 2:
        grey = torch.from_numpy(np.asarray(mask, dtype=np.float32) / (255 if mask.dtype == np.uint8 else 1))
    else:
        rgb = as_picture(mask, what).rgb
        if rgb.dim() == 4:
            raise BadInputError(f"{what}: one mask per style, not a batch; got shape {tuple(rgb.shape)}")
        grey = rgb.mean(dim=0)
    return fit_mask(grey, tuple(size), what, image)


def resized_style(rgb: torch.Tensor, size: int) -> torch.Tensor:
    """A style image [3, h, w] with its shorter side at `size` (0: as it is), as the CLI's --style-size does."""
    if not size:
        return rgb
    return resize(rgb, shorter_side_at(rgb.shape[-2:], size))
