"""The batch loop of stylize and blend-styles: load, render and write each content; report failures.

Nothing here imports torch at module level (see cli/__init__.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import typer

from .. import distributed
from ..errors import AdaattnError
from ..files import check_target
from . import console as output
from .console import info, report_error
from .progress import image_progress

if TYPE_CHECKING:
    from ..image_io import LoadedImage


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
    world = distributed.current_world()
    # Under torchrun the bar (process 0's) counts its own share: the other processes report nothing until the end.
    with image_progress(len(jobs), "images" if world.size == 1 else f"images (process 0 of {world.size})") as advance:
        for index, (content_path, output_path) in enumerate(jobs):
            start = time.perf_counter()
            try:
                check_target(output_path, overwrite=overwrite)  # checked first: skip the work, not just the write
                result = render(load_resized(content_path, size=size, max_size=max_size))
                save_image(output_path, result.rgb, alpha=result.alpha, icc_profile=result.icc_profile, overwrite=overwrite)
            except AdaattnError as error:
                failed += 1
                report_error(error, subject=content_path)
            except KeyboardInterrupt:
                later = len(jobs) - index - 1
                unwritten = f"{output_path} and the {later} after it were" if later else f"{output_path} was"
                raise output.interrupted(f"{unwritten} not written") from None
            else:
                info(f"wrote {output_path} ({time.perf_counter() - start:.1f} s)")
            advance()
    failed, total = (int(n) for n in distributed.sum_over_processes([failed, len(jobs)], world))
    if world.size > 1 and world.is_main:
        info(f"{total - failed} of {total} images written by {world.size} processes ({time.perf_counter() - batch_start:.1f} s)")
    if failed:
        if total > 1 and world.is_main:
            output.console.print(f"[red]error:[/] {failed} of {total} images failed", highlight=False)
        distributed.wait_for_all(world)  # torchrun stops all processes once one exits with an error: not before that line
        raise typer.Exit(code=2)
