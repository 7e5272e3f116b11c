"""Reading and writing images as float tensors in [0, 1], with user-facing errors."""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from adaattn_cli.errors import BadInputError, SettingError
from adaattn_cli.files import check_target, publish

# Output format by extension; the format is passed to Pillow explicitly because the
# temporary file's name does not end in the real extension.
_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
SAVE_EXTENSIONS = tuple(_SAVE_FORMATS)
# Image inputs by extension (folders of contents, training folders); GIF is read (its first frame) but written as PNG.
IMAGE_EXTENSIONS = (*SAVE_EXTENSIONS, ".gif")
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_ICC_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}
_HIGH_BIT_GREY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


@dataclass
class LoadedImage:
    rgb: torch.Tensor  # float32 [3, H, W] in [0, 1], EXIF orientation already applied
    alpha: torch.Tensor | None  # float32 [1, H, W] in [0, 1] if the source had transparency
    icc_profile: bytes | None  # the source ICC profile, to be written back on save
    path: Path | None


def set_pixel_limit(max_pixels: int | None) -> None:
    """Set Pillow's decompression-bomb limit (None disables it)."""
    if max_pixels is not None and max_pixels <= 0:
        raise BadInputError(f"The pixel limit must be a positive number, got {max_pixels}.")
    Image.MAX_IMAGE_PIXELS = max_pixels


