"""The app as a whole: version, help pages, lazy imports, `python -m`, shared input helpers."""

import subprocess
import sys

import pytest

from adaattn_cli import __version__
from adaattn_cli.cli._common import Method, gather_contents, plan_outputs, step_progress
from adaattn_cli.errors import BadInputError
from adaattn_cli.models import MODELS

HELP_PAGES = [
    [], ["stylize"], ["blend-styles"], ["models"], ["export"], ["weights"], ["weights", "import-official"],
    ["weights", "import-vgg-normalised"], ["weights", "vgg19"], ["weights", "convert-hed"],
]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"adaattn {__version__}"


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(c) or "adaattn")
def test_every_help_page_has_an_example(cli, command):
    result = cli(*command, "-h")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and "adaattn " in result.stdout


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from adaattn_cli.cli import app\n"
        "for args in (['--version'], ['--help'], ['stylize', '--help'], ['blend-styles', '-h'], ['export', '-h']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "adaattn_cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: adaattn" in result.stdout and "stylize" in result.stdout


def test_method_choices_match_the_model_registry():
    assert {m.value for m in Method} == set(MODELS)


def test_step_progress_takes_steps_and_values():
    with step_progress(10, start=2) as advance:  # hidden without a terminal, but the calls must work
        advance(3, {"loss": 1.25, "lr": 1e-4, "step": 3})


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


def test_an_unexpected_failure_is_one_line_and_exit_1(cli, make_image, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("adaattn_cli.weights.load_model", broken)
    result = cli("stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: RuntimeError: out of memory (run with --verbose for the traceback)"
