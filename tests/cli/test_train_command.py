import json

import numpy as np
import pytest
from PIL import Image

from adaattn_cli.weights import read_model_header

pytestmark = pytest.mark.slow  # training runs


def _folder(path, count, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(path / f"{index}.png")
    return path


def test_train_writes_a_model_that_stylize_loads(cli, tmp_path, make_image):
    content, style = _folder(tmp_path / "content", 3, 0), _folder(tmp_path / "style", 3, 1)
    (content / "broken.jpg").write_text("not an image")
    options = "--method adain --max-steps 2 --batch-size 1 --crop-size 32 --load-size 32 --workers 0 --holdout 0"
    loss_options = "--style-weight 20 --style-layers 1:3,2,3 --identity-weights 5,0.5"
    outputs = ["--workdir", tmp_path / "run", "-o", tmp_path / "trained.safetensors"]
    result = cli("train", "-c", content, "-s", style, *options.split(), *loss_options.split(), *outputs)
    assert result.exit_code == 0, result.output
    losses = read_model_header(tmp_path / "trained.safetensors")["provenance"]["losses"]
    assert losses["style"] == 20 and losses["style_layers"] == [1, 2, 3] and losses["style_layer_weights"] == [3, 1, 1]
    assert losses["identity_pixels"] == 5 and losses["identity_features"] == 0.5
    assert {"identity_pixels", "identity_features"} <= set(json.loads((tmp_path / "run" / "log.jsonl").read_text()))
    assert "1 unreadable skipped" in result.output
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text())["step"] == 2
    photo = make_image("photo.png", (48, 40))
    result = cli("stylize", photo, "--style", style / "0.png", "--model", tmp_path / "trained.safetensors", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (48, 40)


def test_train_rejects_a_bad_crop_size(cli, tmp_path):
    content, style = _folder(tmp_path / "content", 1, 0), _folder(tmp_path / "style", 1, 1)
    result = cli("train", "-c", content, "-s", style, "--crop-size", 40, "--workdir", tmp_path / "run")
    assert result.exit_code == 2
    assert "--crop-size must be a multiple of 16" in result.output  # the library's crop_size, named as the flag


def test_train_rejects_bad_style_layers(cli, tmp_path):
    content, style = _folder(tmp_path / "content", 1, 0), _folder(tmp_path / "style", 1, 1)
    for layers in ("1,6", "a,b", "2,2", "1:x,2", "1:-1"):
        result = cli("train", "-c", content, "-s", style, "--style-layers", layers, "--workdir", tmp_path / "run")
        assert result.exit_code == 2
        assert "--style-layers" in result.output and "Traceback" not in result.output


def test_train_rejects_a_teacher_weight_without_a_teacher(cli, tmp_path):
    content, style = _folder(tmp_path / "content", 1, 0), _folder(tmp_path / "style", 1, 1)
    result = cli("train", "-c", content, "-s", style, "--teacher-weight", 10, "--workdir", tmp_path / "run")
    assert result.exit_code == 2
    assert "--teacher" in result.output and "Traceback" not in result.output


def test_train_rejects_bad_identity_weights(cli, tmp_path):
    content, style = _folder(tmp_path / "content", 1, 0), _folder(tmp_path / "style", 1, 1)
    result = cli("train", "-c", content, "-s", style, "--method", "sanet", "--identity-weights", "50", "--workdir", tmp_path / "run")
    assert result.exit_code == 2
    assert "--identity-weights" in result.output and "Traceback" not in result.output


def test_resume_from_a_corrupt_checkpoint_is_one_line(cli, tmp_path, error_line):
    content, style = _folder(tmp_path / "content", 1, 0), _folder(tmp_path / "style", 1, 1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(3000))
    options = "--method adain --resume --workers 0 --device cpu"
    line = error_line(cli("train", "-c", content, "-s", style, *options.split(), "--workdir", tmp_path / "run"))
    assert "checkpoint.pt: not a readable checkpoint" in line
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]


def test_a_content_folder_without_images_leaves_no_workdir(cli, tmp_path, error_line):
    (tmp_path / "content").mkdir()
    style = _folder(tmp_path / "style", 1, 1)
    assert "no readable images" in error_line(cli("train", "-c", tmp_path / "content", "-s", style, "--workdir", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_teacher_set_of_other_images(cli, tmp_path, error_line):
    content, style = _folder(tmp_path / "content", 2, 0), _folder(tmp_path / "style", 2, 1)
    teacher_set = tmp_path / "teacher-set"
    teacher_set.mkdir()
    manifest = {"format": "adaattn-teacher-set/1", "count": 1, "holdout": 0, "content_signature": "0" * 64, "style_signature": "0" * 64}
    (teacher_set / "teacher-set.json").write_text(json.dumps(manifest))
    options = ["--teacher-set", teacher_set, "--holdout", 0, "--workers", 0, "--workdir", tmp_path / "run"]
    line = error_line(cli("train", "-c", content, "-s", style, *options))
    assert "teacher set was made from other training images" in line
    assert not (tmp_path / "run").exists()
    result = cli("train", "-c", content, "-s", style, "--distill-weight", 1, "--workdir", tmp_path / "run")
    assert result.exit_code == 2 and "--teacher-set" in result.output and "Traceback" not in result.output
