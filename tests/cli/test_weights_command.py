"""`adaattn weights ...`: imports write where they say; bad files fail with one line."""

import torch

from adaattn_cli.encoders import _BLOCKS, _CHANNELS, ENCODERS, conv_names
from adaattn_cli.weights import load_encoder


def test_vgg19_from_a_local_file(cli, tmp_path):
    """A torchvision-style `features.N.*` state dict (zeros, fp16 to keep it small) becomes vgg19.safetensors."""
    state, in_channels = {}, 3
    for index, name in enumerate(conv_names(ENCODERS["vgg19"].architecture)):
        out_channels = _CHANNELS[int(name[4]) - 1]
        state[f"features.{2 * index}.weight"] = torch.zeros(out_channels, in_channels, 3, 3, dtype=torch.float16)
        state[f"features.{2 * index}.bias"] = torch.zeros(out_channels, dtype=torch.float16)
        in_channels = out_channels
    torch.save(state, tmp_path / "vgg19-dcbb9e9d.pth")
    result = cli("weights", "vgg19", "--from", tmp_path / "vgg19-dcbb9e9d.pth")
    assert result.exit_code == 0, result.output
    written = tmp_path / "home" / "weights" / "vgg19.safetensors"
    assert f"wrote {written}" in result.stderr
    assert load_encoder("vgg19").name == "vgg19" and sum(_BLOCKS["vgg19"]) == len(state) // 2


def test_vgg19_needs_one_source(cli, tmp_path, error_line):
    assert "exactly one" in error_line(cli("weights", "vgg19"))


def test_a_checkpoint_that_is_not_plain_tensors_is_refused(cli, tmp_path, error_line):
    torch.save({"weight": torch.zeros(1), "extra": {"nested": 1}}, tmp_path / "odd.pth")
    assert "odd.pth" in error_line(cli("weights", "import-vgg-normalised", tmp_path / "odd.pth"))
    assert not (tmp_path / "home" / "weights").exists()


def test_missing_files_are_usage_errors(cli, tmp_path):
    for args in (["import-vgg-normalised", "nope.pth"], ["convert-hed", "nope.h5"], ["import-official", "nope"]):
        result = cli("weights", *args)
        assert result.exit_code == 2 and "nope" in result.output and "Traceback" not in result.output
