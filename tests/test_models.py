import pytest
import torch
from helpers import exact_stylizer

from adaattn_cli.errors import BadInputError
from adaattn_cli.methods import list_methods
from adaattn_cli.mixing import mix_terms
from adaattn_cli.models import build_model, count_parameters

# The official models' trainable parameters, counted from their layer shapes: AdaAttN decoder + transformer + adaattn_3;
# AdaIN decoder; SANet transform + decoder; video: module + 2.33 M decoder.
OFFICIAL_PARAMETERS = {"adaattn": 13_629_891, "adain": 3_505_219, "sanet": 4_461_056 + 3_505_219, "adaattn-video": 468_096 + 2_325_315}


@pytest.mark.parametrize("method", list_methods())
def test_parameter_counts_match_the_official_models(models, method):
    assert count_parameters(models[method]) == OFFICIAL_PARAMETERS[method]


@pytest.mark.parametrize("method", list_methods())
def test_forward_shape(models, method, images):
    out = models[method](images["content"][None], images["style"][None])
    assert out.shape == (1, 3, 64, 80)


def test_unknown_method(encoder):
    with pytest.raises(ValueError, match="unknown method"):
        build_model("wct", encoder)


@pytest.mark.parametrize("method", ["adaattn", "adaattn-video", "sanet"])
def test_chunked_model_equals_full(models, method, images):
    model = models[method]
    with torch.no_grad():
        full = model(images["content"][None], images["style"][None])
        for block in model.blocks:
            block.logit_budget = 7 * 48
        chunked = model(images["content"][None], images["style"][None])
        for block in model.blocks:
            block.logit_budget = None
    assert torch.allclose(full, chunked, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", list_methods())
def test_alpha_one_equals_plain_model(models, method, images):
    stylizer = exact_stylizer(models[method])
    with torch.no_grad():
        plain = models[method](images["content"][None], images["style"][None]).clamp(0, 1)[0]
    assert torch.equal(stylizer.stylize(images["content"], [images["style"]], alpha=1.0, match_color=False), plain)


def test_alpha_zero_is_the_reconstruction_of_the_content(models, images):
    stylizer = exact_stylizer(models["adaattn"])
    with torch.no_grad():
        reconstruction = models["adaattn"](images["content"][None], images["content"][None]).clamp(0, 1)[0]
    out = stylizer.stylize(images["content"], [images["style"]], alpha=0.0)
    assert torch.allclose(out, reconstruction, atol=1e-6)


def test_alpha_interpolates(models, images):
    stylizer = exact_stylizer(models["adain"])
    full, none, half = (stylizer.stylize(images["content"], [images["style"]], alpha=a) for a in (1.0, 0.0, 0.5))
    assert (half - full).abs().mean() < (none - full).abs().mean()


@pytest.mark.parametrize("method", list_methods())
def test_blend_with_one_hot_weights_equals_single_style(models, method, images):
    stylizer = exact_stylizer(models[method])
    single = stylizer.stylize(images["content"], [images["style"]])
    blend = stylizer.stylize(images["content"], [images["style"], images["style2"]], weights=[1.0, 0.0])
    assert torch.equal(single, blend)


def test_blend_weights_are_normalised(models, images):
    stylizer = exact_stylizer(models["adaattn"])
    a = stylizer.stylize(images["content"], [images["style"], images["style2"]], weights=[3, 1])
    b = stylizer.stylize(images["content"], [images["style"], images["style2"]], weights=[0.75, 0.25])
    assert torch.allclose(a, b, atol=1e-6)


def test_masks_route_regions_to_their_style(models, images):
    """Left half of the content takes style 1 only, right half style 2 only (checked on the block outputs)."""
    model = models["adaattn"]
    stylizer = exact_stylizer(model)
    content = images["content"][None]
    left = torch.zeros(64, 80)
    left[:, :32] = 1  # 32 = a multiple of 16: block grids split exactly at every scale
    styles = [stylizer.encode_style(images["style"]), stylizer.encode_style(images["style2"])]
    with torch.no_grad():
        encoded = model.encode(content)
        mix, self_weight, _ = mix_terms(styles, [0.5, 0.5], 1.0, [left, 1 - left], content.shape[-2:], "cpu")
        assert self_weight is None  # the masks cover everything: no content-as-style term
        mixed = model.transfer_mixed(encoded, [(style.memory, weight) for style, weight in mix])
        first, second = model.transfer(encoded, styles[0].memory), model.transfer(encoded, styles[1].memory)
    for out, a, b in zip(mixed, first, second):
        half = out.shape[-1] * 32 // 80
        assert torch.allclose(out[..., :half], a[..., :half], atol=1e-5)
        assert torch.allclose(out[..., half:], b[..., half:], atol=1e-5)


def test_unmasked_region_keeps_the_content_statistics(models, images):
    stylizer = exact_stylizer(models["adain"])
    mask = torch.zeros(64, 80)
    out = stylizer.stylize(images["content"], [images["style"]], masks=[mask])
    assert torch.allclose(out, stylizer.stylize(images["content"], [images["style"]], alpha=0.0), atol=1e-6)


def test_style_mask_limits_the_attended_positions(models, images):
    stylizer = exact_stylizer(models["adaattn"])
    mask = torch.zeros(48, 64, dtype=torch.bool)
    mask[:, :32] = True
    full = stylizer.encode_style(images["style"])
    half = stylizer.encode_style(images["style"], mask=mask)
    assert half.memory[0].value.shape[1] == full.memory[0].value.shape[1] // 2
    with pytest.raises(BadInputError, match="selects no style pixels"):
        stylizer.encode_style(images["style"], mask=torch.zeros(48, 64))


def test_same_seed_same_output_other_seed_other_sampling(encoder, images):
    torch.manual_seed(4)
    model = build_model("adaattn", encoder, max_style_positions=(20, 20, 20)).eval()
    stylizer = exact_stylizer(model, style_positions=20)
    a, b = (stylizer.stylize(images["content"], [images["style"]], seed=7) for _ in range(2))
    c = stylizer.stylize(images["content"], [images["style"]], seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the sampling uses a private generator: the global RNG is untouched
    state = torch.get_rng_state()
    stylizer.encode_style(images["style"], seed=9)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("method", list_methods())
@pytest.mark.parametrize("size", [(37, 53), (33, 100)])
def test_odd_sizes_come_back_exactly(models, method, size):
    stylizer = exact_stylizer(models[method])
    out = stylizer.stylize(torch.rand(3, *size), [torch.rand(3, 41, 39)])
    assert out.shape == (3, *size)
    assert out.min() >= 0 and out.max() <= 1


def test_batch_of_contents_shares_one_style(models, images):
    stylizer = exact_stylizer(models["adaattn"])
    style = stylizer.encode_style(images["style"])
    batch = torch.stack([images["content"], images["content"].flip(-1)])
    out = stylizer.stylize(batch, [style])
    assert out.shape == (2, 3, 64, 80)
    assert torch.allclose(out[0], stylizer.stylize(images["content"], [style]), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"weights": [1.0, 2.0, 3.0]}, "3 weights for 2 styles"),
        ({"weights": [-1.0, 1.0]}, "non-negative"),
        ({"weights": [float("nan"), 1.0]}, "finite"),
        ({"weights": [float("inf"), 1.0]}, "finite"),
        ({"masks": [torch.ones(10, 10), None]}, "mask is 10x10 but"),
        ({"masks": [torch.full((64, 80), float("nan")), None]}, "mask values"),
        ({"masks": [torch.full((64, 80), 255.0), None]}, "mask values"),
    ],
)
def test_bad_arguments_are_clear(models, images, kwargs, message):
    styles = [images["style"], images["style2"]]
    with pytest.raises(BadInputError, match=message):
        exact_stylizer(models["adain"]).stylize(images["content"], styles, **kwargs)
    with pytest.raises(BadInputError, match=message):  # refine takes the same mix
        exact_stylizer(models["adain"]).refine(images["content"], images["content"], styles, steps=1, **kwargs)


