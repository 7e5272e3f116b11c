"""`adaattn models`: model files on the weights search path."""


def test_models_lists_the_fixture_models_and_encoders(cli, weights_dir, tmp_path):
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "junk.safetensors").write_bytes(b"not a model")
    result = cli("models")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 4}
    assert "adain" in rows and "7 steps" in rows["adain"] and str(weights_dir) in rows["adain"]
    assert "adaattn" in rows and "junk" not in result.stdout and "vgg16-hed" not in rows
    assert "vgg19-normalised" in result.stdout and "not found" in result.stdout
