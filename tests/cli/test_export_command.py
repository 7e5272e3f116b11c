"""`adaattn export` through the real app: the written graph, its name and metadata, and its refusals."""

import json
import os
import sys
from pathlib import Path

import pytest

slow = pytest.mark.slow  # each export traces the model (10-50 s)


@slow
def test_export_with_a_baked_style_writes_a_named_graph(cli, make_image, weights_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    style = make_image("wheat.png", (40, 36))
    result = cli("export", weights_dir / "adain.safetensors", "--style", style, "--style-size", 0)
    assert result.exit_code == 0, result.output
    path = tmp_path / "adain_wheat.onnx"  # default name, in the current folder
    assert f"wrote {path.name}" in result.stderr and not list(tmp_path.glob(".*.tmp-*"))
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["method"] == "adain" and props["style"] == "wheat.png" and json.loads(props["provenance"]) == {"steps": 7}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["content"]
    import numpy as np

    output = session.run(None, {"content": np.random.default_rng(0).random((1, 3, 40, 52), dtype=np.float32)})[0]
    assert output.shape == (1, 3, 40, 52) and 0 <= output.min() and output.max() <= 1


def test_export_never_replaces_a_file_without_overwrite(cli, tmp_path, error_line):
    (tmp_path / "m.onnx").write_bytes(b"keep")
    line = error_line(cli("export", "adain", "-o", tmp_path / "m.onnx"))
    assert "--overwrite" in line and (tmp_path / "m.onnx").read_bytes() == b"keep"


def test_export_without_the_extra_says_what_to_install(cli, tmp_path, error_line, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # importlib.util.find_spec then reports it missing
    line = error_line(cli("export", "adain", "-o", tmp_path / "m.onnx"))
    assert "pip install 'adaattn[onnx]'" in line and not (tmp_path / "m.onnx").exists()


def test_export_of_an_unknown_model_is_one_line(cli, tmp_path, error_line):
    pytest.importorskip("onnxscript")
    line = error_line(cli("export", "nosuch", "-o", tmp_path / "m.onnx"))
    assert "nosuch" in line


@pytest.fixture
def exported(monkeypatch):
    """Where export_onnx was asked to write (it writes a stand-in file there instead of tracing the model)."""
    from adaattn_cli import export

    paths = []

    def fake_export(model, path, **options):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"graph")
        paths.append(path)
        return path

    monkeypatch.setattr(export, "check_installed", lambda: None)
    monkeypatch.setattr(export, "export_onnx", fake_export)
    return paths


@pytest.mark.parametrize("given, written", [("newdir/", "newdir/adain.onnx"), ("newdir", "newdir/adain.onnx"), ("g.onnx", "g.onnx")])
def test_export_output_names_a_folder_as_stylize_does(cli, tmp_path, exported, given, written):
    result = cli("export", "adain", "-o", given)
    assert result.exit_code == 0, result.output
    assert exported == [Path(written)] and (tmp_path / written).is_file()  # relative: in the current folder, tmp_path


def test_export_writes_onnx_graphs_under_onnx_names_only(cli, tmp_path, error_line, exported):
    line = error_line(cli("export", "adain", "-o", tmp_path / "x.png"))
    assert "x.png" in line and ".onnx" in line and not exported and not (tmp_path / "x.png").exists()


def test_overwrite_replaces_files_only(cli, tmp_path, error_line, exported):
    os.mkfifo(tmp_path / "pipe.onnx")  # like /dev/null: not a file; replacing it would put a file in its place
    line = error_line(cli("export", "adain", "-o", tmp_path / "pipe.onnx", "--overwrite"))
    assert "not a regular file" in line and not exported and not (tmp_path / "pipe.onnx").is_file()


def test_export_alpha_0_is_a_usage_error(cli, error_line, exported):
    line = error_line(cli("export", "adain", "--alpha", 0))
    assert line.startswith("error: --alpha") and "above 0" in line and not exported


def test_ctrl_c_during_an_export_says_nothing_was_written(cli, tmp_path, exported, monkeypatch):
    from adaattn_cli import export

    def interrupted(*args, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_onnx", interrupted)
    result = cli("export", "adain", "-o", "m.onnx")
    assert result.exit_code == 130 and "interrupted; m.onnx was not written" in result.stderr and not (tmp_path / "m.onnx").exists()
