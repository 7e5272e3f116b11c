"""Integration tests on the shipped weights (small sizes): real properties of the bundled default model."""

import pytest
import torch

from adaattn_cli import functional as fn
from adaattn_cli.api import Stylizer
from adaattn_cli.image_io import load_image, resize_max_side
from adaattn_cli.weights import REPO_WEIGHTS, load_model


@pytest.fixture(scope="module")
def bundled():
    return Stylizer(load_model(REPO_WEIGHTS / "adaattn.safetensors"), device="cpu")


PAIRS = [("bedroom", "vangogh-wheat-field"), ("football", "monet-water-lilies"), ("flowers", "turner-shipwreck")]


@pytest.fixture(scope="module")
def pairs():
    examples = REPO_WEIGHTS.parent / "examples"
    load = lambda name: resize_max_side(load_image(examples / f"{name}.jpg").rgb, 160)  # noqa: E731
    return [(load(content), load(style)) for content, style in PAIRS]


def style_distance(encoder, image, style):
    """Sum over relu1_1..relu4_1 of the distance between channel means and stds."""
    with torch.no_grad():
        image_feats, style_feats = encoder(image[None], 4), encoder(style[None], 4)
    total = 0.0
    for a, b in zip(image_feats, style_feats):
        (ma, sa), (mb, sb) = fn.mean_std(a), fn.mean_std(b)
        total += float(((ma - mb) ** 2).mean() + ((sa - sb) ** 2).mean())
    return total


def test_output_statistics_move_toward_the_style(bundled, pairs):
    encoder = bundled.model.encoder
    before = sum(style_distance(encoder, content, style) for content, style in pairs)
    after = sum(style_distance(encoder, bundled.stylize(content, [style]), style) for content, style in pairs)
    assert after < 0.45 * before  # bundled preview model (4,600 steps): 0.27 measured


def test_alpha_zero_keeps_the_content_statistics(bundled, pairs):
    encoder = bundled.model.encoder
    styled = sum(style_distance(encoder, bundled.stylize(c, [s], alpha=1.0), c) for c, s in pairs)
    reconstructed = sum(style_distance(encoder, bundled.stylize(c, [s], alpha=0.0), c) for c, s in pairs)
    assert reconstructed < 0.5 * styled  # bundled preview model (4,600 steps): 0.25 measured


def test_chunked_attention_equals_full_attention_on_the_real_model(bundled, pairs):
    content, style = pairs[0]
    blocks = bundled.model.blocks
    try:
        for block in blocks:
            block.logit_budget = None
        full = bundled.stylize(content, [style])
        for block in blocks:
            block.logit_budget = 4096 * 37  # odd chunk sizes, many chunks
        chunked = bundled.stylize(content, [style])
    finally:
        for block in blocks:
            block.logit_budget = fn.DEFAULT_LOGIT_BUDGET
    assert (full - chunked).abs().max() < 1e-4
