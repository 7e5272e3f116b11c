"""Tests for adaattn_cli.image_io; every image is made in tmp_path with Pillow."""

import numpy as np
import pytest
import torch
from PIL import Image

from adaattn_cli import image_io
from adaattn_cli.errors import BadInputError
from adaattn_cli.image_io import load_image, resize_max_side, save_image, set_pixel_limit


def _rgb_array(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gradient(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)


@pytest.fixture
def pixel_limit():
    old = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = old


def test_png_round_trip_is_exact(tmp_path):
    rgb = torch.rand(3, 20, 30)
    out = save_image(tmp_path / "sub" / "out.png", rgb)  # also creates the parent folder
    assert out == tmp_path / "sub" / "out.png"
    img = load_image(out)
    assert img.rgb.dtype == torch.float32 and img.rgb.shape == (3, 20, 30)
    assert (img.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6
    assert img.alpha is None and img.path == out


def test_save_rounds_instead_of_truncating(tmp_path):
    rgb = torch.tensor([254.6 / 255, 0.4 / 255, 2.0]).reshape(3, 1, 1)  # 2.0 is clamped
    px = np.array(Image.open(save_image(tmp_path / "r.png", rgb)))
    assert px[0, 0].tolist() == [255, 0, 255]


def test_jpeg_round_trip_is_close(tmp_path):
    rgb = torch.from_numpy(_gradient()).permute(2, 0, 1).float() / 255
    img = load_image(save_image(tmp_path / "out.jpg", rgb))
    assert img.rgb.shape == rgb.shape
    assert (img.rgb - rgb).abs().mean() < 0.02


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    Image.fromarray(_rgb_array(20, 40)).save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").rgb.shape == (3, 40, 20)


def test_rgba_alpha_kept_for_png_dropped_for_jpeg(tmp_path):
    arr = np.dstack([_rgb_array(), np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)])
    Image.fromarray(arr).save(tmp_path / "in.png")
    img = load_image(tmp_path / "in.png")
    assert img.alpha is not None and img.alpha.shape == (1, 24, 32)
    again = load_image(save_image(tmp_path / "out.png", img.rgb, alpha=img.alpha))
    assert torch.equal(again.alpha, img.alpha) and torch.equal(again.rgb, img.rgb)
    jpg = save_image(tmp_path / "out.jpg", img.rgb, alpha=img.alpha)
    assert Image.open(jpg).mode == "RGB" and load_image(jpg).alpha is None


def _make(kind, path):
    base = Image.fromarray(_rgb_array())
    if kind == "LA":
        base.convert("LA").save(path)
    elif kind == "P+transparency":
        pal = base.convert("P")
        pal.info["transparency"] = 0
        pal.save(path, transparency=0)
    elif kind == "CMYK":
        base.convert("CMYK").save(path)
    elif kind in ("L", "1"):
        base.convert(kind).save(path)
    elif kind == "GIF":
        frames = [base.convert("P"), Image.new("RGB", base.size, "red").convert("P")]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    else:
        base.save(path)


@pytest.mark.parametrize(
    "kind, name, has_alpha",
    [
        ("LA", "la.png", True),
        ("P+transparency", "p.png", True),
        ("CMYK", "cmyk.jpg", False),
        ("CMYK", "cmyk.tif", False),
        ("L", "l.png", False),
        ("1", "bits.png", False),
        ("GIF", "anim.gif", False),
        ("RGB", "x.bmp", False),
        ("RGB", "x.tiff", False),
        ("RGB", "x.webp", False),
    ],
)
def test_modes_and_formats_load_as_rgb(tmp_path, kind, name, has_alpha):
    _make(kind, tmp_path / name)
    img = load_image(tmp_path / name)
    assert img.rgb.shape == (3, 24, 32) and img.rgb.dtype == torch.float32
    assert 0 <= img.rgb.min() and img.rgb.max() <= 1
    assert (img.alpha is not None) == has_alpha


def test_gif_loads_first_frame(tmp_path):
    _make("GIF", tmp_path / "anim.gif")
    assert load_image(tmp_path / "anim.gif").rgb[0].mean() < 0.9  # the second frame is all red


def test_16_bit_grey_keeps_precision(tmp_path):
    arr = np.full((8, 10), 1000, dtype=np.uint16)
    arr[0, 0] = 65535
    Image.fromarray(arr).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    assert img.rgb.shape == (3, 8, 10)
    assert abs(img.rgb[1, 4, 4].item() - 1000 / 65535) < 1e-6  # 8 bits would give 3/255
    assert img.rgb[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert load_image(tmp_path / "g16.png", max_size=5).rgb.shape == (3, 4, 5)


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("F", 0.25, 0.25),
        ("F", 51.0, 0.2),
        ("I;16B", 1000, 1000 / 65535),
        ("I", 70000, 1.0),
    ],
)
def test_high_bit_tiff(tmp_path, mode, value, expected):
    Image.new(mode, (6, 4), value).save(tmp_path / "hb.tif")
    img = load_image(tmp_path / "hb.tif")
    assert img.rgb.shape == (3, 4, 6)
    assert img.rgb[:, 2, 3].tolist() == pytest.approx([expected] * 3, abs=1e-6)


