"""The app as a whole: version, help pages, lazy imports, `python -m`, shared input helpers."""

import os
import subprocess
import sys

import pytest

from adaattn_cli import __version__
from adaattn_cli.cli.inputs import gather_contents, plan_outputs
from adaattn_cli.cli.options import Method
from adaattn_cli.cli.progress import step_progress
from adaattn_cli.errors import BadInputError
from adaattn_cli.methods import list_methods

HELP_PAGES = [
    [],
    ["stylize"],
    ["blend-styles"],
    ["models"],
    ["export"],
    ["gui"],
    ["weights"],
    ["weights", "import-official"],
    ["weights", "import-vgg-normalised"],
    ["weights", "vgg19"],
    ["weights", "convert-hed"],
]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"adaattn {__version__}"


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(c) or "adaattn")
def test_every_help_page_has_an_example(cli, command):
    result = cli(*command, "-h")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and "adaattn " in result.stdout


def _help_texts(command, path=("adaattn",)):
    """(where, text) of every help text of the app: each command's and each of its options' and arguments'."""
    yield " ".join(path), command.help or ""
    for parameter in command.params:
        yield f"{' '.join(path)} {parameter.name}", getattr(parameter, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _help_texts(sub, (*path, name))


def test_square_brackets_in_help_texts_are_shown_not_taken_for_markup():
    """Help is Rich markup: an unescaped [word] that is no style vanishes (pip install 'adaattn[onnx]' read
    pip install 'adaattn'). Every tag must be a style; other brackets are escaped."""
    from rich.errors import StyleSyntaxError
    from rich.markup import RE_TAGS
    from rich.style import Style
    from typer.main import get_command

    from adaattn_cli.cli import app

    for where, text in _help_texts(get_command(app)):
        for match in RE_TAGS.finditer(text):
            backslashes, tag = match.group(2), match.group(3)
            if len(backslashes) % 2 or tag.startswith("/"):  # escaped, or the end of a style
                continue
            try:
                Style.parse(tag)
            except StyleSyntaxError:
                pytest.fail(f"{where}: [{tag}] would be taken for markup and vanish; escape it as \\[{tag}]")


def test_export_help_shows_the_extra_to_install(cli):
    assert "pip install 'adaattn[onnx]'" in cli("export", "-h").stdout


def test_help_and_version_import_neither_torch_nor_gradio():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from adaattn_cli.cli import app\n"
        "for args in (['--version'], ['--help'], ['stylize', '--help'], ['blend-styles', '-h'], ['export', '-h'], ['gui', '-h']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print('torch' in sys.modules, 'gradio' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "adaattn_cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: adaattn" in result.stdout and "stylize" in result.stdout


def test_method_choices_come_from_the_method_registry():
    assert [m.value for m in Method] == list_methods()
    code = (
        "from adaattn_cli.methods import Method, register_method\n"
        "register_method(Method('toy', 'adaattn_cli.models:AdaINModel', 'a toy', losses={'style': 1.0}))\n"
        "from adaattn_cli.cli import main\n"
        "import sys; sys.argv = ['adaattn', 'train', '--help']; main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert "adaattn|adaattn-video|adain|sanet|toy" in result.stdout, result.stdout


def test_step_progress_shows_steps_and_values(monkeypatch):
    import io

    from rich.console import Console

    from adaattn_cli.cli import console

    screen = io.StringIO()
    monkeypatch.setattr(console, "console", Console(file=screen, force_terminal=True, width=160))
    with step_progress(10, start=2) as advance:
        advance(3, {"loss": 1.25, "lr": 1e-4, "step": 3})
    assert "3/10" in screen.getvalue() and "loss 1.25  lr 0.0001  step 3" in screen.getvalue()


def test_gather_contents(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt", "c.gif"):
        (tmp_path / "in" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "in" / name).touch()
    (tmp_path / "in" / "sub.png").mkdir()
    folder = tmp_path / "in"
    assert gather_contents([str(folder)]) == [folder / "a.JPG", folder / "b.png", folder / "c.gif"]
    assert gather_contents([str(folder / "*.png"), str(folder / "b.png")]) == [folder / "b.png"]
    assert gather_contents([str(folder / "notes.txt")]) == [folder / "notes.txt"]  # named files are taken as given
    for bad in ("missing.png", str(folder / "*.webp"), str(tmp_path / "empty")):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(BadInputError):
            gather_contents([bad])


def test_plan_outputs(tmp_path):
    a, b = tmp_path / "x" / "a.png", tmp_path / "y" / "a.png"
    name = lambda path: f"{path.stem}_out.png"  # noqa: E731
    assert plan_outputs([a], None, name) == [(a, tmp_path.__class__(".") / "a_out.png")]
    assert plan_outputs([a], tmp_path / "one.jpg", name) == [(a, tmp_path / "one.jpg")]
    with pytest.raises(BadInputError, match="one file"):
        plan_outputs([a, b], tmp_path / "one.jpg", name)
    with pytest.raises(BadInputError, match="both be written"):
        plan_outputs([a, b], tmp_path / "out", name)


def test_an_output_with_an_unknown_extension_is_refused_not_made_a_folder(tmp_path):
    a = tmp_path / "a.png"
    name = lambda path: f"{path.stem}_out.png"  # noqa: E731
    for typo in ("out.xyz", "out.jgp", "out.gif"):
        with pytest.raises(BadInputError, match=r"not an image format adaattn writes \(\.jpg"):
            plan_outputs([a], str(tmp_path / typo), name)
    # folders: a name ending in "/", an existing folder, a name without extension
    assert plan_outputs([a], str(tmp_path / "v1.2") + "/", name) == [(a, tmp_path / "v1.2" / "a_out.png")]
    (tmp_path / "made.d").mkdir()
    assert plan_outputs([a], str(tmp_path / "made.d"), name) == [(a, tmp_path / "made.d" / "a_out.png")]
    assert plan_outputs([a], str(tmp_path / "out"), name) == [(a, tmp_path / "out" / "a_out.png")]


def test_o_with_a_typo_writes_nothing(cli, make_image, tmp_path, error_line):
    line = error_line(cli("stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)), "-o", "out.xyz"))
    assert "-o out.xyz" in line and ".png" in line
    assert not (tmp_path / "out.xyz").exists()


def test_an_unexpected_failure_is_one_line_and_exit_1(cli, make_image, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("adaattn_cli.api.load_model", broken)
    result = cli("stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: RuntimeError: out of memory (run with --verbose for the traceback)"


@pytest.mark.parametrize(
    "args, named",
    [
        ("stylize {c} -s {s} --alpha 1.5", ["--alpha", "1.5 is not a number from 0 to 1"]),
        ("stylize {c} -s {s} --alpha nan", ["--alpha", "nan is not a number from 0 to 1"]),
        ("stylize {c} -s {s} --alpha abc", ["--alpha abc"]),
        ("stylize {c} -s {folder}", ["--style", "is a directory"]),
        ("stylize {c} -s {s} --mask nomask.png", ["--mask", "nomask.png"]),
        ("stylize {c} -s {s} --device nonsense", ["--device", "'nonsense'"]),
        ("stylize {c} -s {s} --size 5", ["--size 5"]),
        ("blend-styles {c} -s {s} -s {s} --weights 1,x", ["--weights", "'1,x'"]),
        ("video {c} -s {s} --fps 0", ["--fps", "got 0"]),
        ("video {c} -s {s} --hold nan", ["--hold", "nan"]),
        ("stylize", ["Missing argument 'CONTENT'", "adaattn stylize -h"]),
        ("stylize {c} -s {s} --frobnicate", ["No such option: --frobnicate"]),
        ("stilize", ["No such command 'stilize'"]),
        ("--frobnicate", ["No such option: --frobnicate"]),
    ],
)
def test_a_usage_error_is_one_line_naming_the_flag_and_value(cli, make_image, tmp_path, error_line, args, named):
    paths = {"c": make_image("c.png"), "s": make_image("s.png", (32, 32)), "folder": tmp_path}
    line = error_line(cli(*(arg.format(**paths) for arg in args.split())))
    assert all(part in line for part in named), line


def test_a_command_group_without_a_command_still_shows_its_help(cli):
    result = cli("weights")
    assert result.exit_code == 2 and "import-official" in result.output
