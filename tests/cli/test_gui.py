"""`adaattn gui`'s work without a browser: Studio (stylise, blend grid, video) on tiny random models, its caches and
its messages, and the command's own checks. The page in a real browser: test_gui_browser.py."""

import importlib.util
import socket
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image
from videoclips import make_clip

from adaattn_cli.api import Stylizer
from adaattn_cli.cli import gui_app as gui
from adaattn_cli.errors import BadInputError
from adaattn_cli.image_io import load_image
from adaattn_cli.video_io import probe


@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.setattr(gui, "STYLE_SIZE", None)  # the tests' small styles as they are: fast
    return gui.Studio(tmp_path / "work", device="cpu")


@pytest.fixture
def photo(make_image):
    return make_image("photo.png", (64, 48))


@pytest.fixture
def style(make_image):
    return make_image("style.png", (48, 48))


@pytest.fixture
def encodings(monkeypatch):
    """Counts Stylizer.encode_style calls."""
    calls = []
    original = Stylizer.encode_style

    def counted(self, image, **kwargs):
        calls.append(tuple(image.shape))
        return original(self, image, **kwargs)

    monkeypatch.setattr(Stylizer, "encode_style", counted)
    return calls


def test_a_picture_at_the_photos_size_and_alpha_without_encoding_the_style_again(studio, photo, style, encodings):
    full = studio.stylize(photo, [(style, 1.0)])
    assert full.rgb.shape == (3, 48, 64)
    assert (full.rgb - load_image(photo).rgb).abs().mean() > 0.05  # a new picture, not the photo
    weaker = studio.stylize(photo, [(style, 1.0)], alpha=0.3)
    assert len(encodings) == 1  # the style was encoded once, for both alphas
    assert not torch.equal(weaker.rgb, full.rgb)
    saved = studio.save(weaker, "photo_stylized_style.jpg")
    assert Image.open(saved).size == (64, 48) and Image.open(saved).format == "JPEG"
    again = studio.save(full, "photo_stylized_style.jpg")  # two results of one name never share a file
    assert again != saved and again.parent.parent == saved.parent.parent


def test_a_blend_a_mask_and_preserved_colours(studio, photo, style, make_image):
    other = make_image("other.png", (40, 56))
    blend = studio.stylize(photo, [(style, 0.7), (other, 0.3)], model="adain")
    only_first = studio.stylize(photo, [(style, 1.0), (other, 0.0)], model="adain")
    assert blend.rgb.shape == (3, 48, 64) and not torch.allclose(blend.rgb, only_first.rgb)
    nowhere = studio.stylize(photo, [(style, 1.0)], mask=torch.zeros(24, 32))  # the mask is fitted to the photo
    reconstruction = studio.stylize(photo, [(style, 1.0)], alpha=0.0)
    assert torch.allclose(nowhere.rgb, reconstruction.rgb, atol=1e-4)
    with pytest.raises(BadInputError, match="the mask is 10x32 but the content is 64x48"):
        studio.stylize(photo, [(style, 1.0)], mask=torch.zeros(32, 10))
    kept = studio.stylize(photo, [(style, 1.0)], preserve_color=True)
    assert not torch.allclose(kept.rgb, studio.stylize(photo, [(style, 1.0)]).rgb)
    own = studio.stylize(photo, [(style, 1.0)], match_color=False)  # "The painting's overall colour" unticked
    stylizer = studio.stylizer("adaattn")
    expected = stylizer.stylize(gui.load_picture(photo, "photo").rgb, [studio.style("adaattn", style, seed=0)], match_color=False)
    assert torch.equal(own.rgb, expected)


def test_preserved_colours_are_encoded_once_per_photo(studio, photo, style, make_image, encodings):
    for alpha in (1.0, 0.5):
        studio.stylize(photo, [(style, 1.0)], preserve_color=True, alpha=alpha)
    assert len(encodings) == 1
    studio.stylize(make_image("second.png", (64, 48)), [(style, 1.0)], preserve_color=True)
    assert len(encodings) == 2  # the style in another photo's colours


