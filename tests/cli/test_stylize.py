"""`adaattn stylize` through the real app: outputs, image modes, batches and bad inputs."""

import json

import numpy as np
import pytest
from PIL import Image


def test_batch_with_a_corrupt_image_writes_the_others_and_exits_2(cli, make_image, style_args, tmp_path):
    make_image("photos/a.png")
    make_image("photos/b.jpg")
    (tmp_path / "photos" / "bad.jpg").write_text("not an image")
    result = cli("stylize", tmp_path / "photos", *style_args, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_stylized_style.png", "b_stylized_style.jpg"]
    assert "bad.jpg" in result.stderr and "1 of 3 images failed" in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.count("wrote ") == 2


def _write_bad_content(tmp_path, kind):
    path = tmp_path / {"missing": "missing.png", "empty": "empty.png", "truncated": "cut.jpg", "text": "text.jpg"}[kind]
    if kind == "empty":
        path.touch()
    elif kind == "truncated":
        Image.new("RGB", (48, 32), "red").save(tmp_path / "full.jpg")
        path.write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    elif kind == "text":
        path.write_text("hello")
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text"])
def test_a_bad_content_file_is_one_line_and_no_output(cli, style_args, tmp_path, error_line, kind):
    path = _write_bad_content(tmp_path, kind)
    line = error_line(cli("stylize", path, *style_args, "-o", tmp_path / "out"))
    assert path.name in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model", ["nosuch", "missing.safetensors", "corrupt.safetensors"])
def test_a_bad_model_is_one_line_and_no_output(cli, make_image, tmp_path, error_line, model):
    (tmp_path / "corrupt.safetensors").write_bytes(np.random.default_rng(0).bytes(5000))
    content, style = make_image("c.png"), make_image("s.png", (32, 32))
    line = error_line(cli("stylize", content, "-s", style, "--model", model, "-o", tmp_path / "out"))
    assert model.split(".")[0] in line
    assert not (tmp_path / "out").exists()


def test_a_model_header_with_a_zero_is_one_line(cli, make_image, weights_dir, tmp_path, error_line):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights_dir / "adain.safetensors"), "pt") as handle:
        tensors, header = {k: handle.get_tensor(k) for k in handle.keys()}, json.loads(handle.metadata()["adaattn"])
    save_file(tensors, str(tmp_path / "liar.safetensors"), metadata={"adaattn": json.dumps({**header, "config": {"width_divisor": 0}})})
    line = error_line(cli("stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)), "--model", tmp_path / "liar.safetensors"))
    assert "liar.safetensors" in line and "width_divisor is 0" in line


def test_a_missing_bundled_model_says_where_it_looked(cli, make_image, tmp_path, error_line, weights_dir, monkeypatch):
    from adaattn_cli import weights

    # the checkout bundles every method: search the tiny models' folder (no sanet there) and the user folder only
    monkeypatch.setattr(weights, "weights_search_path", lambda: [weights_dir, weights.user_weights_dir()])
    line = error_line(cli("stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)), "--method", "sanet"))
    assert "no model named 'sanet'" in line and str(tmp_path / "home") in line

    assert not list(tmp_path.glob("*_stylized_*"))


def test_size_and_max_size_exclude_each_other(cli, make_image, style_args, error_line):
    line = error_line(cli("stylize", make_image("c.png"), *style_args, "--size", 40, "--max-size", 64))
    assert "--size" in line and "--max-size" in line


def test_default_name_in_the_current_folder_with_sizes(cli, make_image, style_args, tmp_path):
    content = make_image("photo.jpg", (72, 48))
    assert cli("stylize", content, *style_args).exit_code == 0
    assert Image.open(tmp_path / "photo_stylized_style.jpg").size == (72, 48)
    assert cli("stylize", content, *style_args, "--size", 40, "-o", "small.png").exit_code == 0
    assert Image.open(tmp_path / "small.png").size == (60, 40)
    assert cli("stylize", content, *style_args, "--max-size", 54, "-o", "max.png").exit_code == 0
    assert Image.open(tmp_path / "max.png").size == (54, 36)


def test_exif_rotation_is_applied(cli, make_image, style_args, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    content = make_image("rotated.jpg", (48, 32), exif=exif.tobytes())
    assert cli("stylize", content, *style_args, "-o", "out.png").exit_code == 0
    assert Image.open(tmp_path / "out.png").size == (32, 48)


def test_rgba_keeps_its_alpha(cli, make_image, style_args, tmp_path):
    content = make_image("rgba.png", mode="RGBA")
    assert cli("stylize", content, *style_args, "-o", "out.png").exit_code == 0
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "RGBA" and out.size == (48, 32)
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(Image.open(content))[..., 3])


@pytest.mark.parametrize("name, mode", [("cmyk.jpg", "CMYK"), ("grey16.png", "I;16"), ("grey.png", "L"), ("anim.gif", "P")])
def test_other_modes_give_rgb_of_the_same_size(cli, make_image, style_args, tmp_path, name, mode):
    content = make_image(name, mode=mode)
    assert Image.open(content).mode == mode
    result = cli("stylize", content, *style_args)
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / f"{content.stem}_stylized_style{'.png' if mode == 'P' else content.suffix}")
    assert out.mode == "RGB" and out.size == (48, 32)


def test_existing_output_needs_overwrite(cli, make_image, style_args, tmp_path, error_line):
    content = make_image("c.png")
    assert cli("stylize", content, *style_args, "-o", "out.png").exit_code == 0
    out = tmp_path / "out.png"
    out.write_bytes(out.read_bytes() + b"marker")  # still a PNG; tells a rewrite from the original
    before = out.read_bytes(), out.stat().st_mtime_ns
    assert "--overwrite" in error_line(cli("stylize", content, *style_args, "-o", "out.png", "--alpha", 0.3))
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    assert cli("stylize", content, *style_args, "-o", "out.png", "--alpha", 0.3, "--overwrite").exit_code == 0
    assert not out.read_bytes().endswith(b"marker")


def test_output_file_for_one_input_folder_for_several(cli, make_image, style_args, tmp_path, error_line):
    first, second = make_image("a.png"), make_image("b.webp")
    assert cli("stylize", first, *style_args, "-o", tmp_path / "one" / "result.png").exit_code == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["result.png"]
    result = cli("-q", "stylize", first, second, *style_args, "-o", tmp_path / "many")
    assert result.exit_code == 0 and result.stderr == ""
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["a_stylized_style.png", "b_stylized_style.webp"]
    assert "one file" in error_line(cli("stylize", first, second, *style_args, "-o", "x.png"))


def test_glob_patterns_are_expanded(cli, make_image, style_args, tmp_path):
    make_image("in/a.png"), make_image("in/b.png"), make_image("in/c.jpg")
    assert cli("stylize", str(tmp_path / "in" / "*.png"), *style_args, "-o", "out").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_stylized_style.png", "b_stylized_style.png"]


def test_preserve_color(cli, make_image, style_args, tmp_path):
    assert cli("stylize", make_image("c.png"), *style_args, "--preserve-color", "-o", "out.png").exit_code == 0
    assert Image.open(tmp_path / "out.png").size == (48, 32)


def test_adaattn_by_method_name_with_a_mask(cli, make_image, tmp_path):
    """The one AdaAttN run: found by --method on the weights path; the mask is half the content's size."""
    mask = Image.new("L", (24, 16), 0)
    mask.paste(255, (0, 0, 12, 16))
    mask.save(tmp_path / "mask.png")
    result = cli(
        "stylize",
        make_image("c.png"),
        "-s",
        make_image("s.png", (32, 32)),
        "--method",
        "adaattn",
        "--style-size",
        0,
        "--mask",
        tmp_path / "mask.png",
        "--seed",
        3,
        "-o",
        "out.png",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (48, 32)


def test_a_mask_of_another_aspect_ratio_is_refused(cli, make_image, style_args, tmp_path, error_line):
    mask = make_image("mask.png", (40, 40), mode="L")
    line = error_line(cli("stylize", make_image("c.png"), *style_args, "--mask", mask, "-o", "out.png"))
    assert "mask.png is 40x40 but the content is 48x32" in line
    assert not (tmp_path / "out.png").exists()


def test_verbose_shows_the_traceback(cli, make_image):
    result = cli("-v", "stylize", make_image("c.png"), "-s", make_image("s.png", (32, 32)), "--model", "nosuch")
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_precision_and_style_positions(cli, make_image, tmp_path):
    """fp32 and bf16 runs of the same AdaAttN model give nearly the same picture; a bad precision is refused."""
    content, style = make_image("c.png"), make_image("s.png", (64, 64))
    common = ["-s", style, "--method", "adaattn", "--style-size", 0, "--style-positions", 64]
    for precision in ("fp32", "bf16"):
        result = cli("stylize", content, *common, "--precision", precision, "-o", f"{precision}.png")
        assert result.exit_code == 0, result.output
    exact, fast = (np.asarray(Image.open(tmp_path / f"{p}.png"), dtype=np.float64) for p in ("fp32", "bf16"))
    assert np.abs(exact - fast).mean() < 4  # of 255
    assert cli("stylize", content, *common, "--precision", "fp16", "-o", "x.png").exit_code == 2
    assert not (tmp_path / "x.png").exists()


def test_refine_writes_a_refined_picture(cli, make_image, style_args, tmp_path):
    content = make_image("c.png", (64, 48))
    plain = cli("stylize", content, *style_args, "-o", tmp_path / "plain.png")
    refined = cli("stylize", content, *style_args, "--refine", 3, "-o", tmp_path / "refined.png")
    assert plain.exit_code == 0 and refined.exit_code == 0, refined.output
    a, b = (np.asarray(Image.open(tmp_path / name), dtype=float) for name in ("plain.png", "refined.png"))
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.1


@pytest.mark.parametrize("steps", ["-1", "2.5", "many"])
def test_a_bad_refine_count_is_a_usage_error_and_writes_nothing(cli, make_image, style_args, tmp_path, steps):
    result = cli("stylize", make_image("c.png"), *style_args, "--refine", steps, "-o", tmp_path / "out.png")
    assert result.exit_code == 2 and "--refine" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_a_working_size_above_the_pixel_limit_is_refused_before_allocating(cli, make_image, style_args, tmp_path, error_line, monkeypatch):
    import torch

    allocated = []
    monkeypatch.setattr(torch.nn.functional, "interpolate", lambda *a, **k: allocated.append(1))  # must not be reached
    content = make_image("c.png")
    line = error_line(cli("stylize", content, *style_args, "--size", 60000, "-o", "out.png"))
    assert "90000x60000" in line and "pixel limit" in line and "--max-pixels" in line
    line = error_line(cli("stylize", content, *style_args, "--size", 200, "--max-pixels", 50000, "-o", "out.png"))
    assert "300x200" in line and "50,000" in line
    assert not allocated and not (tmp_path / "out.png").exists()


def test_a_missing_gpu_index_is_one_line(cli, make_image, style_args, tmp_path, error_line):
    line = error_line(cli("stylize", make_image("c.png"), *style_args, "--device", "cuda:7", "-o", "out.png"))
    assert "--device cuda:7: no such GPU" in line and not (tmp_path / "out.png").exists()


def test_an_output_that_appears_during_the_run_is_not_replaced(cli, make_image, style_args, tmp_path, error_line, monkeypatch):
    import os

    from adaattn_cli import image_io

    fsync = os.fsync

    def another_run_finishes_first(fd):  # between the early exists check and publishing
        (tmp_path / "out.png").write_text("the other run's image")
        fsync(fd)

    monkeypatch.setattr(image_io.os, "fsync", another_run_finishes_first)
    line = error_line(cli("stylize", make_image("c.png"), *style_args, "-o", "out.png"))
    assert "out.png exists" in line
    assert (tmp_path / "out.png").read_text() == "the other run's image"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("shard", ["", "²/²", "١/٢", "0/2", "3/2", "1/2 ", "2"])
def test_a_shard_that_is_not_k_of_n_in_ascii_digits_is_one_line(cli, make_image, style_args, tmp_path, error_line, shard):
    line = error_line(cli("stylize", make_image("c.png"), *style_args, "--shard", shard, "-o", tmp_path / "out"))
    assert "--shard" in line and "K/N" in line and not (tmp_path / "out").exists()


def test_shards_split_the_contents_and_an_empty_share_says_so(cli, make_image, style_args, tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        make_image(f"photos/{name}")
    for shard in ("1/2", "2/2"):
        assert cli("stylize", tmp_path / "photos", *style_args, "--shard", shard, "-o", tmp_path / "out").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{n}_stylized_style.png" for n in "abc"]
    result = cli("stylize", tmp_path / "photos", *style_args, "--shard", "5/5", "-o", tmp_path / "empty")
    assert result.exit_code == 0 and "share 5 of 5 holds none of the 3 content images" in result.stderr
    assert not (tmp_path / "empty").exists()


def test_ctrl_c_says_what_was_not_written_and_exits_130(cli, make_image, style_args, tmp_path, monkeypatch):
    from adaattn_cli.api import Stylizer

    for name in ("a.png", "b.png", "c.png"):
        make_image(f"photos/{name}")
    stylize, calls = Stylizer.stylize, []

    def interrupted_on_the_second(self, *args, **options):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return stylize(self, *args, **options)

    monkeypatch.setattr(Stylizer, "stylize", interrupted_on_the_second)
    result = cli("stylize", tmp_path / "photos", *style_args, "-o", tmp_path / "out")
    assert result.exit_code == 130
    assert f"interrupted; {tmp_path / 'out' / 'b_stylized_style.png'} and the 1 after it were not written" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_stylized_style.png"]


@pytest.mark.parametrize("option, value", [("--tile", 1), ("--tile", 255), ("--style-size", 8)])
def test_sizes_that_cannot_work_are_usage_errors(cli, make_image, style_args, tmp_path, error_line, option, value):
    line = error_line(cli("stylize", make_image("c.png"), *style_args, option, value, "-o", tmp_path / "out"))
    assert line.startswith(f"error: {option}") and not (tmp_path / "out").exists()


def test_a_style_image_too_small_is_named(cli, make_image, weights_dir, tmp_path, error_line):
    tiny = make_image("tiny.png", (16, 16))
    line = error_line(cli("stylize", make_image("c.png"), "-s", tiny, "--model", weights_dir / "adain.safetensors", "--style-size", 0))
    assert f"style image {tiny} is 16x16 pixels" in line
