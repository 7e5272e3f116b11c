import json
import os
import re

import pytest
import torch

from adaattn_cli import weights as W
from adaattn_cli.errors import WeightsError


@pytest.mark.parametrize("method", ["adaattn", "adaattn-video", "adain", "sanet"])
def test_model_file_round_trip_is_exact(tmp_path, models, encoder, method):
    model = models[method]
    path = W.save_model(model, tmp_path / "m.safetensors", provenance={"steps": 3}, dtype=torch.float32)
    loaded = W.load_model(path, encoder=encoder)
    for key, value in model.trainable_state().items():
        assert torch.equal(value, loaded.trainable_state()[key]), key
    header = W.read_model_header(path)
    assert header["method"] == method and header["encoder"] == "vgg16-hed" and header["provenance"] == {"steps": 3}
    assert header["encoder_sha256"] == W.encoder_sha256(encoder)


def test_fp16_model_file_holds_the_rounded_weights(tmp_path, models, encoder):
    path = W.save_model(models["adain"], tmp_path / "m.safetensors")
    loaded = W.load_model(path, encoder=encoder)
    for key, value in models["adain"].trainable_state().items():
        assert torch.equal(value.half().float(), loaded.trainable_state()[key])
    assert os.path.getsize(path) < 4_000_000 * 2


def test_model_needs_the_encoder_it_was_trained_with(tmp_path, models):
    path = W.save_model(models["adain"], tmp_path / "m.safetensors")
    other = W.build_encoder("vgg16-hed")
    with pytest.raises(WeightsError, match="trained with encoder"):
        W.load_model(path, encoder=other)


def test_corrupt_model_file_is_refused(tmp_path, models, encoder):
    path = W.save_model(models["adain"], tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a weight byte
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="do not match their recorded hash"):
        W.load_model(path, encoder=encoder)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        W.load_model(path, encoder=encoder)


