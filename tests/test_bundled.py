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


@pytest.fixture(scope="module")
def pair():
    examples = REPO_WEIGHTS.parent / "examples"
    content = resize_max_side(load_image(examples / "bedroom.jpg").rgb, 160)
    style = resize_max_side(load_image(examples / "vangogh-wheat-field.jpg").rgb, 160)
    return content, style


def style_distance(encoder, image, style):
    """Sum over relu1_1..relu4_1 of the distance between channel means and stds."""
    with torch.no_grad():
        image_feats, style_feats = encoder(image[None], 4), encoder(style[None], 4)
    total = 0.0
    for a, b in zip(image_feats, style_feats):
        (ma, sa), (mb, sb) = fn.mean_std(a), fn.mean_std(b)
        total += float(((ma - mb) ** 2).mean() + ((sa - sb) ** 2).mean())
    return total


def test_output_statistics_move_toward_the_style(bundled, pair):
    content, style = pair
    output = bundled.stylize(content, [style])
    encoder = bundled.model.encoder
    assert style_distance(encoder, output, style) < 0.5 * style_distance(encoder, content, style)


def test_alpha_zero_stays_close_to_the_content(bundled, pair):
    content, style = pair
    styled = bundled.stylize(content, [style], alpha=1.0)
    reconstruction = bundled.stylize(content, [style], alpha=0.0)
    assert (reconstruction - content).abs().mean() < 0.6 * (styled - content).abs().mean()


def test_chunked_attention_equals_full_attention_on_the_real_model(bundled, pair):
    content, style = pair
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
