"""The `adaattn` command: the Typer app, global options, and the one place errors become exit codes.

Commands live one per module and import torch lazily, inside their functions, so `adaattn --help` and
`adaattn --version` stay fast. What they share: console.py (output, errors), options.py (the shared options),
inputs.py (contents, outputs, the model, masks), progress.py (bars) and batch.py (the batch loop).
"""

from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperGroup

from .. import __version__, distributed
from ..errors import BadInputError
from . import blend, console, export, gui, models, stylize, train, video, weights

# Registered in this order; a new command is one more row (and its module in the import above).
COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("stylize", stylize.stylize),
    ("blend-styles", blend.blend_styles),
    ("video", video.video),
    ("train", train.train),
    ("models", models.models),
    ("export", export.export),
    ("gui", gui.gui),
]
SUBAPPS = [("weights", weights.app)]
# Commands that split their work over torchrun's processes; the others would each do all of it.
DISTRIBUTED_COMMANDS = {"stylize", "blend-styles", "train"}


# click's UsageError as the installed Typer raises it (Typer 0.2x vendors click; older ones use click itself).
_UsageError = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


def _usage_exit(error) -> BaseException:
    """One red line for a usage error, exit code 2; `adaattn weights` without a command still shows its help
    (click signals that with a UsageError subclass, which Typer recognises by name too)."""
    if type(error).__name__ == "NoArgsIsHelpError":
        return error
    console.print_shared(console.usage_message(error))  # under torchrun every process parses the same arguments
    return typer.Exit(code=2)


class _Group(TyperGroup):
    """Turns exceptions into one red line on stderr and an exit code (2: bad input or usage, 1: other failures).

    Usage errors (bad values, unknown options) become one line too; Typer's own exits pass through untouched;
    --verbose adds the traceback.
    """

    def parse_args(self, ctx, args):  # the app's own options (`adaattn --bogus`)
        try:
            return super().parse_args(ctx, args)
        except _UsageError as error:
            raise _usage_exit(error) from None

    def invoke(self, ctx):  # the commands' options and arguments are parsed in here
        try:
            return super().invoke(ctx)
        except _UsageError as error:
            raise _usage_exit(error) from None
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # Typer's exits and usage errors; a closed pipe (`| head`) is Typer's to handle
        except KeyboardInterrupt:  # where the command did not say what it left unwritten
            raise console.interrupted() from None
        except Exception as error:
            console.report_error(error)
            raise typer.Exit(code=console.exit_code(error)) from None


app = typer.Typer(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"adaattn {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or 'wrote ...' lines; errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens; show tracebacks with errors.")] = False,
) -> None:
    """Arbitrary neural style transfer (AdaAttN, AdaIN, SANet) from the command line.

    [bold]Examples[/bold]

      adaattn stylize photo.jpg --style starry.jpg
      adaattn blend-styles photo.jpg -s starry.jpg -s scream.jpg --weights 0.7,0.3
      adaattn models
    """
    console.configure(quiet=quiet, verbose=verbose)
    if distributed.current_world().size > 1 and ctx.invoked_subcommand not in DISTRIBUTED_COMMANDS:
        raise BadInputError(
            f"adaattn {ctx.invoked_subcommand} runs in one process; under torchrun only {', '.join(sorted(DISTRIBUTED_COMMANDS))} "
            "share their work"
        )


for _name, _command in COMMANDS:
    app.command(_name)(_command)
for _name, _subapp in SUBAPPS:
    app.add_typer(_subapp, name=_name)


def main() -> None:
    """Console-script entry point (`adaattn`, `python -m adaattn_cli`)."""
    app(prog_name="adaattn")