def test_non_finite_pixels_are_refused(models, images):
    stylizer = exact_stylizer(models["adain"])
    content = images["content"].clone()
    content[0, 5, 5] = float("nan")
    with pytest.raises(BadInputError, match="content image holds NaN"):
        stylizer.stylize(content, [images["style"]])
    with pytest.raises(BadInputError, match="style image holds NaN"):
        stylizer.stylize(images["style"], [content])


def test_tiny_images_are_rejected(models):
    stylizer = exact_stylizer(models["adain"])
    with pytest.raises(BadInputError, match="1x1 pixels; each side must be at least 32"):
        stylizer.stylize(torch.rand(3, 1, 1), [torch.rand(3, 64, 64)])
    with pytest.raises(BadInputError, match="style image is 20x64"):
        stylizer.stylize(torch.rand(3, 64, 64), [torch.rand(3, 64, 20)])


def test_preserve_color_keeps_the_content_palette(models, images):
    stylizer = exact_stylizer(models["adain"])
    red_style = images["style"] * torch.tensor([1.0, 0.1, 0.1]).view(3, 1, 1)
    plain = stylizer.stylize(images["content"], [red_style])
    kept = stylizer.stylize(images["content"], [red_style], preserve_color=True)
    assert not torch.allclose(plain, kept)


def test_the_picture_takes_the_paintings_mean_colour_unless_asked_not_to(models, images):
    stylizer = exact_stylizer(models["adaattn"])
    style = images["style"] * 0.5 + torch.tensor([0.4, 0.2, 0.1]).view(3, 1, 1)  # a warm painting, inside [0, 1]
    own = stylizer.stylize(images["content"], [style], match_color=False)
    matched = stylizer.stylize(images["content"], [style])
    shift = matched - own
    unclipped = (own + shift.mean(dim=(1, 2), keepdim=True) - matched).abs().amax(dim=0) < 1e-6
    assert unclipped.float().mean() > 0.5  # a colour shift: strokes and edges are kept where nothing clips
    assert (matched.mean(dim=(1, 2)) - style.mean(dim=(1, 2))).abs().max() < 0.05
    assert (own.mean(dim=(1, 2)) - style.mean(dim=(1, 2))).abs().max() > 0.05  # the tiny model's own colour is off
    kept = stylizer.stylize(images["content"], [style], alpha=0.0)
    assert torch.equal(kept, stylizer.stylize(images["content"], [style], alpha=0.0, match_color=False))  # no style: no shift


def test_a_zero_weight_style_leaves_its_mask_to_the_content(models, images):
    """Regions only a weight-0 style's mask covers keep the content's statistics (they used to come out black)."""
    stylizer = exact_stylizer(models["adain"])
    left = torch.zeros(64, 80)
    left[:, :32] = 1
    out = stylizer.stylize(images["content"], [images["style"], images["style2"]], weights=[1.0, 0.0], masks=[left, 1 - left])
    reference = stylizer.stylize(images["content"], [images["style"]], masks=[left])
    assert torch.allclose(out, reference, atol=1e-6)
