"""The performance paths change speed, not results: ours (fp32) equals the plain reference of
adaattn_cli/reference.py, and the bf16 fast path stays within bf16 tolerance of it."""

import math

import pytest
import torch
from helpers import exact_stylizer, spread_outputs

from adaattn_cli import functional as fn
from adaattn_cli.image_io import load_image
from adaattn_cli.reference import plain_copy, reference_stylize
from adaattn_cli.weights import REPO_WEIGHTS, load_model


def example(name: str, size: tuple[int, int]) -> torch.Tensor:
    image = load_image(REPO_WEIGHTS.parent / "examples" / f"{name}.jpg").rgb
    return torch.nn.functional.interpolate(image[None], size=size, mode="bicubic", antialias=True).clamp(0, 1)[0]


@pytest.fixture(scope="module")
def pair():
    return example("bedroom", (96, 128)), example("vangogh-wheat-field", (112, 96))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


@pytest.mark.parametrize("cap", [None, 100])
def test_ours_equals_the_plain_reference(pair, cap):
    content, style = pair
    stylizer = exact_stylizer(load_model(REPO_WEIGHTS / "adaattn.safetensors"), precision="fp32")
    stylizer.model.blocks[0].max_style_positions = cap  # 100 < 28*24 style positions at relu3_1: both sample the same
    reference = reference_stylize(plain_copy(stylizer.model), content[None], style[None], seed=3)[0]
    stylizer.model.blocks[0].logit_budget = 500  # and chunked attention
    ours = stylizer.stylize(content, [stylizer.encode_style(style, seed=3)], match_color=False)
    assert (ours - reference).abs().max() < 1e-4


def test_fast_path_is_within_bf16_tolerance(pair):
    content, style = pair
    exact = exact_stylizer(load_model("adaattn"), precision="fp32")
    fast = exact_stylizer(load_model("adaattn"), precision="bf16")
    assert fast.precision == "bf16" and fast.model.blocks[0].matmul_dtype == torch.bfloat16
    assert fast.model.decoder.convs[0].weight.dtype == torch.bfloat16  # autocast's cast, done once
    exact_out = exact.stylize(content, [style])
    fast_out = fast.stylize(content, [style])
    assert fast_out.dtype == torch.float32 and fast_out.shape == exact_out.shape
    assert psnr(fast_out, exact_out) > 32  # measured 39.9 dB at 512x512 (bench/stylize_speed.py)


@pytest.mark.parametrize("mode", ["softmax", "cosine"])
def test_bf16_attention_moments_are_close(mode):
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 300, 32, generator=generator), torch.randn(2, 32, 200, generator=generator) / 4
    value = torch.randn(2, 200, 16, generator=generator) * 3 + 5
    mean, std = fn.attention_mean_std(query, key, value, mode=mode)
    fast_mean, fast_std = fn.attention_mean_std(query, key, value, mode=mode, matmul_dtype=torch.bfloat16)
    assert fast_mean.dtype == fast_std.dtype == torch.float32
    assert (fast_mean - mean).abs().max() < 0.05 * value.std()
    assert ((fast_std - std).abs() / std).median() < 0.02


def test_style_positions_override_caps_every_block():
    model = load_model("adaattn")
    assert [b.max_style_positions for b in exact_stylizer(model, style_positions=512).model.blocks] == [512, 512, 512]
    assert [b.max_style_positions for b in exact_stylizer(model, style_positions=0).model.blocks] == [None, None, None]
    assert [b.max_style_positions for b in exact_stylizer(model).model.blocks] == [4096, 4096, 4096]  # the method's default (methods.py)


def test_precision_is_checked():
    from adaattn_cli.errors import BadInputError

    with pytest.raises(BadInputError, match="precision"):
        exact_stylizer(load_model("adaattn"), precision="fp8")


@pytest.fixture(scope="module")
def tiny_models():
    from adaattn_cli.encoders import build_encoder
    from adaattn_cli.models import build_model

    torch.manual_seed(4)
    encoder = build_encoder("vgg16-hed", width_divisor=8)
    models = {m: build_model(m, encoder, width_divisor=8).eval() for m in ("adaattn", "adaattn-video", "adain", "sanet")}
    probe = torch.rand(1, 3, 64, 64)
    for model in models.values():
        spread_outputs(model, probe)
    return models


@pytest.mark.parametrize("method", ["adaattn", "adaattn-video", "adain", "sanet"])
def test_tiles_give_the_result_of_one_pass(tiny_models, method):
    """Whole-image statistics + halos: 20 tiles of 96 px equal one pass (alpha < 1 and a mask exercise the
    content's own sampled memory, gathered across tiles; a 150-position cap makes the sampling bite)."""
    generator = torch.Generator().manual_seed(5)
    content = torch.nn.functional.interpolate(torch.rand(1, 3, 60, 50, generator=generator), size=(470, 390), mode="bilinear")[0]
    styles = [torch.rand(3, 96, 80, generator=generator), torch.rand(3, 64, 64, generator=generator) ** 2]
    mask = torch.zeros(470, 390)
    mask[:, 150:] = 1
    results = []
    for tile_size in (0, 96):
        stylizer = exact_stylizer(tiny_models[method], precision="fp32", style_positions=150, tile_size=tile_size)
        encoded = [stylizer.encode_style(s, seed=1) for s in styles]
        plain = stylizer.stylize(content, encoded[:1], seed=2)
        mixed = stylizer.stylize(content, encoded, weights=[0.7, 0.3], alpha=0.6, masks=[None, mask], seed=2)
        results.append((plain, mixed))
    for one_pass, tiled in zip(*results):
        assert one_pass.shape == tiled.shape == (3, 470, 390) and one_pass.std() > 0.05
        assert (one_pass - tiled).abs().max() < 1e-4


def test_tiling_is_automatic_above_the_pixel_budget(monkeypatch, tiny_models):
    import adaattn_cli.api as api

    stylizer = exact_stylizer(tiny_models["adain"], precision="fp32")
    monkeypatch.setattr(api, "AUTO_TILE_PIXELS", 128 * 128)
    monkeypatch.setattr(api, "AUTO_TILE", 64)
    calls = []
    out = stylizer.stylize(torch.rand(3, 160, 128), [torch.rand(3, 64, 64)], progress=lambda done, total: calls.append((done, total)))
    assert out.shape == (3, 160, 128) and calls[-1] == (6, 6)  # 3 x 2 tiles of 64 px
