"""The performance paths change speed, not results: ours (fp32) equals the plain reference of
bench/reference.py, and the bf16 fast path stays within bf16 tolerance of it."""

import math
import sys
from pathlib import Path

import pytest
import torch

from adaattn_cli import functional as fn
from adaattn_cli.api import Stylizer
from adaattn_cli.image_io import load_image
from adaattn_cli.weights import REPO_WEIGHTS, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from reference import plain_copy, reference_stylize  # noqa: E402


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
    stylizer = Stylizer(load_model(REPO_WEIGHTS / "adaattn.safetensors"), precision="fp32")
    stylizer.model.blocks[0].max_style_positions = cap  # 100 < 28*24 style positions at relu3_1: both sample the same
    reference = reference_stylize(plain_copy(stylizer.model), content[None], style[None], seed=3)[0]
    stylizer.model.blocks[0].logit_budget = 500  # and chunked attention
    ours = stylizer.stylize(content, [stylizer.encode_style(style, seed=3)])
    assert (ours - reference).abs().max() < 1e-4


def test_fast_path_is_within_bf16_tolerance(pair):
    content, style = pair
    exact = Stylizer(load_model("adaattn"), precision="fp32")
    fast = Stylizer(load_model("adaattn"), precision="bf16")
    assert fast.precision == "bf16" and fast.model.blocks[0].matmul_dtype == torch.bfloat16
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
    assert [b.max_style_positions for b in Stylizer(model, style_positions=512).model.blocks] == [512, 512, 512]
    assert [b.max_style_positions for b in Stylizer(model, style_positions=0).model.blocks] == [None, None, None]
    assert [b.max_style_positions for b in Stylizer(model).model.blocks] == [4096, 65536, 65536]  # its own again


def test_precision_is_checked():
    from adaattn_cli.errors import BadInputError

    with pytest.raises(BadInputError, match="precision"):
        Stylizer(load_model("adaattn"), precision="fp8")
