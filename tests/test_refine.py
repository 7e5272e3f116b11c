"""Test-time refinement (refine.py, Stylizer.refine / stylize(refine=N)) on tiny random models."""

import pytest
import torch
from helpers import exact_stylizer

from adaattn_cli import functional as fn
from adaattn_cli.api import Stylizer
from adaattn_cli.encoders import build_encoder
from adaattn_cli.errors import BadInputError
from adaattn_cli.models import build_model
from adaattn_cli.refine import RefineSettings, plan
from adaattn_cli.video_filters import FrameRefiner


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: thread start-up and contention cost more than they save
    yield
    torch.set_num_threads(threads)


def tiny_stylizer(**options) -> Stylizer:
    """A random narrow model whose relu1_1 sees colour: its first conv passes +-R, +-G, +-B (routing is visible)."""
    torch.manual_seed(3)
    encoder = build_encoder("vgg16-hed", width_divisor=8)
    conv = encoder.convs["conv1_1"]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for channel in range(6):  # the input layer gives BGR x 255 - mean
            conv.weight[channel, 2 - channel % 3, 1, 1] = (1 if channel < 3 else -1) / 255
    return exact_stylizer(build_model("adaattn", encoder, width_divisor=8), **options)


@pytest.fixture(scope="module")
def stylizer():
    return tiny_stylizer()


@pytest.fixture
def pictures():
    generator = torch.Generator().manual_seed(4)
    content = torch.rand(3, 64, 80, generator=generator)
    red = torch.zeros(3, 48, 64)
    red[0] = 0.9
    blue = torch.zeros(3, 48, 64)
    blue[2] = 0.9
    return content, red + 0.05 * torch.rand(3, 48, 64, generator=generator), blue + 0.05 * torch.rand(3, 48, 64, generator=generator)


def objective_of(stylizer, content, style, picture):
    """The refinement objective of `picture` for one style at full size (the targets of the last level)."""
    terms = [(lambda scale: stylizer.refiner.style_targets(style, scale, 0), 1.0)]
    with torch.no_grad():
        return float(stylizer.refiner.objective(content[None], terms, None, 1.0)(picture[None]))


def test_refining_lowers_the_objective(stylizer, pictures):
    content, red, _ = pictures
    start = stylizer.stylize(content, [red])
    refined = stylizer.stylize(content, [red], refine=40)
    before, after = (objective_of(stylizer, content, red, x) for x in (start, refined))
    assert after < 0.75 * before
    assert refined.shape == start.shape and 0 <= refined.min() and refined.max() <= 1


def test_zero_steps_is_the_model_output_bit_for_bit(stylizer, pictures):
    content, red, _ = pictures
    assert torch.equal(stylizer.stylize(content, [red], refine=0), stylizer.stylize(content, [red]))


def test_alpha_zero_stays_the_reconstruction(stylizer, pictures):
    content, red, _ = pictures
    assert torch.equal(stylizer.stylize(content, [red], alpha=0.0, refine=5), stylizer.stylize(content, [red], alpha=0.0))


def test_the_same_seed_gives_the_same_picture(stylizer, pictures):
    content, red, blue = pictures
    first, second = (stylizer.stylize(content, [red, blue], weights=[0.3, 0.7], seed=5, refine=4) for _ in range(2))
    assert torch.equal(first, second)


def test_a_style_encoded_once_serves_a_batch(stylizer, pictures):
    content, red, _ = pictures
    style = stylizer.encode_style(red)
    stylizer.stylize(content, [style], refine=2)
    cached = dict(style.refine_targets)
    stylizer.stylize(content.flip(-1), [style], refine=2)
    assert cached and all(style.refine_targets[key] is targets for key, targets in cached.items())


def redness(image: torch.Tensor) -> float:
    return float(image[0].mean() - image[2].mean())


def test_blend_weights_route_the_style_targets(stylizer, pictures):
    content, red, blue = pictures
    only_red = stylizer.stylize(content, [red, blue], weights=[1.0, 0.0], refine=6)
    assert torch.allclose(only_red, stylizer.stylize(content, [red], refine=6), atol=1e-6)
    start = torch.full_like(content, 0.5)
    towards_red = stylizer.refine(content, start, [red, blue], weights=[0.9, 0.1], steps=10)
    towards_blue = stylizer.refine(content, start, [red, blue], weights=[0.1, 0.9], steps=10)
    assert redness(towards_red) > redness(start) > redness(towards_blue)


