"""`adaattn video` through the real app: outputs match the clip (frames, rate, size, audio); bad input leaves nothing."""

import subprocess
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from helpers import exact_stylizer, spread_outputs
from PIL import Image
from videoclips import audio_seconds, make_clip, make_vfr_clip

from adaattn_cli.api import Stylizer
from adaattn_cli.models import build_model
from adaattn_cli.video_io import probe
from adaattn_cli.weights import load_encoder, load_model, save_model


@pytest.fixture(scope="session")
def video_model(weights_dir, tmp_path_factory):
    """A tiny random adaattn-video model on the fixture encoder (kept out of weights_dir: other tests list it)."""
    encoder = load_encoder(path=weights_dir / "vgg16-hed.safetensors")
    path = tmp_path_factory.mktemp("video-model") / "adaattn-video.safetensors"
    return save_model(build_model("adaattn-video", encoder, width_divisor=8), path)


@pytest.fixture
def video_args(make_image, video_model):
    # --palette own: these tests are about the clip in and out (the palette has its tests below)
    return ["--style", make_image("style.png", (32, 32)), "--model", video_model, "--style-size", 0, "--device", "cpu", "--palette", "own"]


def frame_count(path):
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def leftovers(folder):
    """Outputs or hidden temporaries a failed run must not leave."""
    return sorted(p.name for p in folder.iterdir() if "_stylized_" in p.name or p.name.startswith("."))


def test_the_output_matches_the_clip(cli, video_args, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", fps="30000/1001", audio=True)
    result = cli("video", clip, *video_args, "--batch", 5)  # 12 frames: batches of 5, 5 and 2
    assert result.exit_code == 0, result.output
    out = tmp_path / "clip_stylized_style.mp4"
    info = probe(out)
    assert info.fps == Fraction(30000, 1001) and info.size == (64, 48) and info.has_audio
    assert frame_count(out) == 12 and info.duration == pytest.approx(0.4, abs=0.03)  # the 1 s tone is cut
    assert "wrote clip_stylized_style.mp4 (12 frames at 29.97 fps" in result.stderr


def test_size_fps_and_trimming(cli, video_args, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=25, audio=True)
    result = cli("video", clip, *video_args, "--size", 32, "--fps", 10, "--start", 0.4, "--duration", 0.4, "-o", "out.webm")
    assert result.exit_code == 0, result.output
    info = probe(tmp_path / "out.webm")
    assert info.size == (42, 32) and info.fps == 10 and not info.has_audio  # re-timed: the audio would not fit
    assert frame_count(tmp_path / "out.webm") == 10
    assert "audio would be out of sync" in result.stderr


def test_odd_frame_folder_in_mp4_and_frame_folder_out(cli, video_args, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "frames").mkdir()
    for index in range(5):
        Image.fromarray(rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)).save(tmp_path / "frames" / f"{index:03d}.png")
    assert cli("video", tmp_path / "frames", *video_args, "--fps", "24000/1001").exit_code == 0
    info = probe(tmp_path / "frames_stylized_style.mp4")
    assert info.size == (64, 48) and info.fps == Fraction(24000, 1001)  # odd sides padded by one pixel for 4:2:0
    assert cli("video", tmp_path / "frames", *video_args, "-o", "stylized").exit_code == 0
    written = sorted((tmp_path / "stylized").iterdir())
    assert [p.name for p in written] == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert Image.open(written[0]).size == (63, 47)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "random", "no video"])
def test_a_bad_clip_is_one_line_and_no_output(cli, video_args, tmp_path, error_line, kind):
    files = {"missing": "nope.mp4", "empty": "empty.mp4", "text": "notes.mov", "random": "noise.mp4"}
    path = tmp_path / files.get(kind, "tone.m4a")
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("hello")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif kind == "no video":
        tone = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(path)]
        subprocess.run(tone, check=True)
    line = error_line(cli("video", path, *video_args))
    assert path.name in line
    assert leftovers(tmp_path) == []


def test_a_clip_with_nothing_after_start_is_an_error(cli, video_args, tmp_path, error_line):
    line = error_line(cli("video", make_clip(tmp_path / "clip.mp4"), *video_args, "--start", 3))
    assert "no video frames after 3.0 s" in line and leftovers(tmp_path) == []


def test_an_existing_output_is_kept_without_overwrite(cli, video_args, tmp_path, error_line):
    clip = make_clip(tmp_path / "clip.mp4")
    (tmp_path / "out.mp4").write_text("keep")
    assert "pass --overwrite" in error_line(cli("video", clip, *video_args, "-o", "out.mp4"))
    assert (tmp_path / "out.mp4").read_text() == "keep"
    assert cli("video", clip, *video_args, "-o", "out.mp4", "--overwrite").exit_code == 0
    assert frame_count(tmp_path / "out.mp4") == 12


