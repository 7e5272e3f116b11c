"""`adaattn models`: model files on the weights search path."""


def test_models_lists_the_fixture_models_and_encoders(cli, weights_dir, tmp_path):
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "junk.safetensors").write_bytes(b"not a model")
    result = cli("models")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.count("│") > 4]
    names = {row.split("│")[1].strip() for row in rows}
    # the fixture's models come first (the checkout's bundled ones may follow: later on the search path)
    assert any(row.split("│")[1].strip() == "adain" and "7 steps" in row and str(weights_dir) in row for row in rows)
    assert "adaattn" in names and "junk" not in result.stdout and "vgg16-hed" not in names
    assert "vgg19-normalised" in result.stdout and "not found" in result.stdout