def check_pixel_limit(width: int, height: int, what: str) -> None:
    """Refuse a working size above the decode limit (--max-pixels), before anything of that size is allocated:
    --size 60000 on a small photo would otherwise ask for tens of gigabytes."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise SettingError(
            f"{what} would be {width}x{height} = {width * height:,} pixels, above the pixel limit ({limit:,}); "
            "choose a smaller size or raise the limit with {max_pixels}."
        )


def _fit(h: int, w: int, max_size: int) -> tuple[int, int]:
    """Size with the longer side equal to max_size, aspect ratio kept."""
    scale = max_size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _check_max_size(max_size: int) -> None:
    if max_size < 1:
        raise BadInputError(f"The maximum image size must be at least 1 pixel, got {max_size}.")


def resize_max_side(t: torch.Tensor, max_size: int) -> torch.Tensor:
    """Downsize a [C,H,W] or [B,C,H,W] tensor so its longer side is at most max_size."""
    _check_max_size(max_size)
    h, w = t.shape[-2:]
    if max(h, w) <= max_size:
        return t
    x = t.unsqueeze(0) if t.dim() == 3 else t
    # Bicubic with antialias is only implemented for float32/64 on every device.
    y = F.interpolate(x.float(), size=_fit(h, w, max_size), mode="bicubic", align_corners=False, antialias=True)
    y = y.clamp(0, 1).to(t.dtype)
    return y.squeeze(0) if t.dim() == 3 else y


def resize(image: torch.Tensor, size: tuple[int, int], *, mode: str = "bicubic") -> torch.Tensor:
    """[C, H, W] in [0, 1] -> [C, *size] ((height, width)), antialiased when shrinking, clamped to [0, 1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    resized = F.interpolate(image[None], size=size, mode=mode, antialias=True, align_corners=False)
    return resized[0].clamp(0, 1)


def crop_to_fill(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[C, H, W] -> [C, *size] ((height, width)): scaled to cover the size, aspect kept, the overhang cropped evenly."""
    height, width = image.shape[-2:]
    scale = max(size[0] / height, size[1] / width)
    covered = resize(image, (max(size[0], round(height * scale)), max(size[1], round(width * scale))))
    top, left = (covered.shape[-2] - size[0]) // 2, (covered.shape[-1] - size[1]) // 2
    return covered[:, top : top + size[0], left : left + size[1]]


def grid_sheet(rows: list[list[torch.Tensor]], cell: tuple[int, int], *, gap: int = 4) -> torch.Tensor:
    """Rows of [3, H, W] images -> one [3, H, W] contact sheet of equal cells ((height, width)), `gap` px of white
    between them: pictures of any aspect ratio line up in columns (each cropped to fill its cell, centred)."""
    columns = max(len(row) for row in rows)
    sheet = torch.ones(3, len(rows) * (cell[0] + gap) - gap, columns * (cell[1] + gap) - gap)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = r * (cell[0] + gap), c * (cell[1] + gap)
            sheet[:, y : y + cell[0], x : x + cell[1]] = crop_to_fill(image.float(), cell)
    return sheet


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def _to_tensors(img: Image.Image, max_size: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Convert an opened, oriented image to (rgb, alpha) tensors, resizing on the PIL side."""
    if img.mode in _HIGH_BIT_GREY or img.mode == "F":
        # Go through float so 16-bit grey keeps its precision instead of becoming 8-bit.
        grey = img.convert("F")
        if max_size is not None and max(img.size) > max_size:
            h, w = _fit(img.height, img.width, max_size)
            grey = grey.resize((w, h), Image.Resampling.LANCZOS)
        arr = np.array(grey, dtype=np.float32)
        if img.mode != "F":
            arr /= 65535.0
        elif arr.size and arr.max() > 1.0:
            arr /= 255.0  # float data beyond 1 is on Pillow's own 0-255 scale
        g = torch.from_numpy(arr).clamp_(0, 1).unsqueeze(0)
        return g.expand(3, -1, -1).contiguous(), None

    # convert() handles P palettes, 1-bit, LA, CMYK (naively, without a CMYK profile).
    img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    if max_size is not None and max(img.size) > max_size:
        h, w = _fit(img.height, img.width, max_size)
        img = img.resize((w, h), Image.Resampling.LANCZOS)  # premultiplies alpha itself
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)
    return (t[:3].contiguous(), t[3:].contiguous()) if img.mode == "RGBA" else (t, None)


def load_image(path: str | os.PathLike, *, max_size: int | None = None) -> LoadedImage:
    """Load an image file as float tensors; raise BadInputError naming the file if unusable."""
    path = Path(path)
    if max_size is not None:
        _check_max_size(max_size)
    if not path.exists():
        raise BadInputError(f"{path}: file not found.")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, not an image file.")
    if path.stat().st_size == 0:
        raise BadInputError(f"{path}: file is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; treat that as a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if max_size is not None and img.format == "JPEG":
                    # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less memory for big photos.
                    img.draft(None, _fit(img.height, img.width, max_size)[::-1])
                img.load()  # force the full decode here so truncated files fail inside the try
                return from_pil(img, max_size=max_size, path=path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SettingError(
            f"{path}: image exceeds the pixel limit ({Image.MAX_IMAGE_PIXELS} pixels); raise it with {{max_pixels}}."
        ) from None
    except UnidentifiedImageError:
        raise BadInputError(f"{path}: not a readable image (cannot identify image file).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        raise BadInputError(f"{path}: not a readable image ({reason}).") from None


def from_pil(img: Image.Image, *, max_size: int | None = None, path: Path | None = None) -> LoadedImage:
    """A PIL image as load_image returns a file: EXIF orientation applied, the longer side at most `max_size`, the
    transparency and an RGB ICC profile kept."""
    icc = img.info.get("icc_profile") or None
    # An ICC profile for CMYK or grey data would mislabel the RGB tensors we return.
    if icc is not None and icc[16:20] != b"RGB ":
        icc = None
    rgb, alpha = _to_tensors(ImageOps.exif_transpose(img), max_size)
    return LoadedImage(rgb=rgb, alpha=alpha, icc_profile=icc, path=path)


def load_resized(path: str | os.PathLike, *, size: int | None = None, max_size: int | None = None) -> LoadedImage:
    """load_image, then `size`: the shorter side becomes `size` (refused above the pixel limit); `max_size`: the
    longer side at most `max_size` (load_image's)."""
    image = load_image(path, max_size=max_size)
    if size:
        target = shorter_side_at(image.rgb.shape[-2:], size)
        check_pixel_limit(target[1], target[0], f"{path} with its shorter side at {size}")
        image.rgb = resize(image.rgb, target)
        image.alpha = None if image.alpha is None else resize(image.alpha, target)
    return image


def shorter_side_at(image_size, size: int) -> tuple[int, int]:
    """(height, width) of an image of `image_size` (height, width) scaled so that its shorter side is `size`."""
    height, width = image_size
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """A greyscale mask [H, W] in [0, 1] (a colour image is averaged over its channels)."""
    return load_image(path).rgb.mean(dim=0)


def fit_mask(mask: torch.Tensor, size: Sequence[int], what: str | os.PathLike, image: str = "the content") -> torch.Tensor:
    """A mask [h, w] resized (bilinear) to `size` (height, width) of `image`, whose aspect ratio it must have within a
    pixel; `what` and `image` name the mask and its image in the error."""
    height, width = size
    mask_h, mask_w = mask.shape
    if abs(round(mask_h * width / mask_w) - height) > 1:
        raise BadInputError(f"{what} is {mask_w}x{mask_h} but {image} is {width}x{height}; a mask needs the aspect ratio of its image")
    return resize(mask[None], (height, width), mode="bilinear")[0]


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """[C,H,W] float in [0,1] -> [H,W,C] uint8 with proper rounding (NaN -> 0)."""
    t = torch.nan_to_num(t.detach().to("cpu", torch.float32), nan=0.0).clamp(0, 1)
    return t.mul(255).add_(0.5).floor_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def to_pil(rgb: torch.Tensor, *, alpha: torch.Tensor | None = None, icc_profile: bytes | None = None) -> Image.Image:
    """rgb [3, H, W] in [0, 1] (and alpha [1, H, W]) -> an RGB (RGBA) PIL image, the ICC profile in its info (Pillow
    writes it back on save)."""
    if rgb.dim() == 4 and rgb.shape[0] == 1:
        rgb = rgb[0]
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W], got shape {tuple(rgb.shape)}")
    pixels = _to_uint8(rgb)
    if alpha is not None:
        a = alpha.reshape(1, *alpha.shape[-2:])
        if a.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(f"alpha shape {tuple(a.shape)} does not match rgb {tuple(rgb.shape)}")
        pixels = np.concatenate([pixels, _to_uint8(a)], axis=2)
    img = Image.fromarray(pixels)  # mode inferred: RGB or RGBA
    if icc_profile:
        img.info["icc_profile"] = icc_profile
    return img


def save_image(
    path: str | os.PathLike,
    rgb: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write rgb [3,H,W] (or [1,3,H,W]) atomically; the format comes from the extension."""
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SAVE_FORMATS))
        raise BadInputError(f"{path}: unknown image extension '{path.suffix}'; use one of {known}.")
    if not 1 <= quality <= 100:
        raise BadInputError(f"{path}: quality must be between 1 and 100, got {quality}.")
    if rgb.dim() == 4 and rgb.shape[0] == 1:
        rgb = rgb[0]
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"save_image expects a [3, H, W] tensor, got shape {tuple(rgb.shape)}")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory; give an image file name.")
    check_target(path, overwrite=overwrite)

    img = to_pil(rgb, alpha=alpha if fmt in _ALPHA_FORMATS else None)

    options: dict = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if icc_profile and fmt in _ICC_FORMATS:
        options["icc_profile"] = icc_profile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"{path}: cannot create the output folder ({e.strerror or e}).") from None
    # Same directory as the target, so os.replace is an atomic rename on one filesystem.
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    try:
        # O_EXCL never clobbers another file; mode 0o666 lets the umask decide, like open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise BadInputError(f"{path}: cannot write the image ({e.strerror or e}).") from None
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt, **options)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the rename makes it visible
        publish(tmp, path, overwrite=overwrite)  # never replaces a file that appeared meanwhile, unless overwrite
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # never leave a half-written file behind
        if isinstance(e, (OSError, ValueError)) and not isinstance(e, BadInputError):
            reason = getattr(e, "strerror", None) or e
            raise BadInputError(f"{path}: cannot write the image ({reason}).") from None
        raise
    return path