def test_masks_route_each_region_to_its_own_style(stylizer, pictures):
    content, red, blue = pictures
    left = torch.zeros(64, 80)
    left[:, :40] = 1
    start = torch.full_like(content, 0.5)
    refined = stylizer.refine(content, start, [red, blue], masks=[left, 1 - left], steps=10)
    gain = [redness(refined[..., half]) - redness(start[..., half]) for half in (slice(0, 40), slice(40, 80))]
    assert gain[0] > 0 > gain[1]


@pytest.mark.parametrize("alpha", [1.0, 0.4, 0.0])
@pytest.mark.parametrize("working_size", ["full", "smaller"])
def test_pixels_where_no_style_applies_stay_exactly_as_the_model_painted_them(pictures, alpha, working_size):
    settings = RefineSettings() if working_size == "full" else RefineSettings(max_pixels=40 * 50, min_coarse_side=8)
    refining = tiny_stylizer(refine=settings)
    content, red, _ = pictures
    left = torch.zeros(64, 80)
    left[:, :40] = 1
    for mask in (torch.zeros(64, 80), left):
        unrefined = refining.stylize(content, [red], alpha=alpha, masks=[mask])
        refined = refining.stylize(content, [red], alpha=alpha, masks=[mask], refine=4)
        assert torch.equal(refined[..., 40:], unrefined[..., 40:])  # black everywhere, or the right half
        inside = (refined[..., :40] - unrefined[..., :40]).abs().mean()
        assert inside > 0.01 if alpha > 0 and mask is left else inside == 0


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_an_all_white_mask_refines_as_no_mask(stylizer, pictures, alpha):
    content, red, _ = pictures
    picture = stylizer.stylize(content, [red], alpha=alpha)
    white = torch.ones(1, 1, 64, 80)

    def objective(weight):  # the style's share and the content's own share, as numbers or as maps
        own = 1.0 - alpha * weight if alpha < 1 else None
        terms = [(lambda scale: stylizer.refiner.style_targets(red, scale, 0), alpha * weight)]
        with torch.no_grad():
            return float(stylizer.refiner.objective(content[None], terms, own, 1.0)(picture[None]))

    assert objective(white) == pytest.approx(objective(1.0), rel=1e-5)  # a region of weight 1: the whole picture's statistics
    unmasked = stylizer.stylize(content, [red], alpha=alpha, refine=6)
    assert torch.equal(stylizer.stylize(content, [red], alpha=alpha, masks=[white[0, 0]], refine=6), unmasked)


def test_large_pictures_are_refined_at_the_working_size(pictures):
    small_cap = tiny_stylizer(refine=RefineSettings(max_pixels=48 * 60, min_coarse_side=8))
    content, red, _ = pictures
    start = small_cap.stylize(content, [red])
    seen = []
    original = small_cap.refiner.objective

    def spy(content_at_level, *args):
        seen.append(tuple(content_at_level.shape[-2:]))
        return original(content_at_level, *args)

    small_cap.refiner.objective = spy
    for steps in (4, 1):  # a budget of 1 buys one step at the working size
        seen.clear()
        refined = small_cap.refine(content, start, [red], steps=steps)
        assert refined.shape == start.shape and max(h * w for h, w in seen) <= 48 * 60
        assert not torch.equal(refined, start)


def test_a_budget_buys_steps_by_their_cost():
    settings = RefineSettings()
    assert plan(50, True, settings) == (7, 11)  # 7 at half size + 11 x 4 at full size = 51
    for budget in (1, 10, 25, 50, 100, 400):
        coarse, full = plan(budget, True, settings)
        assert full >= 1 and abs(coarse + 4 * full - budget) <= 4
    assert plan(50, False, settings) == (0, 12) and plan(1, False, settings) == (0, 1)  # no coarse level: 4 per step


