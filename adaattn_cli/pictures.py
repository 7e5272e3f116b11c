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

from .config import STYLE_SIZE
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

    def as_given(self, rgb: torch.Tensor) -> PictureLike:
        """`rgb` (the same size as this picture, float in [0, 1]) as the kind this picture was given."""
        given = self.given
        if isinstance(given, torch.Tensor):
            rgb = rgb.reshape(given.shape) if given.dim() == 4 else rgb.reshape(rgb.shape[-3:])
            if given.dtype == torch.uint8:
                rgb = rgb.mul(255).add_(0.5).floor_()  # the rounding of saved files
            return rgb.to(device=given.device, dtype=given.dtype)
        if isinstance(given, np.ndarray):
            pixels = rgb.reshape(rgb.shape[-3:]).detach().float().cpu()
            if given.dtype == np.uint8:
                return np.array(to_pil(pixels))  # the rounding of saved files; a writable copy
            return pixels.permute(1, 2, 0).numpy().astype(given.dtype)
        loaded = self.loaded
        assert loaded is not None  # a path or a PIL image is loaded by as_picture
        return to_pil(rgb.reshape(rgb.shape[-3:]), alpha=loaded.alpha, icc_profile=loaded.icc_profile)


def as_picture(picture: PictureLike, what: str) -> Picture:
    """Any kind of picture -> Picture; `what` names it in errors ("content image", "style image", ...)."""
    if isinstance(picture, torch.Tensor):
        if picture.dim() not in (3, 4) or picture.shape[-3] != 3:
            raise BadInputError(f"{what}: expected an RGB tensor [3, H, W] or [B, 3, H, W], got shape {tuple(picture.shape)}")
        if picture.dtype == torch.uint8:  # torchvision.io.read_image's
            return Picture(picture.float().div_(255), picture)
        if not picture.is_floating_point():
            raise BadInputError(f"{what}: a tensor holds uint8 (0-255) or floats (0-1), got {picture.dtype}")
        return Picture(picture.float(), picture)
    if isinstance(picture, np.ndarray):
        if picture.ndim != 3 or picture.shape[2] != 3:
            raise BadInputError(f"{what}: expected an RGB array of shape (H, W, 3), got {picture.shape} (a PIL image keeps transparency)")
        if picture.dtype == np.uint8:
            rgb = torch.from_numpy(np.array(picture)).permute(2, 0, 1).float().div_(255)  # a copy: arrays may be read-only
        elif np.issubdtype(picture.dtype, np.floating):
            rgb = torch.from_numpy(np.array(picture, dtype=np.float32)).permute(2, 0, 1)
        else:
            raise BadInputError(f"{what}: an array must be uint8 (0-255) or float (0-1), got {picture.dtype}")
        return Picture(rgb, picture)
    if isinstance(picture, Image.Image):
        try:
            loaded = from_pil(picture)
        except (OSError, ValueError, SyntaxError, EOFError) as error:  # a truncated or closed file, an odd mode
            raise BadInputError(f"{what}: not a readable image ({error or type(error).__name__})") from None
        return Picture(loaded.rgb, picture, loaded)
    if isinstance(picture, (str, os.PathLike)):
        loaded = load_image(Path(picture))
        return Picture(loaded.rgb, picture, loaded)
    raise BadInputError(f"{what}: expected a file path, a PIL image, an (H, W, 3) array or a tensor, got {type(picture).__name__}")


def as_mask(mask: PictureLike, size, what: str, image: str) -> torch.Tensor:
    """A mask of any kind -> [H, W] float in [0, 1] at `size` (height, width) of `image` (named in errors): a picture is
    made greyscale (the mean of its channels), a 2-D tensor or array is taken as grey (uint8: 0-255); it is resized
    (bilinear) if it has the aspect ratio of `size` within a pixel (image_io.fit_mask)."""
    if isinstance(mask, np.ndarray) and mask.ndim == 2:
        mask = torch.from_numpy(np.array(mask))  # a copy: arrays may be read-only
    if isinstance(mask, torch.Tensor) and mask.dim() == 2:
        if mask.dtype == torch.uint8:
            grey = mask.float() / 255
        elif mask.dtype == torch.bool:
            grey = mask.float()
        elif mask.is_floating_point():
            grey = mask.float()
        else:
            raise BadInputError(f"{what}: a mask holds booleans, uint8 (0-255) or floats (0-1), got {mask.dtype}")
        if not bool(((grey >= 0) & (grey <= 1)).all()):  # NaN fails both
            raise BadInputError(f"{what}: mask values must be numbers from 0 to 1")
    else:
        rgb = as_picture(mask, what).rgb
        if rgb.dim() == 4:
            raise BadInputError(f"{what}: one mask per style, not a batch; got shape {tuple(rgb.shape)}")
        grey = rgb.mean(dim=0)
    return fit_mask(grey, tuple(size), what, image)


def style_picture(image: PictureLike, style_size: int | None) -> torch.Tensor:
    """A style picture as the [3, h, w] CPU tensor it is encoded from: its shorter side at `style_size` (0: as
    given; None: STYLE_SIZE for a path, a PIL image or an array, a tensor as given, prepared by the caller)."""
    picture = as_picture(image, "style image")
    rgb = picture.rgb
    if rgb.dim() == 4 and rgb.shape[0] != 1:
        raise BadInputError(f"style image: one picture per style, not a batch of {rgb.shape[0]}")
    size = style_size if style_size is not None else (0 if picture.is_tensor else STYLE_SIZE)
    rgb = rgb.reshape(rgb.shape[-3:])
    if size:  # resized first, checked after (api.check_image): a small style brought above MIN_SIDE is fine
        rgb = resize(rgb, shorter_side_at(rgb.shape[-2:], size))
    return rgb.cpu()