def test_the_work_size_and_the_refinement_progress(studio, photo, style):
    steps = []
    # a budget of 12 on a picture too small for a half-size level: 3 steps at full size (refine.plan)
    small = studio.stylize(photo, [(style, 1.0)], max_size=56, refine=12, progress=lambda done, total: steps.append((done, total)))
    assert small.rgb.shape == (3, 42, 56)
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_blend_grid(studio, photo, style, make_image):
    blends = []
    sheet = studio.blend_grid(photo, [(style, 1.0), (make_image("b.png", (32, 32)), 1.0)], progress=lambda d, t: blends.append((d, t)))
    assert sheet.shape[0] == 3 and sheet.shape[-1] > 5 * 64  # five blends side by side
    assert blends == [(i, 5) for i in range(1, 6)]
    with pytest.raises(BadInputError, match="two or more styles"):
        studio.blend_grid(photo, [(style, 1.0)])


def test_video_with_its_audio_and_frame_progress(studio, style, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=6, audio=True)
    frames = []
    out = studio.video(clip, style, model="adaattn", progress=lambda done, total: frames.append(done))
    info = probe(out)
    assert out.name == "clip_stylized_style.mp4" and info.size == (64, 48) and info.has_audio
    assert frames == [1, 2, 3, 4, 5, 6]


def test_long_clips_are_refused_unless_cut(studio, style, tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", frames=25)  # 1 s
    monkeypatch.setattr(gui, "MAX_CLIP_SECONDS", 0.5)
    with pytest.raises(BadInputError, match="up to 0.5 s of a clip at a time; set a start and a duration"):
        studio.video(clip, style, model="adaattn")
    assert probe(studio.video(clip, style, model="adaattn", start=0.2, duration=0.4)).size == (64, 48)


def test_bad_uploads_are_named_by_their_file_name(studio, style, tmp_path):
    text = tmp_path / "upload" / "notes.png"
    text.parent.mkdir()
    text.write_text("not a picture")
    with pytest.raises(BadInputError) as error:
        studio.stylize(text, [(style, 1.0)])
    assert str(error.value) == "photo notes.png: not a readable image (cannot identify image file)."
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2000)
    with pytest.raises(BadInputError, match="broken.mp4: not a readable video"):
        studio.video(broken, style, model="adaattn")


def test_a_bomb_is_refused_before_it_is_decoded(studio, style, tmp_path, monkeypatch):
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)  # `adaattn gui --max-pixels 20000`
    with pytest.raises(BadInputError, match="photo big.png: image exceeds the pixel limit.*adaattn gui --max-pixels"):
        studio.stylize(tmp_path / "big.png", [(style, 1.0)])


def test_models_are_the_listed_ones(studio, photo, style, weights_dir):
    names = [name for _, name in studio.models()]
    assert names[:2] == ["adaattn", "adain"] and names.count("adaattn") == 1  # weights_dir's first, as --model NAME
    with pytest.raises(BadInputError, match="no model named '/etc/passwd'"):
        studio.stylize(photo, [(style, 1.0)], model="/etc/passwd")


def test_a_drawn_mask_is_where_any_layer_is_painted(tmp_path):
    layer = np.zeros((20, 30, 4), np.uint8)
    layer[5:10, 3:8] = (255, 51, 102, 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.fromarray(np.zeros((20, 30, 4), np.uint8)).save(tmp_path / "empty.png")
    mask = gui.drawn_mask({"layers": [{"path": str(tmp_path / "layer.png")}, {"path": str(tmp_path / "empty.png")}]})
    assert mask.shape == (20, 30) and mask.sum() == 25 and mask[5:10, 3:8].min() == 1
    assert gui.drawn_mask({"layers": [{"path": str(tmp_path / "empty.png")}]}) is None and gui.drawn_mask(None) is None


def test_without_gradio_one_line_says_what_to_install(cli, error_line, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "gradio" else find_spec(name, *args))
    assert error_line(cli("gui")) == 'error: adaattn gui needs Gradio: pip install -e ".[gui]" (in a checkout), or pip install gradio'


def test_a_taken_port_is_one_line_and_a_public_host_a_warning(cli, monkeypatch, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("needs Gradio")
    for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "")  # serve() sets them for the app's process: this one gets them back
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("gui", "--no-browser", "--host", "0.0.0.0", "--port", port)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "warning: serving on 0.0.0.0: anyone who can reach this computer can use the app and see what it makes",
        "starting the app...",
        f"error: cannot serve on 0.0.0.0, port {port}: in use, or not this computer's address; pick another --port or --host",
    ]
    assert list((tmp_path / "temp").iterdir()) == []  # its temporary folder went with it