@pytest.mark.parametrize("min_coarse_side, levels", [(8, [((32, 40), 5), ((64, 80), 4)]), (1000, [((64, 80), 5)])])
def test_full_size_steps_stop_at_relu4_1_after_a_coarse_level(pictures, min_coarse_side, levels):
    refiner_of = tiny_stylizer(refine=RefineSettings(min_coarse_side=min_coarse_side))
    content, red, _ = pictures
    start = refiner_of.stylize(content, [red])
    seen, progress = [], []
    original = refiner_of.refiner.objective

    def spy(content_at_level, terms, own, scale, depth=5, *rest):
        seen.append((tuple(content_at_level.shape[-2:]), depth))
        return original(content_at_level, terms, own, scale, depth, *rest)

    refiner_of.refiner.objective = spy
    refiner_of.refine(content, start, [red], steps=50, progress=lambda done, total: progress.append((done, total)))
    assert seen == levels
    coarse, full = plan(50, min_coarse_side == 8, refiner_of.refiner.settings)
    assert progress[-1] == (coarse + full, coarse + full)


def test_a_refined_picture_comes_back_where_the_unrefined_one_does(stylizer, pictures):
    content, red, _ = pictures
    assert stylizer.stylize(content, [red], refine=2).device == stylizer.stylize(content, [red]).device
    picture = stylizer.stylize(content, [red])
    assert stylizer.refine(content, picture, [red], steps=2).device == picture.device


def test_negative_steps_are_refused(stylizer, pictures):
    content, red, _ = pictures
    with pytest.raises(BadInputError, match="refine"):
        stylizer.stylize(content, [red], refine=-1)


def working_size_stylizer(working_size: str) -> Stylizer:
    """The tiny model refining at full size, or at a working size below its 64x80 pictures (its change carried up)."""
    return tiny_stylizer(refine=None if working_size == "full" else RefineSettings(max_pixels=40 * 50, min_coarse_side=8))


@pytest.mark.parametrize("working_size", ["full", "smaller"])
@pytest.mark.parametrize("use_flow", [False, True])
def test_a_still_clip_stays_exactly_still_and_a_change_is_repainted(pictures, use_flow, working_size):
    if use_flow:
        pytest.importorskip("cv2")
    stylizer = working_size_stylizer(working_size)
    content, red, _ = pictures
    frames = content.expand(4, -1, -1, -1).clone()
    frames[3, :, 8:24, 8:24] = 1.0  # the last frame: a white square appears
    style = stylizer.encode_style(red)
    refiner = FrameRefiner(stylizer, style, steps=3, threshold=0.015, use_flow=use_flow)
    # the model's picture of each frame: the frame itself, as a model's picture shows the square (the tiny random
    # model's is flat, so the square would reach the start only through its photo detail, which the blur sets)
    first, second = refiner(frames[:2], frames[:2]), refiner(frames[2:], frames[2:])
    outputs = torch.cat([first, second])
    assert torch.equal(outputs[1], outputs[0]) and torch.equal(outputs[2], outputs[0])  # chunks fed in order
    changed = (outputs[3] - outputs[2]).abs().mean(0)
    assert changed[8:24, 8:24].mean() > 0.05
    assert torch.equal(outputs[3][:, 40:, 40:], outputs[2][:, 40:, 40:])  # far from the square: still


def test_a_pan_refined_below_full_size_follows_the_motion_as_steadily_as_at_full_size(pictures):
    pytest.importorskip("cv2")
    _, red, _ = pictures
    scene = fn.gaussian_blur(torch.rand(1, 3, 72, 96, generator=torch.Generator().manual_seed(5)), 3.0)[0]
    scene = (scene - scene.min()) / (scene.max() - scene.min())
    frames = torch.stack([scene[:, 4:68, 4 + 2 * t : 84 + 2 * t] for t in range(3)])  # 2 px to the left per frame
    drift = {}
    for working_size in ("full", "smaller"):
        stylizer = working_size_stylizer(working_size)
        style = stylizer.encode_style(red)
        refiner = FrameRefiner(stylizer, style, steps=3, threshold=0.015)
        outputs = torch.cat([refiner(frame[None], stylizer.stylize(frame, [style])[None]) for frame in frames])
        # frame t + 1 at x shows what frame t showed at x + 2 (inside: what enters at the border is painted anew)
        drift[working_size] = max(float((outputs[t + 1, :, 8:-8, 8:-8] - outputs[t, :, 8:-8, 10:-6]).abs().mean()) for t in range(2))
    assert drift["smaller"] < 1.5 * drift["full"]


def test_refine_checks_alpha_like_stylize(stylizer, pictures):
    content, red, _ = pictures
    with pytest.raises(BadInputError, match="alpha"):
        stylizer.refine(content, content, [red], steps=1, alpha=1.5)
