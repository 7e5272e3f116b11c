"""What a command works on: the content files and their outputs, the model, the masks.

Nothing here imports torch at module level (see cli/__init__.py): image_io, api and weights are imported inside
the functions that need them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import typer

from .. import distributed
from ..errors import BadInputError
from .console import info, log
from .options import Method, Precision

if TYPE_CHECKING:
    import torch

    from ..api import Stylizer


def gather_contents(items: list[str]) -> list[Path]:
    """Files as given, images inside folders (sorted) and glob matches; an item that yields nothing is an error."""
    from ..image_io import IMAGE_EXTENSIONS

    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not matches:
                raise BadInputError(f"{path}: no images ({' '.join(IMAGE_EXTENSIONS)}) in this folder")
        elif path.exists():
            matches = [path]
        elif glob.has_magic(item):
            matches = sorted(p for p in map(Path, glob.glob(item)) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not matches:
                raise BadInputError(f"{item}: no images match this pattern")
        else:
            raise BadInputError(f"{path}: file not found")
        found += [p for p in matches if p not in found]
    return found


def output_suffix(content: Path) -> str:
    """Outputs keep the content's format, except GIF (not written) which becomes PNG."""
    return ".png" if content.suffix.lower() == ".gif" else content.suffix


def names_folder(output: str | Path) -> bool:
    """Whether `-o` names a folder: a name ending in "/", an existing folder, or a name without extension.

    Give the string as typed: a Path drops the trailing "/"."""
    path = Path(output)
    return str(output).endswith(("/", os.sep)) or path.is_dir() or not path.suffix


def plan_outputs(contents: list[Path], output: str | Path | None, name: Callable[[Path], str]) -> list[tuple[Path, Path]]:
    """(content, output path) pairs: `output` is the file for a single content if it has an image
    extension, else the folder for `name(content)` files.

    A folder is what names_folder says; any other extension is refused, so a typo (`-o out.jgp`) is not
    silently taken for a folder."""
    from ..image_io import SAVE_EXTENSIONS

    folder = Path(".")
    if output is not None:
        path = Path(output)
        if not names_folder(output):
            if path.suffix.lower() not in SAVE_EXTENSIONS:
                raise BadInputError(
                    f"-o {output}: '{path.suffix}' is not an image format adaattn writes ({' '.join(SAVE_EXTENSIONS)}); "
                    "for a folder, give a name without extension or end it with /"
                )
            if len(contents) > 1:
                raise BadInputError(f"-o {output} is one file but there are {len(contents)} content images; give a folder")
            return [(contents[0], path)]
        folder = path
    jobs = [(content, folder / name(content)) for content in contents]
    targets: dict[Path, Path] = {}
    for content, target in jobs:
        if target in targets:
            raise BadInputError(f"{targets[target]} and {content} would both be written to {target}; rename one")
        targets[target] = content
    return jobs


def prepare_jobs(
    content: list[str],
    output: str | None,
    name: Callable[[Path], str],
    *,
    size: int | None,
    max_size: int | None,
    max_pixels: int | None,
    shard: tuple[int, int] | None = None,
) -> list[tuple[Path, Path]]:
    """Checks that need no model, then this process's (content, output) pairs: a typo fails before the model loads.

    Every process plans all the outputs (so a clash is refused the same way everywhere), then takes its
    share: the --shard K/N (options.parse_shard's (K - 1, N)), and under torchrun its rank's part of that."""
    if size is not None and max_size is not None:
        raise BadInputError("--size and --max-size exclude each other; give one")
    part, parts = shard or (0, 1)
    if max_pixels is not None:
        from ..image_io import set_pixel_limit

        set_pixel_limit(max_pixels)
    planned = plan_outputs(gather_contents(content), output, name)
    jobs = distributed.share(planned, part, parts)
    if not jobs:  # a job array with more jobs than images: nothing to do, which is no error, but say so
        info(f"share {part + 1} of {parts} holds none of the {len(planned)} content images; nothing to do")
        raise typer.Exit()
    world = distributed.current_world()
    return distributed.share(jobs, world.rank, world.size)


def load_stylizer(
    method: Method | None,
    model: str | None,
    device: str,
    precision: Precision = Precision.auto,
    style_positions: int | None = None,
    tile_size: int | None = None,
) -> Stylizer:
    """The model from --model, else the bundled one named by --method (adaattn by default); style_positions None:
    the method's default (methods.py)."""
    from ..api import Stylizer
    from ..devices import pick_device, tune_cpu_for_inference

    if method is not None and model is not None:
        raise BadInputError("--method and --model exclude each other; give one")
    world = distributed.current_world()
    target = distributed.rank_device(pick_device(device), world)  # under torchrun: one GPU per process
    distributed.join(world, target)
    tune_cpu_for_inference()
    stylizer = Stylizer.load(
        model or (method or Method("adaattn")).value,
        device=target,
        precision=Precision(precision).value,
        style_positions=style_positions,
        tile_size=tile_size,
    )
    method_name = stylizer.model.method
    log.info("model %s (%s) on %s, %s", model or method_name, method_name, stylizer.device, stylizer.precision)
    return stylizer


def load_style_image(path: Path, style_size: int) -> torch.Tensor:
    """A --style file as [3, h, w], its shorter side resized to `style_size` (0: kept); one too small is named."""
    from ..api import check_image
    from ..image_io import load_resized

    rgb = load_resized(path, size=style_size or None).rgb
    check_image(rgb, f"style image {path}")
    return rgb


def load_masks(paths: list[Path] | None) -> list[tuple[Path, torch.Tensor]]:
    """--mask files as greyscale masks [H, W] in [0, 1], with their paths (image_io.load_mask)."""
    from ..image_io import load_mask

    return [(path, load_mask(path)) for path in paths or []]


def fit_masks(masks: list[tuple[Path, torch.Tensor]], content: torch.Tensor) -> list[torch.Tensor] | None:
    """Each mask resized to the content [3, H, W] (None without masks); aspect ratios must match within a pixel."""
    from ..image_io import fit_mask

    return [fit_mask(mask, content.shape[-2:], path) for path, mask in masks] or None