@pytest.mark.parametrize("options", [[], ["--refine", 1]])
@pytest.mark.parametrize("error, code", [(KeyboardInterrupt, 130), (RuntimeError, 1)])
def test_an_interrupted_run_leaves_no_output(cli, video_args, tmp_path, monkeypatch, error, code, options):
    clip = make_clip(tmp_path / "clip.mp4", audio=True)
    calls = []
    stylize = Stylizer.stylize

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error("stop")
        return stylize(self, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize", failing)
    result = cli("video", clip, *video_args, *options)
    assert result.exit_code == code, result.output
    assert leftovers(tmp_path) == []


def test_usage_errors(cli, video_args, tmp_path, error_line):
    clip = make_clip(tmp_path / "clip.mp4")
    assert "--max-size" in error_line(cli("video", clip, *video_args, "--size", 32, "--max-size", 64))
    assert "frames would be 40x30" in error_line(cli("video", clip, *video_args, "--max-size", 40))
    assert "unknown video extension '.avi'" in error_line(cli("video", clip, *video_args, "-o", "out.avi"))
    assert "80000x60000" in error_line(cli("video", clip, *video_args, "--size", 60000))  # the pixel limit
    assert "pixel limit (1,000)" in error_line(cli("video", clip, *video_args, "--max-pixels", 1000))
    result = cli("video", clip, *video_args, "--fps", "fast")
    assert result.exit_code == 2 and "--fps" in result.output
    assert leftovers(tmp_path) == []


def test_the_default_model_is_the_video_model_else_the_image_model(cli, make_image, tmp_path, weights_dir, monkeypatch):
    from adaattn_cli import weights

    monkeypatch.setattr(weights, "weights_search_path", lambda: [weights_dir])  # not the checkout's bundled models
    clip = make_clip(tmp_path / "clip.mp4")
    style = make_image("style.png", (32, 32))
    result = cli("video", clip, "-s", style, "--device", "cpu", "-o", tmp_path / "a.mp4")
    assert result.exit_code == 0, result.output
    assert "no adaattn-video model installed; using the adaattn image model" in result.output
    (weights_dir / "adaattn-video.safetensors").write_bytes((weights_dir / "adaattn.safetensors").read_bytes())
    try:  # a file of that name is now found first: the video model is the default (this one is not a video model)
        result = cli("video", clip, "-s", style, "--device", "cpu", "-o", tmp_path / "b.mp4")
        assert "using the adaattn image model" not in result.output
    finally:
        (weights_dir / "adaattn-video.safetensors").unlink()


def colour_stats(pixels):
    flat = pixels.reshape(3, -1).double()
    return flat.mean(dim=1), torch.cov(flat)


def test_the_painting_palette_gives_the_frames_the_paintings_colours(video_model, make_image, tmp_path):
    from adaattn_cli.image_io import load_resized
    from adaattn_cli.video import MAX_PALETTE_GAIN, fit_palette, stylize_frames
    from adaattn_cli.video_io import read_frames

    frames = list(read_frames(make_clip(tmp_path / "clip.mp4")))
    video = exact_stylizer(load_model(video_model), device="cpu")
    style = video.encode_style(load_resized(make_image("style.png", (32, 32)), size=None).rgb)
    matrix, offset, blur = fit_palette(video, frames, style, alpha=1.0, seed=0)
    assert blur == pytest.approx(48 / 16)  # the blur follows the frame size
    assert float(torch.linalg.svdvals(matrix).max()) <= MAX_PALETTE_GAIN + 1e-9
    # the map itself takes the model's picture of the first frame to the painting's mean and covariance
    source = stylize_frames(video, frames[:1], style, alpha=1.0, seed=0, as_uint8=False)[0]
    mapped = (matrix @ source.reshape(3, -1).double() + offset).reshape(source.shape)
    (mean, cov), (painting_mean, painting_cov), (own_mean, _) = map(colour_stats, (mapped, style.image, source))
    if float(torch.linalg.svdvals(matrix).max()) < MAX_PALETTE_GAIN:  # uncapped: exact
        assert torch.allclose(cov, painting_cov.double(), atol=1e-4)
    assert torch.allclose(mean, painting_mean.double(), atol=1e-4) and not torch.allclose(own_mean, painting_mean.double(), atol=0.02)
    # on the frames (low frequencies only, clamped) the mean colour moves most of the way
    recoloured = stylize_frames(video, frames[:1], style, alpha=1.0, seed=0, recolour=(matrix, offset, blur), as_uint8=False)[0]
    gap = lambda picture: float((colour_stats(picture)[0] - painting_mean.double()).abs().max())  # noqa: E731
    assert gap(recoloured) < gap(source) / 3
    # alpha 0 keeps the model's colours
    eye, zero = fit_palette(video, frames, style, alpha=0.0, seed=0)[:2]
    assert torch.allclose(eye, torch.eye(3, dtype=eye.dtype)) and torch.allclose(zero, torch.zeros_like(zero))


def test_the_painting_palette_waits_for_a_frame_that_is_not_flat(video_model, make_image):
    from adaattn_cli.image_io import load_resized
    from adaattn_cli.video import MAX_PALETTE_GAIN, fit_palette

    video = exact_stylizer(load_model(video_model), device="cpu")
    style = video.encode_style(load_resized(make_image("style.png", (32, 32)), size=None).rgb)
    black = np.zeros((48, 64, 3), np.uint8)
    assert fit_palette(video, [black, black + 3], style, alpha=1.0, seed=0) is None  # a fade from black
    dim = (np.random.default_rng(0).random((48, 64, 3)) * 40).astype(np.uint8)  # spread 0.08: fitted, gain capped
    matrix = fit_palette(video, [black, dim], style, alpha=1.0, seed=0)[0]
    assert float(torch.linalg.svdvals(matrix).max()) <= MAX_PALETTE_GAIN + 1e-9


def test_the_image_palette_gives_the_video_frames_the_image_models_colours(video_model, weights_dir, make_image, tmp_path):
    from adaattn_cli.image_io import load_resized
    from adaattn_cli.video import fit_palette, stylize_frames
    from adaattn_cli.video_io import read_frames

    frame = next(iter(read_frames(make_clip(tmp_path / "clip.mp4"))))
    style = load_resized(make_image("style.png", (32, 32)), size=None).rgb
    video, image = (exact_stylizer(load_model(path), device="cpu") for path in (video_model, weights_dir / "adaattn.safetensors"))
    encoded = video.encode_style(style)
    recolour = fit_palette(video, [frame], encoded, alpha=1.0, seed=0, target="image", image_stylizer=image)
    own, recoloured = (stylize_frames(video, [frame], encoded, alpha=1.0, seed=0, recolour=r, as_uint8=False) for r in (None, recolour))
    target = stylize_frames(image, [frame], image.encode_style(style), alpha=1.0, seed=0, as_uint8=False, match_color=True)
    error = lambda frames: float((frames.mean((0, 2, 3)) - target.mean((0, 2, 3))).abs().max())  # noqa: E731
    assert error(recoloured) < 0.02 and error(recoloured) < error(own) / 3
    assert recolour[2] == pytest.approx(48 / 24)


def test_the_painting_palette_is_the_default_of_the_video_model_only(cli, make_image, video_model, tmp_path, error_line, monkeypatch):
    from adaattn_cli import video as video_command

    fits = []
    fit = video_command.fit_palette
    monkeypatch.setattr(video_command, "fit_palette", lambda *args, **kwargs: fits.append(kwargs["target"]) or fit(*args, **kwargs))
    clip, style = make_clip(tmp_path / "clip.mp4"), make_image("style.png", (32, 32))
    common = ["-s", style, "--device", "cpu", "--style-size", 0]
    assert cli("video", clip, *common, "--model", video_model, "-o", tmp_path / "a.mp4").exit_code == 0
    assert fits == ["painting"] and frame_count(tmp_path / "a.mp4") == 12  # fitted once, on the first frame
    assert cli("video", clip, *common, "--model", video_model, "--palette", "own", "-o", tmp_path / "b.mp4").exit_code == 0
    assert cli("video", clip, *common, "--method", "adaattn", "-o", tmp_path / "c.mp4").exit_code == 0
    assert fits == ["painting"]
    line = error_line(cli("video", clip, *common, "--method", "adaattn", "--palette", "image", "-o", tmp_path / "d.mp4"))
    assert "--palette image recolours the adaattn-video model's frames" in line and not (tmp_path / "d.mp4").exists()


def test_help_has_examples(cli):
    result = cli("video", "-h")
    assert result.exit_code == 0 and "Examples" in result.stdout and "adaattn video" in result.stdout


@pytest.fixture
def moving_square(cli, video_args, weights_dir, tmp_path):
    """A still picture under compression noise with one moving square (8 px a frame, rows 4-12), through a tiny
    video model with spread outputs; returns run(*options) -> the output frames as int16 arrays."""
    import torch

    torch.manual_seed(0)
    model = build_model("adaattn-video", load_encoder(path=weights_dir / "vgg16-hed.safetensors"), width_divisor=8).eval()
    spread_outputs(model, torch.rand(1, 3, 48, 64))
    video_args = [*video_args, "--model", save_model(model, tmp_path / "spread.safetensors")]
    rng = np.random.default_rng(0)
    background = rng.integers(0, 200, (48, 64, 3)).astype(np.int16)
    (tmp_path / "frames").mkdir()
    for t in range(6):
        frame = background + rng.integers(-1, 2, background.shape)  # +-1 level: noise, no change
        frame[4:12, 4 * t : 4 * t + 8] = 255
        Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(tmp_path / "frames" / f"{t:03d}.png")

    def run(*options):
        out = f"out{len(options)}"
        result = cli("video", tmp_path / "frames", *video_args, *options, "-o", out)
        assert result.exit_code == 0, result.output
        return [np.asarray(Image.open(p), dtype=np.int16) for p in sorted((tmp_path / out).iterdir())]

    run.args = video_args
    return run


def largest_change(frames, rows=slice(28, None), columns=slice(None)):
    return max(int(np.abs(b[rows, columns] - a[rows, columns]).max()) for a, b in zip(frames, frames[1:]))


def test_hold_keeps_still_pixels_and_can_be_turned_off(cli, moving_square, tmp_path):
    """With the default --hold the still part of the stylised frames stops changing; --hold 0 stylises every
    frame on its own."""
    assert largest_change(moving_square()) == 0
    assert largest_change(moving_square("--hold", 0)) > 0
    result = cli("video", tmp_path / "frames", *moving_square.args, "--hold", 2, "-o", "bad")
    assert result.exit_code == 2 and "--hold" in result.output and not (tmp_path / "bad").exists()


def test_refine_keeps_still_pixels_and_repaints_what_moves(moving_square):
    frames = moving_square("--refine", 2)
    assert largest_change(frames) == 0  # the still part: exactly still
    for t, (before, after) in enumerate(zip(frames, frames[1:])):  # where the square arrives: painted anew
        arriving = slice(4 * t + 8, 4 * t + 12)
        assert np.abs(after[4:12, arriving] - before[4:12, arriving]).mean() > 5


@pytest.mark.parametrize("output", ["out.mp4", "frames"])
def test_an_output_that_appears_during_the_run_is_not_replaced(cli, video_args, tmp_path, error_line, monkeypatch, output):
    from adaattn_cli.video_io import VideoWriter

    write = VideoWriter.write

    def someone_else_writes_the_output(self, frame):
        if self.frames == 0:
            (tmp_path / output).mkdir() if output == "frames" else (tmp_path / output).write_text("theirs")
        write(self, frame)

    monkeypatch.setattr(VideoWriter, "write", someone_else_writes_the_output)
    line = error_line(cli("video", make_clip(tmp_path / "clip.mp4", frames=3), *video_args, "-o", output))
    assert f"{output} exists" in line
    if output == "frames":
        assert not any((tmp_path / "frames").iterdir())
    else:
        assert (tmp_path / output).read_text() == "theirs"
    assert leftovers(tmp_path) == []


def test_a_variable_frame_rate_keeps_its_timing_and_its_audio(cli, video_args, tmp_path):
    clip = make_vfr_clip(tmp_path / "vfr.mkv", gap=0.6)  # 24 frames over 1.6 s
    result = cli("video", clip, *video_args, "-o", "out.mp4")
    assert result.exit_code == 0, result.output
    info = probe(tmp_path / "out.mp4")
    assert info.fps == 24 and info.duration == pytest.approx(1.6, abs=0.05)  # not 24 frames in 1.0 s
    assert frame_count(tmp_path / "out.mp4") == 38  # the frame before the gap is shown 0.6 s longer
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(audio_seconds(clip), abs=0.05)


def test_non_square_pixels_keep_the_display_aspect(cli, video_args, tmp_path):
    clip = make_clip(tmp_path / "sar.mp4", frames=3, sar="128/117")  # carphone's (CIF's) pixels
    assert probe(clip).sar == Fraction(128, 117)
    assert cli("video", clip, *video_args, "-o", "out.mp4").exit_code == 0
    info = probe(tmp_path / "out.mp4")
    assert info.size == (64, 48) and info.sar == Fraction(128, 117)  # recorded in the file, exactly
    assert cli("video", clip, *video_args, "-o", "frames").exit_code == 0  # PNG frames: resampled to square pixels
    assert Image.open(tmp_path / "frames" / "frame_000001.png").size == (70, 48)
