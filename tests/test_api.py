"""The library as a user calls it: pictures of every kind in, the same kind out; styles keep their mask and seed;
the package's public names; the notebook of docs/api.md, run as written."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import exact_stylizer
from PIL import Image

import adaattn_cli
from adaattn_cli import functional as fn
from adaattn_cli.api import Style
from adaattn_cli.errors import BadInputError
from adaattn_cli.weights import REPO_WEIGHTS

ROOT = REPO_WEIGHTS.parent


@pytest.fixture
def stylizer(models):
    return exact_stylizer(models["adaattn"])


@pytest.fixture
def files(tmp_path, images):
    """The content as an RGBA PNG with an ICC profile, and the style as a PNG."""
    content = (images["content"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    alpha = np.linspace(0, 255, content.shape[0] * content.shape[1]).reshape(content.shape[:2]).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([content, alpha]))
    try:
        from PIL import ImageCms

        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except ImportError:  # Pillow without littlecms: no profile to carry
        icc = None
    rgba.save(tmp_path / "content.png", icc_profile=icc)
    style = (images["style"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(style).save(tmp_path / "style.png")
    return tmp_path / "content.png", tmp_path / "style.png", icc


def test_every_kind_comes_back_as_given(stylizer, files):
    content_path, style_path, icc = files
    style = stylizer.encode_style(style_path)
    from_path = stylizer.stylize(content_path, style)
    from_str = stylizer.stylize(str(content_path), style)
    with Image.open(content_path) as opened:
        from_pil = stylizer.stylize(opened, style)
    array = np.array(Image.open(content_path).convert("RGB"))
    from_array = stylizer.stylize(array, style)
    from_float_array = stylizer.stylize(array.astype(np.float32) / 255, style)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    from_tensor = stylizer.stylize(tensor, style)
    from_batch = stylizer.stylize(tensor[None], style)
    from_double = stylizer.stylize(tensor.double(), style)

    for picture in (from_path, from_str, from_pil):
        assert isinstance(picture, Image.Image) and picture.mode == "RGBA" and picture.size == (80, 64)
        assert picture.getchannel("A").tobytes() == Image.open(content_path).getchannel("A").tobytes()
        assert picture.info.get("icc_profile") == icc
    assert from_array.dtype == np.uint8 and from_array.shape == (64, 80, 3)
    assert from_float_array.dtype == np.float32 and from_float_array.shape == (64, 80, 3)
    assert from_tensor.shape == (3, 64, 80) and from_batch.shape == (1, 3, 64, 80) and from_double.dtype == torch.float64
    # one picture, whatever its kind (uint8 ones rounded as saved files are)
    assert np.array_equal(np.asarray(from_path.convert("RGB")), from_array)
    assert np.array_equal(np.asarray(from_pil.convert("RGB")), from_array)
    assert torch.equal(from_batch[0], from_tensor)
    assert np.abs(from_float_array - from_tensor.permute(1, 2, 0).numpy()).max() < 1e-6
    assert np.abs(from_array / 255 - from_tensor.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6


def test_refined_pictures_come_back_as_given_too(stylizer, files):
    """Refinement runs on its own tensors: a file, an array and a batch of doubles still come back as given."""
    content_path, style_path, icc = files
    style = stylizer.encode_style(style_path)
    from_path = stylizer.stylize(content_path, style, refine=1)
    array = np.array(Image.open(content_path).convert("RGB"))
    from_array = stylizer.stylize(array, style, refine=1)
    from_batch = stylizer.stylize(torch.from_numpy(array).permute(2, 0, 1)[None].double() / 255, style, refine=1)
    assert isinstance(from_path, Image.Image) and from_path.mode == "RGBA" and from_path.size == (80, 64)
    assert from_path.getchannel("A").tobytes() == Image.open(content_path).getchannel("A").tobytes()
    assert from_path.info.get("icc_profile") == icc
    assert from_array.dtype == np.uint8 and from_array.shape == (64, 80, 3)
    assert from_batch.shape == (1, 3, 64, 80) and from_batch.dtype == torch.float64
    assert np.array_equal(np.asarray(from_path.convert("RGB")), from_array)
    assert np.abs(from_array / 255 - from_batch[0].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    assert not np.array_equal(from_array, stylizer.stylize(array, style))  # refined indeed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
@pytest.mark.parametrize("refine", [0, 1])
def test_a_tensor_comes_back_on_its_own_device(models, images, refine):
    for stylizer_device, tensor_device in (("cuda", "cpu"), ("cpu", "cuda")):
        stylizer = exact_stylizer(models["adaattn"], device=stylizer_device)
        content = images["content"].to(tensor_device)
        for given in (content, content[None]):
            result = stylizer.stylize(given, images["style"], refine=refine)
            assert result.device == given.device and result.shape == given.shape


def test_a_masked_style_keeps_its_mask_and_seed_through_preserve_color(models, images):
    stylizer = exact_stylizer(models["adaattn"], style_positions=30)  # sampled positions: the seed matters
    mask = torch.zeros(48, 64)
    mask[:, :32] = 1
    style = stylizer.encode_style(images["style"], mask=mask, seed=5)
    assert style.seed == 5 and torch.equal(style.mask, mask)

    kept = stylizer.stylize(images["content"], style, preserve_color=True)
    recoloured = fn.coral(images["style"], images["content"])
    by_hand = stylizer.stylize(images["content"], stylizer.encode_style(recoloured, mask=mask, seed=5))
    assert torch.equal(kept, by_hand)
    for lost in (stylizer.encode_style(recoloured, seed=5), stylizer.encode_style(recoloured, mask=mask, seed=0)):
        assert not torch.allclose(kept, stylizer.stylize(images["content"], lost), atol=1e-4)


def test_masks_of_any_kind_with_the_pictures_aspect_ratio(stylizer, images, tmp_path):
    left = torch.zeros(64, 80)
    left[:, :40] = 1
    styles = [images["style"], images["style2"]]
    # the model's own colours: the file's mask, resized from twice the size, has a soft edge column that the colour
    # step (per-pixel mask weights) shows at full resolution; the attention sees masks at a quarter of it
    expected = stylizer.stylize(images["content"], styles, masks=[left, 1 - left], match_color=False)
    Image.fromarray((left.numpy() * 255).astype(np.uint8)).resize((160, 128), Image.NEAREST).save(tmp_path / "left.png")
    from_file = stylizer.stylize(images["content"], styles, masks=[tmp_path / "left.png", 1 - left.numpy()], match_color=False)
    assert torch.allclose(from_file, expected, atol=1e-3)
    style = stylizer.encode_style(images["style"], mask=np.ones((24, 32), np.uint8) * 255)
    assert style.mask.shape == (48, 64) and bool((style.mask == 1).all())
    with pytest.raises(BadInputError, match="style mask is 10x10 but the style is 64x48"):
        stylizer.encode_style(images["style"], mask=torch.ones(10, 10))


@pytest.mark.parametrize(
    "picture, message",
    [
        (torch.zeros(3, 64, 64, dtype=torch.int32), "uint8 \\(0-255\\) or floats"),
        (np.zeros((64, 64, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((64, 64, 3), np.int32), "uint8"),
        ([1, 2, 3], "got list"),
        ("no/such/file.png", "file not found"),
    ],
)
def test_a_picture_of_no_known_kind_is_one_clear_error(stylizer, images, picture, message):
    with pytest.raises(BadInputError, match=message):
        stylizer.stylize(picture, images["style"])


def test_a_style_from_a_file_is_resized_as_the_cli_does(stylizer, tmp_path):
    Image.new("RGB", (200, 100), "red").save(tmp_path / "wide.png")
    assert stylizer.encode_style(tmp_path / "wide.png").image.shape == (3, 512, 1024)
    assert stylizer.encode_style(tmp_path / "wide.png", style_size=0).image.shape == (3, 100, 200)
    assert stylizer.encode_style(torch.rand(3, 100, 200)).image.shape == (3, 100, 200)  # a tensor: as given
    assert isinstance(stylizer.encode_style(Image.open(tmp_path / "wide.png"), style_size=64), Style)


def test_the_package_names_its_api_without_importing_torch_first():
    code = "import sys, adaattn_cli; assert 'torch' not in sys.modules; print(sorted(adaattn_cli.__all__))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("Stylizer", "Style", "RefineSettings", "stylize_video", "export_onnx", "list_models", "register_method"):
        assert name in names and callable(getattr(adaattn_cli, name))
    assert (Path(adaattn_cli.__file__).parent / "py.typed").exists()
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        adaattn_cli.nothing  # noqa: B018


@pytest.mark.slow  # the shipped weights
def test_the_notebook_in_docs_api_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs/api.md").read_text(), flags=re.S)
    assert len(blocks) >= 3
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    with Image.open("bedroom_vangogh.png") as written:
        assert written.size == Image.open(ROOT / "examples/bedroom.jpg").size
    assert namespace["painted"].dtype == np.uint8 and namespace["painted"].flags.writeable
    assert len(list(namespace["clip"].iterdir() if namespace["clip"].is_dir() else [namespace["clip"]])) == 1


def test_styles_come_one_or_as_any_sequence(stylizer, images):
    one = stylizer.stylize(images["content"], images["style"])
    assert torch.equal(stylizer.stylize(images["content"], (images["style"],)), one)
    assert torch.equal(stylizer.stylize(images["content"], [images["style"]]), one)
    with pytest.raises(BadInputError, match="expected a Style, a picture or a list of them, got int"):
        stylizer.stylize(images["content"], 5)


def test_refinement_takes_the_style_from_inside_its_mask(stylizer, images):
    style = images["style"].clone()
    style[:, :, 32:] = 0.7 + 0.3 * style[:, :, 32:]  # two halves with other statistics
    style[:, :, :32] *= 0.3
    mask = torch.zeros(48, 64)
    mask[:, :32] = 1
    whole, masked = stylizer.encode_style(style, seed=2), stylizer.encode_style(style, mask=mask, seed=2)
    left_half = stylizer.encode_style(style[:, :, :32].contiguous(), seed=2)
    targets = [stylizer.refiner.style_targets(s.image, 1.0, 2, s.mask) for s in (masked, left_half, whole)]
    # the statistics of the mask's half: close to those of that half cropped (not equal: the convs see across the edge)
    for layer in range(3):  # relu1_1..relu3_1: deeper, a 48x64 style's features see across the whole picture
        masked_mean, half_mean, whole_mean = (t.means[layer] for t in targets)
        assert (masked_mean - half_mean).norm() < 0.5 * (whole_mean - half_mean).norm()
    refined = [stylizer.stylize(images["content"], s, refine=2) for s in (whole, masked)]
    assert not torch.equal(*refined)


def test_a_style_of_another_model_is_encoded_again(models, images):
    adaattn, adain = exact_stylizer(models["adaattn"]), exact_stylizer(models["adain"])
    foreign = adaattn.encode_style(images["style"], seed=4)
    own = adain.encode_style(images["style"], seed=4)
    assert torch.equal(adain.stylize(images["content"], foreign), adain.stylize(images["content"], own))


def test_small_styles_and_uint8_tensors_as_the_cli_takes_them(stylizer, images, tmp_path):
    Image.new("RGB", (30, 20), "red").save(tmp_path / "tiny.png")  # below MIN_SIDE, fine once resized to 512
    assert stylizer.encode_style(tmp_path / "tiny.png").image.shape == (3, 512, 768)
    as_uint8 = (images["content"] * 255).round().to(torch.uint8)
    result = stylizer.stylize(as_uint8, images["style"])
    assert result.dtype == torch.uint8 and result.shape == as_uint8.shape


@pytest.mark.parametrize(
    "options, message",
    [
        ({"weights": 0.5}, "one weight per style"),
        ({"masks": torch.ones(64, 80)}, "one mask \\(or None\\) per style"),
        ({"refine": -1}, "refine is a whole number"),
        ({"refine": 2.5}, "refine is a whole number"),
    ],
)
def test_settings_of_the_wrong_shape_are_one_clear_error(stylizer, images, options, message):
    with pytest.raises(BadInputError, match=message):
        stylizer.stylize(images["content"], images["style"], **options)
