"""Teacher sets: (content, style, refined picture) triples made once, for distillation in training.

A refined picture (`--refine 100`: the model's picture optimised for its own objective, refine.py) says pixel by
pixel what a better answer to this (photo, painting) pair looks like; `adaattn train --teacher-set DIR` pulls the
model's output toward it (losses.distillation_loss). Refining costs seconds per 256-px triple on a 2-core CPU, so the
set is made once (`python tools/teacher_set.py`, resumable) and reused for many training steps.

Layout of DIR: `teacher-set.json` (how it was made, and which training images it may use) and one PNG per triple,
`000000.png` ..., each the three pictures side by side: content | style | refined. Triple i is sample i of the
training data (data.StyleTransferData with the set's seed and sizes) on the training side of the held-out split,
so a set never contains a held-out image, and a training run on other folders or another split is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import BadInputError

MANIFEST = "teacher-set.json"
FORMAT = "adaattn-teacher-set/1"


def images_signature(paths: list[Path], root: str | Path) -> str:
    """SHA-256 of the sorted paths relative to `root`: which images, not their bytes (cheap for thousands)."""
    names = sorted(str(Path(p).relative_to(root)) for p in paths)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


@dataclass(frozen=True)
class TeacherSetSpec:
    """How a teacher set is made; written to DIR/teacher-set.json with the data signature and the model's hash."""

    model: str = "adaattn"
    refine_steps: int = 100  # the refinement's budget, `--refine N` (refine.plan)
    count: int = 2000
    crop_size: int = 256
    load_size: int = 320
    holdout: int = 40
    seed: int = 0
    precision: str = "auto"
    match_color: bool = True  # Stylizer.stylize's, for the picture refinement starts from
    # "budget": refine_steps is `--refine N`'s budget (refine.plan, since 2026-12-07); sets made before took that
    # many steps of the earlier schedule, and a stopped one cannot go on with the new
    refine_meaning: str = "budget"


def read_manifest(directory: str | Path) -> dict:
    """DIR's manifest (how its set was made; json errors propagate), with the fields of sets made before a field
    existed filled as they were made: match_color False (refined from the model's own colours), refine_meaning
    "steps"."""
    return {"match_color": False, "refine_meaning": "steps", **json.loads((Path(directory) / MANIFEST).read_text())}


def generate(
    content: str | Path,
    style: str | Path,
    directory: str | Path,
    spec: TeacherSetSpec,
    *,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    stylizer=None,
) -> int:
    """Write the triples of `spec` that DIR does not hold yet (a stopped run goes on where it stopped); returns how
    many were written. A DIR made with another spec or other images is refused. `stylizer`: the Stylizer of
    spec.model to use (default: loaded here, with the CLI's style positions)."""
    from .api import Stylizer
    from .data import StyleTransferData, find_images, split_holdout
    from .image_io import save_image
    from .weights import resolve_model_path

    directory = Path(directory)
    content_paths = split_holdout(find_images(content)[0], spec.holdout)[0]
    style_paths = split_holdout(find_images(style)[0], spec.holdout)[0]
    model_path = resolve_model_path(spec.model)
    manifest = {
        "format": FORMAT,
        **asdict(spec),
        "model_file": model_path.name,
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "content": str(content),
        "style": str(style),
        "content_signature": images_signature(content_paths, content),
        "style_signature": images_signature(style_paths, style),
    }
    manifest_path = directory / MANIFEST
    if manifest_path.is_file():
        earlier = read_manifest(directory)
        different = [k for k in manifest if k not in ("count", "content", "style") and earlier.get(k) != manifest[k]]
        if different:
            raise BadInputError(f"{directory} holds a teacher set made with other {', '.join(different)}; use another folder")
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")

    if stylizer is None:
        stylizer = Stylizer.load(model_path, device=device, precision=spec.precision)
    data = StyleTransferData(content_paths, style_paths, seed=spec.seed, load_size=spec.load_size, crop_size=spec.crop_size, flip=True)
    written = 0
    for index in range(spec.count):
        path = directory / f"{index:06d}.png"
        if path.is_file():
            continue
        sample = data[index]
        with torch.inference_mode():
            picture = stylizer.stylize(
                sample["content"], [sample["style"]], seed=spec.seed, refine=spec.refine_steps, match_color=spec.match_color
            )
        save_image(path, torch.cat([sample["content"], sample["style"], picture], dim=-1), overwrite=True)
        written += 1
        if progress is not None:
            progress(index + 1, spec.count)
    return written


def open_teacher_set(
    directory: str | Path,
    *,
    content: str | Path,
    content_images: list[Path],
    style: str | Path,
    style_images: list[Path],
    holdout: int,
    size: int = 0,
) -> list[Path]:
    """The triples of the set in DIR that a training run may use: the first `size` (0: every finished one).
    content_images, style_images: the training side of `holdout`'s split of the folders content and style, as the run
    found them. One BadInputError if DIR is not a teacher set or was made from other images or another split."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise BadInputError(f"{directory}: not a teacher set (no readable {MANIFEST}; make one with tools/teacher_set.py)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadInputError(f"{directory}: {MANIFEST} is not an adaattn teacher set of format {FORMAT}")
    if (
        manifest.get("holdout") != holdout
        or manifest.get("content_signature") != images_signature(content_images, content)
        or manifest.get("style_signature") != images_signature(style_images, style)
    ):
        raise BadInputError(
            f"{directory}: the teacher set was made from other training images (its folders {manifest.get('content')}, "
            f"{manifest.get('style')}, holdout {manifest.get('holdout')}); make one for these with tools/teacher_set.py"
        )
    triples = []
    for index in range(int(manifest.get("count", 0))):  # the finished prefix: a set being made is usable
        path = directory / f"{index:06d}.png"
        if not path.is_file():
            break
        triples.append(path)
    if size:
        if size > len(triples):
            raise BadInputError(f"{directory}: the run uses {size} triples but the teacher set holds {len(triples)}")
        triples = triples[:size]
    if not triples:
        raise BadInputError(f"{directory}: the teacher set holds no finished triples yet")
    return triples


class TeacherSetData(torch.utils.data.Dataset):
    """Sample i -> {content, style, refined}: triple number perm_e[i mod N] of epoch e = i // N (a permutation seeded
    by (seed, e)), content and refined cropped to `crop_size` at the same place and flipped together. The style stays
    whole: the refined picture was optimised against the whole style's statistics. Like data.StyleTransferData, a
    pure function of (seed, i)."""

    def __init__(self, triples: list[Path], *, seed: int, crop_size: int, flip: bool = True):
        self.triples, self.seed, self.crop_size, self.flip = triples, seed, crop_size, flip

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from .image_io import load_image

        count = len(self.triples)
        epoch, slot = divmod(index, count)
        triple = self.triples[int(np.random.default_rng([self.seed, 7, epoch]).permutation(count)[slot])]
        strip = load_image(triple).rgb
        side = strip.shape[-2]
        content, style, refined = (strip[..., k * side : (k + 1) * side] for k in range(3))
        rng = np.random.default_rng([self.seed, index])
        crop = min(self.crop_size, side)
        top, left = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        content, refined = (x[:, top : top + crop, left : left + crop] for x in (content, refined))
        if self.flip and rng.random() < 0.5:
            content, refined = content.flip(-1), refined.flip(-1)
        return {"content": content, "style": style, "refined": refined}