@pytest.mark.parametrize(
    "lie, field",
    [
        (lambda h: {**h, "config": {"width_divisor": 0}}, "config.width_divisor is 0"),
        (lambda h: {**h, "config": {"width_divisor": "8"}}, "config.width_divisor is '8'"),
        (lambda h: {**h, "config": {"width_divisor": 1, "levels": [4, 5]}}, "'levels', which adain models"),
        (lambda h: {**h, "config": [1, 2]}, "config is [1, 2]"),
        (lambda h: {**h, "method": "cyclegan"}, "method is 'cyclegan'"),
        (lambda h: {k: v for k, v in h.items() if k != "encoder_sha256"}, "no 'encoder_sha256'"),
        (lambda h: {**h, "encoder": 7}, "encoder is 7"),
        (lambda h: {**h, "provenance": "trained"}, "provenance is 'trained'"),
        (lambda h: [h], "JSON list"),
    ],
    ids=["zero", "string", "unknown-key", "config-list", "method", "no-encoder-hash", "encoder-type", "provenance", "list"],
)
def test_a_lying_model_header_is_refused_naming_the_field(tmp_path, models, encoder, lie, field):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = W.save_model(models["adain"], tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        tensors, header = {k: handle.get_tensor(k) for k in handle.keys()}, json.loads(handle.metadata()["adaattn"])
    save_file(tensors, str(path), metadata={"adaattn": json.dumps(lie(header))})
    with pytest.raises(WeightsError, match=re.escape(field)):
        W.load_model(path, encoder=encoder)


def test_sanet_levels_are_checked(tmp_path, models, encoder):
    path = W.save_model(models["sanet"], tmp_path / "m.safetensors")
    header = W.read_model_header(path)
    with pytest.raises(WeightsError, match=re.escape("config.levels is [5]")):
        W._check_header(path, {**header, "config": {**header["config"], "levels": [5]}})


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickles_that_would_run_code_are_refused(tmp_path, encoder):
    payload = _RunsCode()
    payload.marker = tmp_path / "pwned"
    torch.save({"weight": payload}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="refused to load"):
        W.safe_torch_load(tmp_path / "evil.pth")
    # a pickle dressed up as a model file is no safetensors file either
    os.replace(tmp_path / "evil.pth", tmp_path / "evil.safetensors")
    with pytest.raises(WeightsError):
        W.load_model(tmp_path / "evil.safetensors", encoder=encoder)
    assert not payload.marker.exists()


def test_unknown_model_name(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAATTN_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="no model named 'nosuch'"):
        W.load_model("nosuch")
    with pytest.raises(WeightsError, match="no such model file"):
        W.load_model(tmp_path / "missing.safetensors")


def test_bundled_encoder_loads_and_is_sane():
    encoder = W.load_encoder("vgg16-hed")
    assert os.path.getsize(W.find_weights("vgg16-hed.safetensors")) < 25_000_000
    relu = encoder(torch.rand(1, 3, 64, 64))
    assert all(torch.isfinite(t).all() for t in relu)
    assert relu[2].mean() > 0


def _official_checkpoint(folder):
    """Synthetic release with the key layout of the official latest_net_*.pth files (decoder Sequentials include
    pad/ReLU/upsample slots)."""
    torch.manual_seed(6)
    folder.mkdir()
    rand = lambda *shape: torch.randn(*shape) * 0.02  # noqa: E731
    adaattn_3 = {f"{p}.{k}": rand(448, 448, 1, 1) if k == "weight" else rand(448) for p in "fg" for k in ("weight", "bias")}
    adaattn_3 |= {"h.weight": rand(256, 256, 1, 1), "h.bias": rand(256)}
    transformer = {"merge_conv.weight": rand(512, 512, 3, 3), "merge_conv.bias": rand(512)}
    for layer, keys in (("4_1", 960), ("5_1", 1472)):
        for p, c in (("f", keys), ("g", keys), ("h", 512)):
            transformer[f"attn_adain_{layer}.{p}.weight"], transformer[f"attn_adain_{layer}.{p}.bias"] = rand(c, c, 1, 1), rand(c)
    decoder = {"decoder_layer_1.1.weight": rand(256, 512, 3, 3), "decoder_layer_1.1.bias": rand(256)}
    for index, (cin, cout) in zip(
        (1, 4, 7, 10, 14, 17, 21, 24), ((512, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3))
    ):
        decoder[f"decoder_layer_2.{index}.weight"], decoder[f"decoder_layer_2.{index}.bias"] = rand(cout, cin, 3, 3), rand(cout)
    for name, state in (("decoder", decoder), ("transformer", transformer), ("adaattn_3", adaattn_3)):
        torch.save(state, folder / f"latest_net_{name}.pth")
    from test_encoders import official_vgg_normalised

    torch.save(official_vgg_normalised().state_dict(), folder.parent / "vgg_normalised.pth")
    return decoder, transformer, adaattn_3


def test_official_checkpoint_import(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAATTN_HOME", str(tmp_path / "home"))
    decoder, transformer, adaattn_3 = _official_checkpoint(tmp_path / "AdaAttN")
    out = W.import_official_adaattn(tmp_path / "AdaAttN", tmp_path / "official.safetensors")
    model = W.load_model(out)  # finds vgg19-normalised in the user folder
    state = model.trainable_state()
    rounded = lambda t: t.half().float()  # noqa: E731
    assert torch.equal(state["blocks.0.query.weight"], rounded(adaattn_3["f.weight"]))
    assert torch.equal(state["blocks.1.key.bias"], rounded(transformer["attn_adain_4_1.g.bias"]))
    assert torch.equal(state["blocks.2.value.weight"], rounded(transformer["attn_adain_5_1.h.weight"]))
    assert torch.equal(state["decoder.convs.0.weight"], rounded(decoder["decoder_layer_1.1.weight"]))
    assert torch.equal(state["decoder.convs.8.weight"], rounded(decoder["decoder_layer_2.24.weight"]))
    assert model.encoder.name == "vgg19-normalised"
    assert json.loads(json.dumps(model.header))["provenance"]["source"].startswith("official AdaAttN")
    out_image = model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert out_image.shape == (1, 3, 32, 32)


def test_official_import_rejects_a_wrong_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAATTN_HOME", str(tmp_path / "home"))
    _official_checkpoint(tmp_path / "AdaAttN")
    state = torch.load(tmp_path / "AdaAttN" / "latest_net_transformer.pth")
    del state["attn_adain_5_1.g.weight"]
    torch.save(state, tmp_path / "AdaAttN" / "latest_net_transformer.pth")
    with pytest.raises(WeightsError, match="attn_adain_5_1.g.weight"):
        W.import_official_adaattn(tmp_path / "AdaAttN", tmp_path / "o.safetensors")
