"""Progress bars on stderr: images, tiles and refinement steps, video frames, training steps.

Transient Rich bars, off with -q or without a terminal.

Nothing here imports torch (see cli/__init__.py).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from . import console as output  # the console and -q, looked up at each call


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

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
    )
    hidden = hidden or output.settings.quiet or not output.console.is_terminal
    return Progress(*columns, console=output.console, transient=True, disable=hidden)


@contextmanager
def image_progress(total: int, label: str = "images") -> Iterator[Callable[[], None]]:
    """Images done in a batch (no bar for a single image); yields `advance()`."""
    with _progress_bar(hidden=total < 2) as progress:
        task = progress.add_task(label, total=total)
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
