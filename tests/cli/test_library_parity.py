"""The library and the CLI give the same files for the same settings (docs/api.md): one code path builds the
model, reads the pictures and mixes the styles for both."""

import pytest

from adaattn_cli import Stylizer


@pytest.mark.parametrize(
    "name, flags, options",
    [
        ("out.png", [], {}),
        ("out.png", ["--alpha", "0.6", "--seed", "3", "--style-positions", "40", "--preserve-color"], {"alpha": 0.6, "seed": 3}),
        ("out.png", ["--no-match-color"], {"match_color": False}),
        ("out.jpg", ["--refine", "1"], {"refine": 1}),  # JPEG at the CLI's quality
    ],
)
def test_the_library_writes_the_bytes_the_cli_writes(cli, make_image, tmp_path, name, flags, options):
    content = make_image("content.png", (80, 64), mode="RGBA" if name.endswith(".png") else "RGB")  # PNG keeps alpha
    style = make_image("style.png", (48, 40))
    assert cli("stylize", content, "-s", style, "-o", f"cli_{name}", *flags).exit_code == 0
    positions = 40 if "--style-positions" in flags else None
    stylizer = Stylizer.load("adaattn", style_positions=positions)
    picture = stylizer.stylize(content, style, preserve_color="--preserve-color" in flags, **options)
    picture.save(tmp_path / f"lib_{name}", **({"quality": 95} if name.endswith(".jpg") else {}))
    assert (tmp_path / f"cli_{name}").read_bytes() == (tmp_path / f"lib_{name}").read_bytes()


def test_a_mask_gives_the_same_file_from_both(cli, make_image, tmp_path):
    content, style = make_image("content.png", (80, 64)), make_image("style.png", (48, 40))
    mask = make_image("mask.png", (40, 32), mode="L")  # half the content's size: both resize it
    assert cli("stylize", content, "-s", style, "--mask", mask, "-o", "cli.png").exit_code == 0
    Stylizer.load("adaattn").stylize(content, [style], masks=[mask]).save(tmp_path / "lib.png")
    assert (tmp_path / "cli.png").read_bytes() == (tmp_path / "lib.png").read_bytes()


def test_stylize_video_writes_the_frames_adaattn_video_writes(cli, make_image, tmp_path, weights_dir):
    from videoclips import make_clip

    from adaattn_cli import stylize_video

    clip, style = make_clip(tmp_path / "clip.mp4", frames=4), make_image("style.png", (48, 40))
    model = weights_dir / "adaattn.safetensors"
    result = cli("video", clip, "-s", style, "--model", model, "-o", "cli_frames")
    assert result.exit_code == 0, result.output
    written = stylize_video(clip, style, tmp_path / "lib_frames", stylizer=Stylizer.load(model))
    assert written == tmp_path / "lib_frames"
    frames = sorted(p.name for p in written.iterdir())
    assert len(frames) == 4 and frames == sorted(p.name for p in (tmp_path / "cli_frames").iterdir())
    for name in frames:
        assert (written / name).read_bytes() == (tmp_path / "cli_frames" / name).read_bytes()
