"""ONNX export (adaattn_cli.export): the graphs on onnxruntime equal ours in fp32 with every style position.

Each export traces the model with symbolic sizes (10-40 s here), so every graph is exported once per module.
"""

import copy
import json

import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from helpers import exact_stylizer, spread_outputs  # noqa: E402

from adaattn_cli import functional as fn  # noqa: E402
from adaattn_cli.encoders import build_encoder  # noqa: E402
from adaattn_cli.errors import BadInputError  # noqa: E402
from adaattn_cli.export import build_graph, export_onnx  # noqa: E402
from adaattn_cli.models import build_model, use_plain_ops  # noqa: E402
from adaattn_cli.weights import REPO_WEIGHTS, load_model  # noqa: E402

slow = pytest.mark.slow  # each export traces the model (10-50 s); the tests that export none run in the quick loop

METHODS = ["adaattn", "adain", "sanet", "adaattn-video"]
# Contents whose sides are not multiples of 16 (padded inside the graph); styles whose odd feature maps make the
# shallow keys' nearest resizing uneven (70 -> 18 columns at relu3_1).
SIZES = [(70, 90), (101, 47)]


def rand(*shape, seed):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    """One random model per method, 8 times narrower than the real ones, outputs spread over [0, 1]."""
    torch.manual_seed(0)
    encoder = build_encoder("vgg16-hed", width_divisor=8)
    probe = rand(1, 3, 64, 64, seed=1)
    return {method: spread_outputs(build_model(method, encoder, width_divisor=8).eval(), probe) for method in METHODS}


@pytest.fixture(scope="module")
def style():
    return rand(3, 56, 70, seed=2)


@pytest.fixture(scope="module")
def exported(tiny, style, tmp_path_factory):
    """exported(method, baked=False, **options) -> an onnxruntime session, each graph exported once (the file:
    exported.paths[method, baked, options]); options are export_onnx's alpha, style_positions and seed."""
    folder, sessions, paths = tmp_path_factory.mktemp("onnx"), {}, {}

    def get(method, baked=False, **options):
        key = (method, baked, tuple(sorted(options.items())))
        if key not in sessions:
            paths[key] = folder / f"{method}-{baked}-{len(paths)}.onnx"
            export_onnx(tiny[method], paths[key], style=style if baked else None, style_name="s.png", **options)
            sessions[key] = ort.InferenceSession(str(paths[key]), providers=["CPUExecutionProvider"])
        return sessions[key]

    get.paths = paths
    return get


def ours(model, content, style, alpha=1.0, style_positions=0, seed=0):
    """adaattn stylize --precision fp32 --style-positions N (0: all) --seed S, on a copy of the model (a Stylizer owns
    its model)."""
    stylizer = exact_stylizer(copy.deepcopy(model), device="cpu", precision="fp32", style_positions=style_positions)
    return stylizer.stylize(content, [stylizer.encode_style(style, seed=seed)], alpha=alpha)


def run(session, content, style=None):
    feeds = {"content": content[None].numpy()}
    if style is not None:
        feeds["style"] = style[None].numpy()
    return torch.from_numpy(session.run(None, feeds)[0][0])


@slow
@pytest.mark.parametrize("method", METHODS)
def test_the_graph_equals_ours_at_any_size(tiny, exported, method):
    session = exported(method)
    for index, size in enumerate(SIZES):
        content, style = rand(3, *size, seed=10 + index), rand(3, *[(56, 70), (77, 33)][index], seed=20 + index)
        expected = ours(tiny[method], content, style)
        assert expected.std() > 0.03  # a picture, not one clamped colour
        got = run(session, content, style)
        assert got.shape == expected.shape
        assert (got - expected).abs().max() < 1e-4


# The settings each method's baked graph is exported with: the video model caps the 252 positions at relu3_1 here
# to 100; AdaAttN's baked graph, with an alpha, is the bundled model's (test_the_bundled_model_exports_and_runs).
BAKED = {"adain": {}, "sanet": {}, "adaattn-video": {"style_positions": 100, "seed": 3}}


