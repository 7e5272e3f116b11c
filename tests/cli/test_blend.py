"""`adaattn blend-styles`: weights, masks, names and the --grid contact sheet."""

import pytest
from PIL import Image

from adaattn_cli.cli.blend import GAP, LABEL_HEIGHT, TILE_HEIGHT, grid_mixes


@pytest.fixture
def two_styles(make_image, weights_dir):
    return [
        "-s",
        make_image("starry.png", (32, 32)),
        "-s",
        make_image("scream.jpg", (40, 32)),
        "--model",
        weights_dir / "adain.safetensors",
        "--style-size",
        0,
        "--device",
        "cpu",
    ]


def test_blend_writes_the_default_name(cli, make_image, two_styles, tmp_path):
    result = cli("blend-styles", make_image("photo.jpg"), *two_styles, "--weights", "0.6,0.4", "--alpha", 0.8)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "photo_blend_starry+scream.jpg").size == (48, 32)


@pytest.mark.parametrize("weights, message", [("0.5", "--weights has 1 values for 2 styles"), ("a,b", None), ("1,-1", None)])
def test_bad_weights_are_refused(cli, make_image, two_styles, tmp_path, error_line, weights, message):
    result = cli("blend-styles", make_image("photo.png"), *two_styles, "--weights", weights)
    if message:  # checked by the command: one line
        assert message in error_line(result)
    else:  # checked by the parser: Typer's usage error naming the option
        assert result.exit_code == 2 and "--weights" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("photo_blend_*"))


def test_one_style_is_not_a_blend(cli, make_image, two_styles, error_line):
    one_style = two_styles[2:]  # drops "-s starry.png"
    assert "two or more" in error_line(cli("blend-styles", make_image("photo.png"), *one_style))


def test_masks_are_all_or_none(cli, make_image, two_styles, tmp_path, error_line):
    left, right = Image.new("L", (48, 32), 0), Image.new("L", (48, 32), 255)
    left.paste(255, (0, 0, 24, 32))
    left.save(tmp_path / "left.png"), right.save(tmp_path / "right.png")
    content = make_image("photo.png")
    assert "one --mask per style" in error_line(cli("blend-styles", content, *two_styles, "--mask", tmp_path / "left.png"))
    result = cli("blend-styles", content, *two_styles, "--mask", tmp_path / "left.png", "--mask", tmp_path / "right.png")
    assert result.exit_code == 0, result.output


def test_grid_is_one_labelled_sheet(cli, make_image, two_styles, tmp_path):
    result = cli("blend-styles", make_image("photo.png"), *two_styles, "--grid")
    assert result.exit_code == 0, result.output
    sheet = Image.open(tmp_path / "photo_blend_grid.png")
    assert sheet.mode == "RGB" and sheet.height == 2 * (TILE_HEIGHT + LABEL_HEIGHT + GAP) + GAP
    assert sheet.width == 5 * (TILE_HEIGHT * 3 // 2 + GAP) + GAP  # five blends of the 3:2 content
    assert [p.name for p in tmp_path.glob("photo_blend*")] == ["photo_blend_grid.png"]


def testgrid_mixes():
    assert grid_mixes(2, None) == [[1, 0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0, 1]]
    assert grid_mixes(2, [3, 1]) == grid_mixes(2, None)  # 0.75 / 0.25 is already there
    assert grid_mixes(2, [0.6, 0.4])[-1] == pytest.approx([0.6, 0.4])
    three = grid_mixes(3, None)
    assert three[:3] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] and three[3] == pytest.approx([1 / 3] * 3)
    assert grid_mixes(3, [2, 1, 1])[3] == pytest.approx([0.5, 0.25, 0.25]) and len(grid_mixes(3, [2, 1, 1])) == 4


def test_blend_refines_with_the_mix(cli, make_image, two_styles, tmp_path):
    result = cli("blend-styles", make_image("photo.png"), *two_styles, "--weights", "0.7,0.3", "--refine", 2)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "photo_blend_starry+scream.png").size == (48, 32)
