"""The CLI's console on stderr: -q/-v, info lines, one-line errors and usage lines, exit codes.

stdout is for command output.

Nothing here imports torch (see cli/__init__.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from .. import distributed
from ..errors import AdaattnError, BadInputError, OutputExistsError, SettingError, WeightsError

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

    Under torchrun, input errors that are not about one file are the same in every process: print_shared."""
    shared = subject is None and exit_code(error) == 2
    if isinstance(error, OutputExistsError):  # the library names its argument; here it is a flag
        message = f"{error.path} exists{error.detail}; pass --overwrite to replace it."
    elif isinstance(error, SettingError):  # the library names its settings; here they are flags
        message = error.render(lambda name: "--" + name.replace("_", "-"))
    else:
        message = str(error) if isinstance(error, AdaattnError) else f"{type(error).__name__}: {error}"
    if subject is not None and str(subject) not in message:
        message = f"{subject}: {message}"
    if settings.verbose and (not shared or distributed.current_world().is_main):
        from rich.traceback import Traceback

        console.print(Traceback.from_exception(type(error), error, error.__traceback__))
    elif not isinstance(error, AdaattnError):
        message += " (run with --verbose for the traceback)"
    (print_shared if shared else print_error)(message)


def print_shared(message: str) -> None:
    """An error line that every process met (usage, input not about one file): under torchrun, process 0 prints
    it and the others exit only once it has (distributed.wait_for_error_report), so it is printed once and
    never lost; printed here too if process 0 did not meet it."""
    world = distributed.current_world()
    if world.is_main:
        print_error(message)
        distributed.error_reported(world)
    elif not distributed.wait_for_error_report(world):
        print_error(message)


def interrupted(unwritten: str = "") -> typer.Exit:
    """Ctrl-C: say so, and what was not written (`unwritten`, a sentence: outputs appear whole or not at all, so
    whatever was written is whole); returns the exit to raise: 130, the shell's code for SIGINT."""
    info(f"interrupted; {unwritten}" if unwritten else "interrupted")
    return typer.Exit(code=130)


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