@slow
@pytest.mark.parametrize("method", BAKED)
def test_a_baked_style_graph_gives_what_stylize_gives(tiny, exported, style, method):
    """export --style S [--style-positions N --seed K]: a graph of the content alone that equals `adaattn stylize
    --style S` with the same settings (the baked memory holds the positions stylize draws)."""
    options = BAKED[method]
    content = rand(3, 83, 64, seed=3)
    baked = exported(method, baked=True, **options)
    assert [i.name for i in baked.get_inputs()] == ["content"]
    assert (run(baked, content) - ours(tiny[method], content, style, **options)).abs().max() < 1e-4
    if options:  # and the setting matters: not the graph of the default settings
        assert (run(baked, content) - ours(tiny[method], content, style)).abs().max() > 1e-3


@slow
def test_the_graph_carries_the_model_header(exported):
    exported("adain", baked=True)  # a model without a file: the header comes from the model itself
    graph = onnx.load(str(exported.paths["adain", True, ()]), load_external_data=False)
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["method"] == "adain" and props["encoder"] == "vgg16-hed"
    assert json.loads(props["config"]) == {"width_divisor": 8}
    assert props["style"] == "s.png" and props["alpha"] == "1.0"
    assert props["style_positions"] == "at most 4096, seed 0"  # the method's default
    assert graph.opset_import[0].version >= 17


def test_the_export_leaves_the_model_as_it_was(tiny):
    model = tiny["adaattn"]
    build_graph(model)
    assert not model.plain and not model.decoder.plain and model.blocks[0].logit_budget == fn.DEFAULT_LOGIT_BUDGET
    assert model.blocks[0].max_style_positions == 4096


def test_plain_ops_give_the_fast_paths_results(tiny):
    """use_plain_ops switches to standard operators only: same outputs, and switching back restores the paths."""
    model = copy.deepcopy(tiny["adaattn"])
    content, style = rand(1, 3, 64, 80, seed=5), rand(1, 3, 56, 70, seed=6)
    with torch.no_grad():
        fast = model(content, style)
        plain = use_plain_ops(model)(content, style)
        back = use_plain_ops(model, False)(content, style)
    assert (plain - fast).abs().max() < 1e-5 and torch.equal(back, fast)


def test_resize_nearest_gather_equals_interpolate():
    x = rand(1, 2, 70, 35, seed=7)
    for size in [(18, 9), (35, 18), (70, 35), (9, 5), (140, 70)]:
        assert torch.equal(fn.resize_nearest_gather(x, size), torch.nn.functional.interpolate(x, size=size, mode="nearest"))


def test_bad_alpha_and_opset_and_existing_file(tiny, tmp_path):
    with pytest.raises(BadInputError, match="alpha"):
        export_onnx(tiny["adain"], tmp_path / "a.onnx", alpha=0.0)
    with pytest.raises(BadInputError, match="opset"):
        export_onnx(tiny["adain"], tmp_path / "a.onnx", opset=16)
    (tmp_path / "b.onnx").write_bytes(b"keep")
    with pytest.raises(BadInputError, match="overwrite=True"):  # the library's argument; the CLI says --overwrite
        export_onnx(tiny["adain"], tmp_path / "b.onnx")
    assert (tmp_path / "b.onnx").read_bytes() == b"keep"
    with pytest.raises(BadInputError, match="ending in .onnx"):  # an ONNX graph under an image's name
        export_onnx(tiny["adain"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


@slow
def test_the_bundled_model_exports_and_runs(tmp_path, style):
    """The real AdaAttN (slow-ish: ~45 s to export, ~95 MB file) with a baked style at alpha 0.6: its graph equals
    `adaattn stylize --alpha 0.6` at a small size."""
    path = export_onnx("adaattn", tmp_path / "adaattn.onnx", style=style, alpha=0.6)
    assert 80e6 < path.stat().st_size < 120e6  # fp32 weights
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    header = load_model("adaattn").header
    assert props["weights_sha256"] == header["weights_sha256"] and json.loads(props["provenance"]) == header["provenance"]
    assert props["alpha"] == "0.6"
    content = rand(3, 72, 96, seed=8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = ours(load_model(REPO_WEIGHTS / "adaattn.safetensors"), content, style, alpha=0.6)
    assert expected.std() > 0.05  # a picture, not a flat field (the model of 2026-12-07: 0.092 on this noise)
    assert (run(session, content) - expected).abs().max() < 1e-4
