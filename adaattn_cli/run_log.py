"""What a training run leaves to read: log.jsonl (losses per logged step), losses.png, sample sheets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from .losses import with_current_names


class RunLog:
    """The losses of every step of a run (`history`) and WORKDIR/log.jsonl, which gets every `every`-th step and
    the last. Only the process that writes (process 0) opens the file."""

    def __init__(self, workdir: Path, *, every: int, writes: bool = True):
        self.path, self.every, self.writes = workdir / "log.jsonl", every, writes
        self.history: list[dict] = []
        self._file: TextIO | None = None

    def resume_at(self, step: int) -> None:
        """Read back the steps up to `step` (a checkpoint's) and drop the lines written after it."""
        if not (self.writes and self.path.is_file()):
            return
        records = (with_current_names(json.loads(line)) for line in self.path.read_text().splitlines())
        self.history = [r for r in records if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.history))

    def __enter__(self) -> "RunLog":
        if self.writes:
            self._file = open(self.path, "a")
        return self

    def __exit__(self, *exc) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def add(self, record: dict, *, last: bool) -> None:
        self.history.append(record)
        if self._file and (record["step"] % self.every == 0 or last):
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def recent_means(self, count: int = 100) -> dict[str, float]:
        """Each loss averaged over the last `count` steps (a model file's provenance)."""
        recent = self.history[-count:]
        if not recent:
            return {}
        return {k: float(np.mean([r[k] for r in recent if k in r])) for k in recent[-1] if k not in ("step", "lr", "time")}


@torch.no_grad()
def write_samples(model, contents: list[Path], styles: list[Path], *, crop_size: int, device, path: Path) -> Path:
    """Sample sheet: content | style | output rows of centre-ish crops (a fixed seed: the same crops every time)."""
    from .data import random_crop
    from .image_io import load_image, save_image

    rng = np.random.default_rng(0)
    crop = lambda p: random_crop(load_image(p).rgb, rng, load_size=crop_size, crop_size=crop_size, flip=False)  # noqa: E731
    rows = []
    was_training = model.training
    model.eval()
    for content_path, style_path in zip(contents, styles):
        content, style = crop(content_path)[None].to(device), crop(style_path)[None].to(device)
        output = model(content, style, generator=torch.Generator().manual_seed(0)).clamp(0, 1)
        rows.append(torch.cat([content, style, output], dim=-1)[0].float().cpu())
    model.train(was_training)
    return save_image(path, torch.cat(rows, dim=-2), overwrite=True)


def plot_losses(history: list[dict], path: Path, size=(640, 360)) -> None:
    """A small loss-curve PNG (log scale, one line per term) drawn with Pillow: no plotting dependency."""
    from PIL import Image, ImageDraw

    if len(history) < 2:
        return
    names = [k for k in history[-1] if k not in ("step", "lr", "time")]
    colours = ["black", "red", "blue", "green", "orange", "purple", "brown"]
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    steps = [r["step"] for r in history]
    values = {n: np.log10(np.maximum([r.get(n, np.nan) for r in history], 1e-12)) for n in names}
    low = min(np.nanmin(v) for v in values.values())
    high = max(np.nanmax(v) for v in values.values())
    span = max(high - low, 1e-6)
    left, top, width, height = 50, 20, size[0] - 60, size[1] - 50
    draw.rectangle([left, top, left + width, top + height], outline="grey")
    for index, name in enumerate(names):
        xs = [left + width * (s - steps[0]) / max(1, steps[-1] - steps[0]) for s in steps]
        ys = [top + height * (1 - (v - low) / span) for v in values[name]]
        draw.line(list(zip(xs, ys)), fill=colours[index % len(colours)], width=1)
        draw.text((left + 5 + 90 * index, size[1] - 20), name, fill=colours[index % len(colours)])
    draw.text((5, top), f"1e{high:.1f}", fill="black")
    draw.text((5, top + height - 10), f"1e{low:.1f}", fill="black")
    draw.text((left + width - 80, top + height + 5), f"step {steps[-1]}", fill="black")
    image.save(path)
