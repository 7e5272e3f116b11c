"""Training data: image folders, reproducible augmentation, video-like view pairs.

Sample i of a run is a pure function of (seed, i): which content and style files, the crop, the flip.
So a resumed run sees exactly the data the uninterrupted run would have, whatever the worker count.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import BadInputError, SettingError
from .functional import warp
from .image_io import IMAGE_EXTENSIONS, load_image

log = logging.getLogger(__name__)


def find_images(folder: str | Path) -> tuple[list[Path], int]:
    """Readable images below `folder` (recursive, sorted) and the count of unreadable ones skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: not a folder of images")
    found, skipped = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()):
        try:
            with Image.open(path) as image:
                image.verify()  # reads the header and structure, not the pixels
            found.append(path)
        except Exception as error:
            skipped += 1
            log.warning("skipping %s: %s", path, error)
    if not found:
        raise BadInputError(f"{folder}: no readable images found")
    return found, skipped


def split_holdout(paths: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """Deterministic validation split (training, held out): the same files are held out on every run and resume;
    count -1 holds out min(40, 10 %)."""
    if count < 0:
        count = min(40, len(paths) // 10)
    order = np.random.default_rng(12345).permutation(len(paths))
    held = {int(i) for i in order[:count]}
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def random_crop(image: torch.Tensor, rng: np.random.Generator, *, load_size: int, crop_size: int, flip: bool) -> torch.Tensor:
    """Resize (shorter side to load_size, at least the crop), random crop, random horizontal flip."""
    height, width = image.shape[-2:]
    scale = max(load_size, crop_size) / min(height, width)
    size = (max(crop_size, round(height * scale)), max(crop_size, round(width * scale)))
    image = F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=scale < 1)[0].clamp(0, 1)
    top, left = rng.integers(0, size[0] - crop_size + 1), rng.integers(0, size[1] - crop_size + 1)
    image = image[:, top : top + crop_size, left : left + crop_size]
    return image.flip(-1) if flip and rng.random() < 0.5 else image


def shifted_view(image: torch.Tensor, rng: np.random.Generator, *, max_shift=0.04, max_scale=0.05, max_degrees=3.0):
    """A second 'frame' of the same picture: small random translation, zoom and rotation (reflected borders).

    Returns the view and its motion: the [2, 3] affine_grid matrix, so view = warp(image, motion)."""
    angle = math.radians(rng.uniform(-max_degrees, max_degrees))
    scale = 1.0 + rng.uniform(-max_scale, max_scale)
    shift = rng.uniform(-max_shift, max_shift, size=2) * 2  # affine_grid works in [-1, 1] units
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    motion = torch.tensor([[cos, -sin, shift[0]], [sin, cos, shift[1]]], dtype=torch.float32)
    return warp(image[None], motion[None], padding_mode="reflection")[0].clamp(0, 1), motion


class StyleTransferData(torch.utils.data.Dataset):
    """Sample i -> {content, style[, content2, motion]}: independent random content and style, seeded by (seed, i)."""

    def __init__(self, content: list[Path], style: list[Path], *, seed: int, load_size: int, crop_size: int, flip=True, view_pairs=False):
        self.content, self.style = content, style
        self.seed, self.load_size, self.crop_size, self.flip, self.view_pairs = seed, load_size, crop_size, flip, view_pairs

    def __len__(self) -> int:
        return 2**62  # endless: indexed by the global sample number

    def _crop(self, paths: list[Path], rng: np.random.Generator) -> torch.Tensor:
        for _ in range(10):  # a file that broke since the scan: warn, draw another
            path = paths[rng.integers(len(paths))]
            try:
                return random_crop(load_image(path).rgb, rng, load_size=self.load_size, crop_size=self.crop_size, flip=self.flip)
            except Exception as error:
                log.warning("skipping %s: %s", path, error)
        raise BadInputError("ten unreadable images in a row; check the training folders")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        sample = {"content": self._crop(self.content, rng), "style": self._crop(self.style, rng)}
        if self.view_pairs:
            sample["content2"], sample["motion"] = shifted_view(sample["content"], rng)
        return sample


class SampleRange(torch.utils.data.Sampler):
    """The global sample numbers of steps start..stop-1 that process `rank` of `processes` loads.

    Step s uses samples s * batch_size .. (s + 1) * batch_size - 1, and process r takes the r-th of equal
    slices of them. So a step sees the same samples whatever the number of processes, and a run resumed at
    step s, with as many processes or another number, goes on with the samples the whole run would have seen."""

    def __init__(self, start: int, stop: int, batch_size: int, *, rank: int = 0, processes: int = 1):
        if batch_size % processes:
            raise SettingError(f"{{batch_size}} {batch_size} does not split evenly over {processes} processes")
        self.start, self.stop, self.batch_size, self.rank, self.processes = start, stop, batch_size, rank, processes

    def __iter__(self):
        share = self.batch_size // self.processes
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.rank * share
            yield from range(first, first + share)

    def __len__(self) -> int:
        return (self.stop - self.start) * (self.batch_size // self.processes)
