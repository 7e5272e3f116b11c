"""SANet's relu3_1 variant and the warm starts of tools/warm_start.py (tiny random models)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from helpers import exact_stylizer
from test_training import _config, data  # noqa: F401  (the training fixture)

from adaattn_cli.errors import BadInputError
from adaattn_cli.models import build_model
from adaattn_cli.weights import load_model, read_model_header, save_model

_spec = importlib.util.spec_from_file_location("warm_start", Path(__file__).parents[1] / "tools" / "warm_start.py")
warm_start = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(warm_start)


@pytest.fixture(scope="module")
def image_model(encoder):
    torch.manual_seed(3)
    return build_model("adaattn", encoder).eval()


def test_sanet_with_a_relu3_1_block_runs_chunked_exactly_and_round_trips(tmp_path, encoder, images):
    model = build_model("sanet", encoder, levels=(3, 4, 5)).eval()
    assert [block.query.in_channels for block in model.blocks] == [256, 512, 512]
    content, style = images["content"][None], images["style"][None]
    with torch.no_grad():
        full = model(content, style)
        for block in model.blocks:
            block.logit_budget = 7 * 48
        chunked = model(content, style)
        for block in model.blocks:
            block.logit_budget = None
    assert full.shape == (1, 3, 64, 80) and torch.allclose(full, chunked, atol=1e-5, rtol=0)
    path = save_model(model, tmp_path / "sanet.safetensors", dtype=torch.float32)
    assert read_model_header(path)["config"]["levels"] == [3, 4, 5]
    loaded = load_model(path, encoder=encoder)
    assert loaded.block_levels == (3, 4, 5)
    picture = exact_stylizer(loaded).stylize(images["content"], [images["style"]], match_color=False)
    assert torch.allclose(picture, full.clamp(0, 1)[0], atol=1e-5)
    with pytest.raises(ValueError, match="relu4_1"):
        build_model("sanet", encoder, levels=(3, 4))


def test_sanet_warm_start_attends_with_the_image_models_own_level_logits(image_model, images):
    """Each block starts as F_c + softmax(Norm(c)^T W_q^T (W_k Norm(s) + b_k)) value(F_s), with the AdaAttN block's
    weights on its own level's part of the key, behind the image model's merge conv and decoder."""
    from adaattn_cli import functional as fn

    with torch.no_grad():
        sanet = warm_start.sanet_from_image_model(image_model)
        content, style = sanet.encode(images["content"][None]), sanet.encode(images["style"][None])
        outputs = sanet.transfer(content, sanet.memorize(style))
        for output, level, adaattn in zip(outputs, (3, 4, 5), image_model.blocks):
            f_c, f_s = content.features[level - 1], style.features[level - 1]
            channels = f_c.shape[1]
            w_q, w_k = adaattn.query.weight[:, -channels:, 0, 0], adaattn.key.weight[:, -channels:, 0, 0]
            query = fn.mean_variance_norm(f_c).flatten(2).transpose(1, 2) @ w_q.T  # [1, n_c, d]
            key = w_k @ fn.mean_variance_norm(f_s).flatten(2) + adaattn.key.bias[:, None]  # [1, d, n_s]
            value = adaattn.value(f_s).flatten(2).transpose(1, 2)  # [1, n_s, C]
            attended = torch.softmax(query @ key, dim=-1) @ value
            expected = f_c + attended.transpose(1, 2).reshape(f_c.shape)
            assert torch.allclose(output, expected, atol=1e-4, rtol=1e-4)
        assert torch.allclose(sanet.decode(outputs), image_model.decode(outputs), atol=1e-6)


def test_video_warm_start_takes_the_image_models_relu3_1_block_and_decoder_tail(image_model, images):
    with torch.no_grad():
        video = warm_start.video_from_image_model(image_model)
        for name in ("query", "key", "value"):
            assert torch.equal(getattr(video.blocks[0], name).weight, getattr(image_model.blocks[0], name).weight)
        # with a zero relu4_1/relu5_1 path the image decoder's input conv sees the skip only
        skip = torch.rand(1, 256, 12, 16)
        image_convs = image_model.decoder.convs
        image_first = torch.nn.functional.conv2d(
            torch.nn.functional.pad(skip, (1,) * 4, mode="reflect"), image_convs[1].weight[:, 256:], image_convs[1].bias
        )
        assert torch.allclose(video.decoder.convs[0](skip), image_first, atol=1e-5)


def test_training_from_a_warm_start_keeps_its_variant_and_refuses_another_method(data, tmp_path):  # noqa: F811
    from adaattn_cli.training import Trainer

    image_run = Trainer(_config(data, tmp_path / "image", "adaattn", max_steps=1))
    image = load_model(image_run.run(), encoder=image_run.model.encoder)
    with torch.no_grad():
        init = save_model(warm_start.sanet_from_image_model(image), tmp_path / "init.safetensors")
    trainer = Trainer(_config(data, tmp_path, "sanet", init=str(init), max_steps=2))
    assert trainer.model.block_levels == (3, 4, 5)
    header = read_model_header(trainer.run())
    assert header["config"]["levels"] == [3, 4, 5]
    lineage = header["provenance"]["init"]  # the warm start and its own provenance travel with the fine-tune
    assert lineage["file"] == "init.safetensors" and lineage["weights_sha256"] == read_model_header(init)["weights_sha256"]
    with pytest.raises(BadInputError, match="is a sanet model, not adain"):
        Trainer(_config(data, tmp_path / "other", "adain", init=str(init)))
