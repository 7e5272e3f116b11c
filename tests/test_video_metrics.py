"""video_metrics: the warping error is ~0 for a still clip, small for motion the flow follows, large for flicker and
jitter; the style loss is 0 for the style itself."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from adaattn_cli.encoders import build_encoder
from adaattn_cli.errors import AdaattnError
from adaattn_cli.video_metrics import style_loss_by_layer, style_loss_of_frames, warping_error

pytest.importorskip("cv2")


def panning(count=12, size=(64, 48), step=2):
    """A smooth random texture seen by a camera panning `step` pixels per frame: uint8 [H, W, 3] frames."""
    width, height = size
    coarse = np.random.default_rng(0).integers(0, 256, (height // 8 + 1, (width + count * step) // 8 + 1, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((coarse.shape[1] * 8, coarse.shape[0] * 8), Image.BICUBIC))
    return [np.ascontiguousarray(texture[:height, t * step : t * step + width]) for t in range(count)]


def test_a_still_clip_has_no_warping_error():
    still = [panning()[0]] * 6
    assert warping_error(still, still) < 1e-3


def test_motion_is_followed_and_flicker_is_caught():
    clip = panning()
    rng = np.random.default_rng(1)
    jittered = [np.roll(frame, tuple(rng.integers(-3, 4, 2)), axis=(0, 1)) for frame in clip]
    noisy = [np.clip(frame + rng.normal(0, 20, frame.shape), 0, 255).astype(np.uint8) for frame in clip]
    smooth = warping_error(clip, clip)
    assert smooth < 0.01
    assert warping_error(clip, jittered) > 5 * smooth + 0.03
    assert warping_error(clip, noisy) > 5 * smooth + 0.03


def test_frame_counts_must_match():
    clip = panning(count=4)
    with pytest.raises(ValueError, match="as many output frames"):
        warping_error(clip, clip[:3])
    with pytest.raises(ValueError, match="at least two frames"):
        warping_error(clip[:1], clip[:1])


def test_style_loss_is_zero_for_the_style_itself():
    torch.manual_seed(0)
    encoder = build_encoder("vgg16-hed", width_divisor=8)
    clip = panning(count=2)
    style = torch.from_numpy(clip[0]).permute(2, 0, 1).float() / 255
    assert style_loss_of_frames(clip[:1], style, encoder) < 1e-8
    assert style_loss_of_frames([255 - clip[1]], style, encoder) > 1e-4


def test_style_loss_by_layer_sums_to_the_style_loss():
    torch.manual_seed(0)
    encoder = build_encoder("vgg16-hed", width_divisor=8)
    clip = panning(count=3)
    style = torch.from_numpy(255 - clip[0]).permute(2, 0, 1).float() / 255
    terms = style_loss_by_layer(clip[1:], style, encoder)
    assert len(terms) == 5 and all(term > 0 for term in terms)
    assert sum(terms) == pytest.approx(style_loss_of_frames(clip[1:], style, encoder), rel=1e-6)


def test_without_opencv_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(AdaattnError, match=r"pip install opencv-python-headless \(or adaattn\[flow\]\)"):
        warping_error(panning(count=2), panning(count=2))
