"""`adaattn models`: model files on the weights search path."""

import json
import os
import shutil

import pytest


def test_models_lists_the_fixture_models_and_encoders(cli, weights_dir, tmp_path):
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "junk.safetensors").write_bytes(b"not a model")
    result = cli("models")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.count("│") > 4]
    names = {row.split("│")[1].strip() for row in rows}
    # the fixture's models come first (the checkout's bundled ones may follow: later on the search path)
    assert any(row.split("│")[1].strip() == "adain" and "7 steps" in row and str(weights_dir) in row for row in rows)
    assert "adaattn" in names and "junk" not in result.stdout and "vgg16-hed" not in names
    assert "vgg19-normalised" in result.stdout and "not found" in result.stdout


@pytest.fixture
def long_name(weights_dir, tmp_path, monkeypatch):
    """A model with a long name first on the search path."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(weights_dir / "adain.safetensors", folder / "adain-watercolour-portraits-v2.safetensors")
    monkeypatch.setenv("ADAATTN_WEIGHTS", os.pathsep.join([str(folder), str(weights_dir)]))
    return folder / "adain-watercolour-portraits-v2.safetensors"


def test_a_narrow_or_piped_table_never_cuts_a_name(cli, long_name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    result = cli("models")
    assert result.exit_code == 0, result.output
    assert "│ adain-watercolour-portraits-v2 │" in result.stdout and "…" not in result.stdout


def test_models_json_for_scripts(cli, long_name, weights_dir):
    result = cli("models", "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    first = listing["models"][0]
    assert first["name"] == "adain-watercolour-portraits-v2" and first["method"] == "adain"
    assert first["path"] == str(long_name) and first["provenance"] == {"steps": 7} and first["encoder"] == "vgg16-hed"
    assert {"name": "vgg16-hed", "path": str(weights_dir / "vgg16-hed.safetensors")}.items() <= listing["encoders"][0].items()


def test_an_unreadable_user_folder_is_skipped_with_a_warning(cli, make_image, tmp_path, monkeypatch):
    from adaattn_cli import weights

    user = weights.user_weights_dir()
    user.mkdir(parents=True)
    listing = os.scandir

    def scandir(path="."):  # tests run as root, whom chmod 000 does not stop
        if os.fspath(path) == str(user):
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(weights.os, "scandir", scandir)
    result = cli("models")
    assert result.exit_code == 0, result.output
    assert "adain" in result.stdout and "Permission denied" in result.stderr and str(user) in result.stderr
    content, style = make_image("c.png"), make_image("s.png", (32, 32))
    result = cli("stylize", content, "-s", style, "--method", "adain", "--style-size", 0, "--device", "cpu")
    assert result.exit_code == 0, result.output


def test_a_file_where_the_user_folder_should_be_is_skipped(cli, tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("ADAATTN_HOME", str(tmp_path / "not-a-folder"))
    result = cli("models")
    assert result.exit_code == 0, result.output
    assert "adain" in result.stdout and "not-a-folder" in result.stderr