def test_non_rgb_icc_profile_is_dropped(tmp_path):
    fake_grey_icc = bytes(16) + b"GRAY" + bytes(108)  # only the colour-space field matters here
    Image.fromarray(_rgb_array()).convert("L").save(tmp_path / "g.png", icc_profile=fake_grey_icc)
    assert Image.open(tmp_path / "g.png").info["icc_profile"] == fake_grey_icc
    assert load_image(tmp_path / "g.png").icc_profile is None


def test_icc_profile_is_preserved(tmp_path):
    ImageCms = pytest.importorskip("PIL.ImageCms")
    try:
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except ImageCms.PyCMSError:  # Pillow built without littlecms
        pytest.skip("ImageCms unavailable")
    Image.fromarray(_rgb_array()).save(tmp_path / "in.jpg", icc_profile=icc)
    img = load_image(tmp_path / "in.jpg")
    assert img.icc_profile == icc
    for name in ("out.png", "out.jpg", "out.webp", "out.tif"):
        out = save_image(tmp_path / name, img.rgb, icc_profile=img.icc_profile)
        assert Image.open(out).info.get("icc_profile") == icc, name


def _bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb_array(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is not an image\n")
    (tmp_path / "folder.png").mkdir()


@pytest.mark.parametrize("name", ["missing.jpg", "empty.jpg", "truncated.jpg", "notes.jpg", "folder.png"])
def test_unreadable_files_raise_bad_input(tmp_path, name):
    _bad_files(tmp_path)
    with pytest.raises(BadInputError, match=name) as info:
        load_image(tmp_path / name)
    assert isinstance(info.value, ValueError)


# The image has 150 px: over twice the limit Pillow errors, just over it Pillow only warns.
@pytest.mark.parametrize("limit", [50, 101])
def test_decompression_bomb_is_refused(tmp_path, pixel_limit, limit):
    Image.new("RGB", (15, 10)).save(tmp_path / "bomb.png")
    set_pixel_limit(limit)
    with pytest.raises(BadInputError, match="bomb.png.*pixel limit.*set_pixel_limit"):
        load_image(tmp_path / "bomb.png")
    set_pixel_limit(None)
    assert load_image(tmp_path / "bomb.png").rgb.shape == (3, 10, 15)


def test_save_refuses_to_overwrite(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"original")
    with pytest.raises(BadInputError, match=r"out.png exists; pass overwrite=True"):
        save_image(target, torch.rand(3, 4, 4))
    assert target.read_bytes() == b"original"
    save_image(target, torch.rand(3, 4, 4), overwrite=True)
    assert Image.open(target).size == (4, 4)


def test_unknown_extension_writes_nothing(tmp_path):
    with pytest.raises(BadInputError, match=r"out\.xyz"):
        save_image(tmp_path / "new" / "out.xyz", torch.rand(3, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"original")

    def half_write(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image_io.Image.Image, "save", half_write)
    with pytest.raises(BadInputError, match="out.png.*No space left"):
        save_image(target, torch.rand(3, 4, 4), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert target.read_bytes() == b"original"


def test_encoder_refusal_becomes_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="wide.webp"):  # WebP caps sides at 16383 px
        save_image(tmp_path / "wide.webp", torch.rand(3, 1, 17000))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["big.png", "big.jpg"])  # JPEG also takes the draft path
def test_max_size_downsizes_keeping_aspect(tmp_path, name):
    Image.fromarray(_gradient(200, 300)).save(tmp_path / name)
    assert load_image(tmp_path / name, max_size=100).rgb.shape == (3, 67, 100)
    assert load_image(tmp_path / name, max_size=1000).rgb.shape == (3, 200, 300)


def test_resize_max_side():
    t = torch.rand(2, 3, 90, 60)
    small = resize_max_side(t, 30)
    assert small.shape == (2, 3, 30, 20) and 0 <= small.min() and small.max() <= 1
    assert resize_max_side(t[0], 30).shape == (3, 30, 20)
    assert resize_max_side(t, 90) is t


def test_crop_to_fill_keeps_the_centre_and_the_aspect():
    # a portrait picture with black bands at the top and bottom: a square crop keeps only its white middle
    tall = torch.ones(3, 80, 40)
    tall[:, :10], tall[:, 70:] = 0, 0
    square = image_io.crop_to_fill(tall, (20, 20))
    assert square.shape == (3, 20, 20) and square.min() > 0.99
    assert image_io.crop_to_fill(torch.rand(3, 30, 90), (16, 24)).shape == (3, 16, 24)


def test_grid_sheet_lines_pictures_of_any_shape_up_in_equal_cells():
    rows = [[torch.zeros(3, 40, 90), torch.zeros(3, 90, 40)], [torch.zeros(3, 50, 50)]]  # landscape, portrait, square
    sheet = image_io.grid_sheet(rows, (30, 20), gap=2)
    assert sheet.shape == (3, 2 * 30 + 2, 2 * 20 + 2)
    filled = sheet[0] < 0.5
    assert filled[:30, :20].all() and filled[:30, 22:].all() and filled[32:, :20].all()  # every cell filled edge to edge
    assert not filled[30:32].any() and not filled[:, 20:22].any() and not filled[32:, 22:].any()  # white gaps, empty cell
