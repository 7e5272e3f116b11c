"""What the commands share: options, console output, error reporting, inputs and the batch loop.

Nothing here imports torch at module level: `adaattn --help` and `--version` must stay fast. Heavy
modules (api, image_io, weights) are imported inside the functions that need them.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .. import distributed
from ..config import DEFAULT_STYLE_POSITIONS
from ..errors import AdaattnError, BadInputError, WeightsError

if TYPE_CHECKING:
    import torch

    from ..api import Stylizer
    from ..image_io import LoadedImage

log = logging.getLogger("adaattn_cli.cli")
console = Console(stderr=True)  # progress, "wrote ..." lines and errors; stdout is for command output


@dataclass
class Settings:
    """Set by the global callback for the current invocation."""

    quiet: bool = False
    verbose: bool = False


settings = Settings()


def configure(*, quiet: bool, verbose: bool) -> None:
    """Apply -q/-v: progress and info lines off with -q; library logging and tracebacks on with -v."""
    from rich.logging import RichHandler

    # Under torchrun, process 0 shows progress and summaries; the others only their own files' errors.
    settings.quiet, settings.verbose = quiet or (not distributed.current_world().is_main and not verbose), verbose
    package_log = logging.getLogger("adaattn_cli")
    package_log.setLevel(logging.INFO if verbose else logging.NOTSET)  # NOTSET: the root logger decides (warnings)
    if not any(isinstance(handler, RichHandler) for handler in package_log.handlers):
        package_log.addHandler(RichHandler(console=console, show_time=False, show_path=False))


def info(message: str) -> None:
    if not settings.quiet:
        console.print(escape(message), soft_wrap=True, highlight=False)


def exit_code(error: BaseException) -> int:
    """2 for bad input or usage (files, values, weights the user pointed at), 1 for anything else."""
    return 2 if isinstance(error, (BadInputError, WeightsError)) else 1


def report_error(error: BaseException, *, subject: Path | None = None) -> None:
    """One red line on stderr (prefixed with `subject` unless the message names it); traceback with -v.

    Under torchrun, input errors that are not about one file are the same in every process: process 0 reports them."""
    if subject is None and exit_code(error) == 2 and not distributed.current_world().is_main:
        return
    message = str(error) if isinstance(error, AdaattnError) else f"{type(error).__name__}: {error}"
    if subject is not None and str(subject) not in message:
        message = f"{subject}: {message}"
    if settings.verbose:
        from rich.traceback import Traceback

        console.print(Traceback.from_exception(type(error), error, error.__traceback__))
    elif not isinstance(error, AdaattnError):
        message += " (run with --verbose for the traceback)"
    print_error(message)


def print_error(message: str) -> None:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def usage_message(error) -> str:
    """A usage error (click's UsageError, as Typer raises it) as one line naming the flag and the value.

    Typer would print a usage line, a hint and a boxed message; scripts and the README want one line."""
    param, text = getattr(error, "param", None), (getattr(error, "message", "") or "").strip()
    if param is None or not text:  # unknown option or command, missing argument: click's sentence and a hint
        command = getattr(getattr(error, "ctx", None), "command_path", "adaattn")
        return f"{error.format_message().rstrip('.')} (see {command} -h)"
    flag = (param.metavar or param.name.upper()) if param.param_type_name == "argument" else max(param.opts, key=len)
    # Typer checks types and ranges with pydantic, whose message omits the value: take it from the cause.
    errors = getattr(error.__cause__, "errors", None)
    value = errors()[0].get("input") if callable(errors) and errors() else None
    text = text.replace("Input should be", "should be").replace("Value error, ", "").rstrip(".")
    return f"{flag} {value}: {text}" if value is not None and str(value) not in text else f"{flag}: {text}"


# --- options shared by stylize and blend-styles ----------------------------------------------------


class Method(str, Enum):
    """Bundled models by method; keep in step with adaattn_cli.models.MODELS (checked by a test)."""

    adaattn = "adaattn"
    adain = "adain"
    sanet = "sanet"
    adaattn_video = "adaattn-video"


def check_fraction(value: float | None) -> float | None:
    """0 to 1; NaN is refused here (a range check alone would call it "more than 1")."""
    if value is not None and not 0 <= value <= 1:
        raise typer.BadParameter(f"{value} is not a number from 0 to 1")
    return value


def _check_device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return value


ContentArgument = Annotated[
    List[str],
    typer.Argument(
        help="Content images: files, folders (their images, not recursive) or quoted glob patterns.",
        metavar="CONTENT",
        show_default=False,
    ),
]
AlphaOption = Annotated[
    float, typer.Option("--alpha", "-a", callback=check_fraction, help="Style strength, 0-1: 1 = full style, 0 = the content.")
]
OutputOption = Annotated[
    Optional[str],  # a string, not a Path: Path drops the trailing "/" that marks a folder
    typer.Option(
        "--output", "-o", metavar="PATH",
        help="Output file (one content image, image extension) or folder (created; a name without extension or "
             "ending in /). \\[default: current folder]",
        show_default=False,
    ),
]
MethodOption = Annotated[
    Optional[Method],
    typer.Option(help="Bundled model to use when --model is not given. \\[default: adaattn]", show_default=False),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(help="Model file (.safetensors), or a model name on the weights search path.", metavar="FILE|NAME",
                 show_default=False),
]
SizeOption = Annotated[
    Optional[int],
    typer.Option(min=32, help="Resize the content so its shorter side is N pixels.", metavar="N", show_default=False),
]
MaxSizeOption = Annotated[
    Optional[int],
    typer.Option(min=32, help="Shrink the content only if its longer side exceeds N pixels.", metavar="N",
                 show_default=False),
]
StyleSizeOption = Annotated[
    int, typer.Option(min=0, help="Resize style images so their shorter side is N pixels (0 = keep).", metavar="N")
]
MaskOption = Annotated[
    Optional[List[Path]],
    typer.Option(
        exists=True, dir_okay=False, metavar="FILE",
        help="Greyscale image, white where the style applies; same aspect ratio as the content. One per style.",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str, typer.Option(callback=_check_device, metavar="DEVICE", help="Where to run: auto, cpu, cuda, cuda:N or mps.")
]
SeedOption = Annotated[int, typer.Option(help="Seed for the style positions that attention samples.")]


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


PrecisionOption = Annotated[
    Precision,
    typer.Option(help="bf16: bf16 convolutions and attention matmuls (2-3x faster on CPUs with avx512_bf16, within "
                      "bf16 tolerance); fp32: exact; auto: bf16 where it is faster (CUDA, avx512_bf16/AMX CPUs)."),
]
StylePositionsOption = Annotated[
    int,
    typer.Option(min=0, metavar="N", help="Style positions each attention block may attend to (a seeded random subset "
                                         "beyond N; keeps time linear in the content's pixels). 0 = all."),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")]
RefineOption = Annotated[
    int,
    typer.Option(min=0, metavar="N",
                 help="Refine each picture with N optimisation steps in the encoder's feature space: painted rather than "
                      "embossed. 50 recommended (~18 s at 512x512 on a 2-core CPU, 25 ~10 s); 0 = the model's picture."),
]
TileOption = Annotated[
    Optional[int],
    typer.Option(min=0, metavar="N", show_default=False,
                 help="Run contents larger than N px per side in N-px tiles: memory bounded by the tile, same result. "
                      "0 = never. \\[default: 2048-px tiles above 4096x4096 pixels]"),
]
ShardOption = Annotated[
    Optional[str],
    typer.Option(metavar="K/N", show_default=False,
                 help="Only the K-th of N shares of the contents (1 <= K <= N; the same split every time): one job of an "
                      "array. Under torchrun the share is split again over the processes."),
]
MaxPixelsOption = Annotated[
    Optional[int],
    typer.Option(min=1, help="Refuse images with more pixels than this. \\[default: Pillow's limit, about 89 million]",
                 metavar="N", show_default=False),
]


# --- inputs and outputs ------------------------------------------------------------------------------


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


def plan_outputs(contents: list[Path], output: str | Path | None, name: Callable[[Path], str]) -> list[tuple[Path, Path]]:
    """(content, output path) pairs: `output` is the file for a single content if it has an image
    extension, else the folder for `name(content)` files.

    A folder is a name without extension, one ending in "/" or an existing folder; any other extension is
    refused, so a typo (`-o out.jgp`) is not silently taken for a folder."""
    from ..image_io import SAVE_EXTENSIONS

    folder = Path(".")
    if output is not None:
        path = Path(output)
        if not str(output).endswith(("/", os.sep)) and not path.is_dir() and path.suffix:
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
    content: list[str], output: str | None, name: Callable[[Path], str], *,
    size: int | None, max_size: int | None, max_pixels: int | None, shard: str | None = None,
) -> list[tuple[Path, Path]]:
    """Checks that need no model, then this process's (content, output) pairs: a typo fails before the model loads.

    Every process plans all the outputs (so a clash is refused the same way everywhere), then takes its
    share: the --shard K/N, and under torchrun its rank's part of that."""
    if size is not None and max_size is not None:
        raise BadInputError("--size and --max-size exclude each other; give one")
    part, parts = distributed.parse_shard(shard) if shard else (0, 1)
    if max_pixels is not None:
        from ..image_io import set_pixel_limit

        set_pixel_limit(max_pixels)
    jobs = distributed.share(plan_outputs(gather_contents(content), output, name), part, parts)
    world = distributed.current_world()
    return distributed.share(jobs, world.rank, world.size)


def load_stylizer(
    method: Method | None, model: str | None, device: str, precision: Precision = Precision.auto,
    style_positions: int = DEFAULT_STYLE_POSITIONS,
    tile_size: int | None = None,
) -> Stylizer:
    """The model from --model, else the bundled one named by --method (adaattn by default)."""
    from ..api import Stylizer
    from ..devices import pick_device, tune_cpu_for_inference
    from ..weights import load_model

    if method is not None and model is not None:
        raise BadInputError("--method and --model exclude each other; give one")
    world = distributed.current_world()
    target = distributed.rank_device(pick_device(device), world)  # under torchrun: one GPU per process
    distributed.join(world, target)
    tune_cpu_for_inference()
    loaded = load_model(model or (method or Method.adaattn).value)
    stylizer = Stylizer(
        loaded, device=str(target), precision=Precision(precision).value, style_positions=style_positions, tile_size=tile_size
    )
    log.info("model %s (%s) on %s, %s", model or loaded.method, loaded.method, stylizer.device, stylizer.precision)
    return stylizer


def load_masks(paths: list[Path] | None) -> list[tuple[Path, torch.Tensor]]:
    """Greyscale masks [H, W] in [0, 1] with their paths (colour masks are averaged over their channels)."""
    from ..image_io import load_image

    return [(path, load_image(path).rgb.mean(dim=0)) for path in paths or []]


def fit_masks(masks: list[tuple[Path, torch.Tensor]], content: torch.Tensor) -> list[torch.Tensor] | None:
    """Each mask resized to the content [3, H, W] (None without masks); aspect ratios must match within a pixel."""
    from ..image_io import resize

    height, width = content.shape[-2:]
    fitted = []
    for path, mask in masks:
        mask_h, mask_w = mask.shape
        if abs(round(mask_h * width / mask_w) - height) > 1:
            raise BadInputError(
                f"{path} is {mask_w}x{mask_h} but the content is {width}x{height}; a mask needs the content's aspect ratio"
            )
        fitted.append(resize(mask[None], (height, width), mode="bilinear")[0])
    return fitted or None


# --- the batch loop ----------------------------------------------------------------------------------


def _progress_bar(*extra_columns, hidden: bool = False):
    """A transient Rich bar on stderr: label, bar, done/total, elapsed, ETA; off with -q or without a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn(), *extra_columns)
    hidden = hidden or settings.quiet or not console.is_terminal
    return Progress(*columns, console=console, transient=True, disable=hidden)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """Images done in a batch (no bar for a single image); yields `advance()`."""
    with _progress_bar(hidden=total < 2) as progress:
        task = progress.add_task("images", total=total)
        yield lambda: progress.advance(task)


@contextmanager
def part_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Parts of one image's work (Stylizer.stylize's tiles, refinement steps), with an ETA; yields
    `advance(done, total)`. The bar appears with the first call, so work without parts shows none."""
    with _progress_bar() as progress:
        task = None

        def advance(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task(label, total=total)
            progress.update(task, completed=done)

        yield advance


@contextmanager
def frame_progress(total: int | None) -> Iterator[Callable[[int], None]]:
    """Video frames done, with frames per second; `total` None = unknown. Yields `advance(frames)`."""
    from rich.progress import TextColumn

    with _progress_bar(TextColumn("{task.fields[rate]}")) as progress:
        task = progress.add_task("frames", total=total, rate="")
        start, done = time.perf_counter(), 0

        def advance(frames: int) -> None:
            nonlocal done
            done += frames
            progress.update(task, advance=frames, rate=f"{done / (time.perf_counter() - start):.1f} fps")

        yield advance


@contextmanager
def step_progress(total: int, *, start: int = 0) -> Iterator[Callable[[int, dict], None]]:
    """Training steps with the latest values (e.g. losses); yields `advance(step, values)`."""
    from rich.progress import TextColumn

    with _progress_bar(TextColumn("{task.fields[values]}")) as progress:
        task = progress.add_task("step", total=total, completed=start, values="")

        def advance(step: int, values: dict) -> None:
            shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
            progress.update(task, completed=step, values=shown)

        yield advance


def run_batch(
    jobs: list[tuple[Path, Path]],
    render: Callable[[LoadedImage], LoadedImage],
    *,
    size: int | None,
    max_size: int | None,
    overwrite: bool,
) -> None:
    """Load each content, render it, write the result atomically. A failing input is reported and
    skipped; the exit code is 2 at the end if any failed (in any process, under torchrun)."""
    from ..image_io import load_resized, save_image

    batch_start = time.perf_counter()
    failed = 0
    with _progress(len(jobs)) as advance:
        for content_path, output_path in jobs:
            start = time.perf_counter()
            try:
                if output_path.exists() and not overwrite:  # checked first: skip the work, not just the write
                    raise BadInputError(f"{output_path} exists; pass --overwrite to replace it.")
                result = render(load_resized(content_path, size=size, max_size=max_size))
                save_image(
                    output_path, result.rgb, alpha=result.alpha, icc_profile=result.icc_profile, overwrite=overwrite
                )
            except AdaattnError as error:
                failed += 1
                report_error(error, subject=content_path)
            else:
                info(f"wrote {output_path} ({time.perf_counter() - start:.1f} s)")
            advance()
    world = distributed.current_world()
    failed, total = (int(n) for n in distributed.sum_over_processes([failed, len(jobs)], world))
    if world.size > 1 and world.is_main:
        info(f"{total - failed} of {total} images written by {world.size} processes ({time.perf_counter() - batch_start:.1f} s)")
    if failed:
        if total > 1 and world.is_main:
            console.print(f"[red]error:[/] {failed} of {total} images failed", highlight=False)
        raise typer.Exit(code=2)
