import pytest
import torch

from adaattn_cli import functional as fn


def test_mean_std_matches_definition():
    x = torch.randn(2, 3, 5, 7)
    mean, std = fn.mean_std(x)
    flat = x.flatten(2)
    assert torch.allclose(mean.flatten(), flat.mean(2).flatten())
    assert torch.allclose(std.flatten(), (flat.var(2, unbiased=True) + 1e-5).sqrt().flatten())


def test_mean_std_is_finite_for_dead_channels():
    mean, std = fn.mean_std(torch.zeros(1, 4, 3, 3))
    assert torch.isfinite(fn.mean_variance_norm(torch.zeros(1, 4, 3, 3))).all()
    assert (std > 0).all() and (mean == 0).all()


def test_adain_formula():
    content, style = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 5, 3) * 3 + 1
    cm, cs = fn.mean_std(content)
    sm, ss = fn.mean_std(style)
    expected = ss * (content - cm) / cs + sm
    assert torch.allclose(fn.adain(content, style), expected, atol=1e-6)
    out_mean, out_std = fn.mean_std(fn.adain(content, style))
    assert torch.allclose(out_mean, sm, atol=1e-5) and torch.allclose(out_std, ss, atol=1e-3)


@pytest.mark.parametrize("mode", ["softmax", "cosine"])
def test_chunked_attention_equals_full(mode):
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 301, 16, generator=generator), torch.randn(2, 16, 97, generator=generator)
    value = torch.randn(2, 97, 8, generator=generator)
    full = fn.attention_mean_std(query, key, value, mode=mode, logit_budget=None)
    for budget in (1, 97 * 2 * 7, 97 * 2 * 64):
        chunked = fn.attention_mean_std(query, key, value, mode=mode, logit_budget=budget)
        for a, b in zip(full, chunked):
            # fp32 rounding only: one-row chunks take another BLAS kernel (torch 2.14: 3e-5 on the std, which
            # amplifies the rounding of E[V^2] - M^2)
            assert torch.allclose(a, b, atol=1e-4, rtol=0)
    plain = fn.attention_output(query, key, value, logit_budget=None)
    assert torch.allclose(plain, fn.attention_output(query, key, value, logit_budget=500), atol=1e-5)


def test_attention_moments_against_explicit_formula():
    query, key, value = torch.randn(1, 5, 4), torch.randn(1, 4, 6), torch.randn(1, 6, 3)
    weights = torch.softmax(query @ key, dim=-1)
    mean, std = fn.attention_mean_std(query, key, value)
    assert torch.allclose(mean, weights @ value, atol=1e-6)
    variance = weights @ value**2 - (weights @ value) ** 2
    assert torch.allclose(std, variance.clamp_min(fn.VAR_FLOOR).sqrt(), atol=1e-5)


def test_cosine_weights_are_normalised_and_nonnegative():
    weights = fn.attention_weights(torch.randn(1, 7, 5), torch.randn(1, 5, 9), "cosine")
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(1, 7), atol=1e-4)


def test_std_is_finite_where_variance_vanishes():
    # identical values at every style position: E[V^2] == M^2 exactly, sqrt(0) would give inf gradients
    query = torch.randn(1, 4, 3, requires_grad=True)
    key = torch.randn(1, 3, 6)
    value = torch.ones(1, 6, 2) * 0.7
    mean, std = fn.attention_mean_std(query, key, value)
    assert torch.isfinite(std).all() and (std > 0).all()
    (mean.sum() + std.sum()).backward()
    assert torch.isfinite(query.grad).all()


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown attention mode"):
        fn.attention_weights(torch.randn(1, 2, 2), torch.randn(1, 2, 2), "dot")


def test_coral_matches_colour_statistics():
    generator = torch.Generator().manual_seed(3)
    source = torch.rand(3, 32, 32, generator=generator) * 0.5
    target = torch.rand(3, 16, 16, generator=generator) * torch.tensor([0.2, 0.6, 0.3]).view(3, 1, 1) + 0.2
    out = fn.coral(source, target)
    assert torch.allclose(out.reshape(3, -1).mean(1), target.reshape(3, -1).mean(1), atol=0.02)


def test_colour_transform_gives_the_target_mean_and_covariance():
    torch.manual_seed(0)
    source = torch.rand(3, 20, 30, dtype=torch.float64) * 0.5
    target = torch.rand(3, 10, 10, dtype=torch.float64).pow(2)
    matrix, offset = fn.colour_transform(source, target)
    mapped = matrix @ source.reshape(3, -1) + offset
    assert torch.allclose(mapped.mean(1), target.reshape(3, -1).mean(1), atol=1e-9)
    assert torch.allclose(torch.cov(mapped), torch.cov(target.reshape(3, -1)), atol=1e-4)  # the 1e-5 ridge


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_gaussian_blur_is_a_normalised_reflected_gaussian(sigma):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 31, dtype=torch.float64)
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    padded = torch.nn.functional.pad(images, (radius,) * 4, mode="reflect")
    expected = torch.nn.functional.conv2d(padded, kernel.expand(3, 1, -1, -1), groups=3)
    assert torch.allclose(fn.gaussian_blur(images, sigma), expected, atol=1e-12)
    flat = torch.full((1, 3, 40, 50), 0.3, dtype=torch.float64)
    assert torch.allclose(fn.gaussian_blur(flat, 9.0), flat, atol=1e-12)  # reduced-resolution path keeps constants


def test_recolouring_moves_the_colour_field_and_keeps_the_detail():
    torch.manual_seed(0)
    images = (0.4 + 0.1 * torch.rand(1, 3, 32, 32, dtype=torch.float64))
    identity, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    assert torch.allclose(fn.recolour_low_frequencies(images, identity, zero, 4.0), images, atol=1e-12)
    matrix, offset = 0.5 * identity, torch.tensor([[0.1], [0.2], [0.3]], dtype=torch.float64)
    out = fn.recolour_low_frequencies(images, matrix, offset, 4.0)
    # the mean colour follows the map, while the detail (image minus its blur) is unchanged
    assert torch.allclose(out.mean((2, 3)), (matrix @ images.mean((2, 3)).T + offset).T, atol=2e-3)
    detail = lambda x: x - fn.gaussian_blur(x, 4.0)  # noqa: E731
    assert (detail(out) - detail(images)).abs().max() < 0.02


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 3, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_reflect_equals_padded_conv(shape, channels_last):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    fast = fn.conv3x3_reflect(inputs, weight, bias)
    plain = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias)
    assert torch.allclose(fast, plain, atol=1e-12)
    (grad_fast,) = torch.autograd.grad(fast.sum(), x)
    (grad_plain,) = torch.autograd.grad(plain.sum(), x)
    assert torch.allclose(grad_fast, grad_plain, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 1, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_conv3x3_reflect_equals_upsample_then_padded_conv(shape, channels_last):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, shape[1], 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64)
    inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    fused = fn.upsample_conv3x3_reflect(inputs, weight, bias)
    upsampled = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    plain = torch.nn.functional.conv2d(torch.nn.functional.pad(upsampled, (1, 1, 1, 1), mode="reflect"), weight, bias)
    assert fused.shape == plain.shape and torch.allclose(fused, plain, atol=1e-12)
    assert fused.is_contiguous(memory_format=torch.channels_last) == (channels_last and shape[2] * shape[3] > 1)
    grads_fused = torch.autograd.grad(fused.square().sum(), (x, weight))
    grads_plain = torch.autograd.grad(plain.square().sum(), (x, weight))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads_fused, grads_plain))


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 1, 3), (1, 3, 1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_conv_of_the_phases_equals_the_conv_of_the_interleaved_map(shape, channels_last):
    """The decoder's last conv reads the upsampling conv's phases; borders (reflection) included, any side."""
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    last_weight, last_bias = torch.randn(3, 6, 3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    phases = fn.upsample_conv3x3_phases(x, weight, bias).relu_()
    interleaved = fn.interleave_phases(phases)
    plain = torch.nn.functional.conv2d(torch.nn.functional.pad(interleaved, (1, 1, 1, 1), mode="reflect"), last_weight, last_bias)
    fused = fn.phases_conv3x3_reflect(phases, last_weight, last_bias)
    assert fused.shape == plain.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    assert torch.allclose(fused, plain, atol=1e-11)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 1, 3), (1, 3, 1, 1), (1, 2, 8, 6)])
@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_winograd_conv_equals_the_direct_conv(monkeypatch, shape, reflect, channels_last):
    """F(2x2, 3x3) is exact in exact arithmetic: fp64 agrees to rounding, odd and 1-pixel sides, one or many bands."""
    if reflect and min(shape[2:]) < 2:
        pytest.skip("reflection padding needs two pixels")
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect" if reflect else "constant")
    plain = torch.nn.functional.conv2d(padded, weight, bias)
    kernel = fn.winograd_kernel(weight)
    for budget in (fn.WINOGRAD_BAND_BUDGET, 1):  # one band; one tile row per band
        monkeypatch.setattr(fn, "WINOGRAD_BAND_BUDGET", budget)
        out = fn.winograd_conv3x3(x, kernel, bias, reflect=reflect)
        assert out.shape == plain.shape and torch.allclose(out, plain, atol=1e-12)
    assert torch.allclose(fn.winograd_conv3x3(x, kernel, None, reflect=reflect), plain - bias[:, None, None], atol=1e-12)


def test_wide_bf16_layers_run_as_winograd_and_follow_their_weights():
    """Conv3x3 takes the Winograd path only for bf16 CPU inference of wide layers; it stays within bf16
    tolerance of the fp32 conv, and its cached kernel follows an in-place weight update."""
    from adaattn_cli.encoders import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(256, 256).bfloat16()
    torch.nn.init.normal_(conv.weight, 0.0, (256 * 9) ** -0.5)
    x = torch.randn(1, 256, 10, 12).relu_().bfloat16().contiguous(memory_format=torch.channels_last)

    def check():
        exact = torch.nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        with torch.no_grad():
            assert fn.winograd_pays(x, conv.weight)
            out = conv(x)
        relative = (out.double() - exact).norm() / exact.norm()
        assert relative < 0.01  # measured ~0.004, ~2.5x the direct bf16 conv's rounding
        return out

    first = check()
    with torch.no_grad():  # fp32 (exact path), narrow layers: the direct conv
        assert not fn.winograd_pays(x.float(), conv.weight) and not fn.winograd_pays(x, conv.weight[:128])
    assert not fn.winograd_pays(x, conv.weight)  # autograd on: training keeps the direct conv
    with torch.no_grad():
        conv.weight.mul_(-1)
    assert torch.allclose(check().float(), -first.float() + 2 * conv.bias.float()[:, None, None], atol=0.05)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_a_split_conv3x3_adds_up_to_the_conv_of_the_concatenation(monkeypatch, padding_mode):
    """The decoder's skip: the layer applied to two parts of its input channels (Winograd kernel sliced too)."""
    from adaattn_cli.encoders import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(7, 5, padding_mode).double()
    first, second = torch.randn(2, 3, 6, 5, dtype=torch.float64), torch.randn(2, 4, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        whole = conv(torch.cat([first, second], dim=1))
        for winograd in (False, True):
            monkeypatch.setattr(fn, "winograd_pays", lambda x, weight: winograd)
            split = conv(first, slice(0, 3)) + conv(second, slice(3, None))
            assert torch.allclose(split, whole, atol=1e-12)


def test_decoder_fusions_equal_the_plain_layer_sequence():
    """The decoder fuses "up" and "skip" into the next conv; the result must equal upsample, concat, pad, conv."""
    from adaattn_cli.models import DECODERS, Decoder

    torch.manual_seed(0)
    decoder = Decoder(DECODERS["relu4_1+skip3"], in_channels=16, skip_channels=8, width_divisor=16).double()
    x, skip = torch.randn(1, 16, 3, 5, dtype=torch.float64), torch.randn(1, 8, 6, 10, dtype=torch.float64)
    plain, convs = x, iter(decoder.convs)
    for item in decoder.row:
        if item == "up":
            plain = torch.nn.functional.interpolate(plain, scale_factor=2.0, mode="nearest")
        elif item == "skip":
            plain = torch.cat([plain, skip], dim=1)
        else:
            conv = next(convs)
            plain = torch.nn.functional.conv2d(torch.nn.functional.pad(plain, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias)
            plain = plain if item == 3 else torch.relu(plain)
    assert torch.allclose(decoder(x, skip=skip), plain, atol=1e-10)
    with torch.no_grad():  # inference also fuses the last conv into the last upsampling
        assert torch.allclose(decoder(x, skip=skip), plain, atol=1e-10)


@pytest.mark.parametrize("shape", [(2, 5, 8, 6), (1, 4, 7, 9), (1, 3, 1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2x2_equals_ceil_mode_max_pool(shape, dtype, channels_last):
    x = torch.randn(shape).relu().to(dtype)  # the encoder pools ReLU outputs (zeros included: ties)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True)
    assert torch.equal(fn.max_pool2x2(x), expected)
    x.requires_grad_(True)  # with autograd it is max_pool2d itself (its backward keeps the indices)
    assert torch.equal(fn.max_pool2x2(x), expected)


def test_folded_query_attention_equals_the_projected_query():
    """At inference AdaAttN moves its query projection into the style's keys: same block output, and the
    fold follows the weights when they change."""
    from adaattn_cli.attention import AdaAttN

    torch.manual_seed(0)
    block = AdaAttN(value_channels=6, key_channels=10, max_style_positions=None).double()
    block.matmul_dtype = torch.float64  # so that the two are compared to fp64 rounding
    for conv in (block.query, block.key, block.value):
        torch.nn.init.normal_(conv.weight, 0.0, 0.3)
        torch.nn.init.normal_(conv.bias, 0.0, 1.0)
    content, content_key = torch.randn(2, 6, 5, 7, dtype=torch.float64), torch.randn(2, 10, 5, 7, dtype=torch.float64)
    style, style_key = torch.randn(1, 6, 4, 3, dtype=torch.float64), torch.randn(1, 10, 4, 3, dtype=torch.float64)

    def outputs():
        projected = block(content, content_key, block.memorize(style, style_key))  # grad enabled: no fold
        with torch.no_grad():
            memory = block.memorize(style, style_key)
            folded = block(content, content_key, memory)
        assert memory.logit_bias is not None and projected.requires_grad
        return projected.detach(), folded

    projected, folded = outputs()
    assert torch.allclose(folded, projected, atol=1e-10)
    with torch.no_grad():
        block.query.weight.mul_(2)  # an optimiser step or a load_state_dict
        block.key.bias.add_(1)
    projected_after, folded_after = outputs()
    assert torch.allclose(folded_after, projected_after, atol=1e-10) and not torch.allclose(projected_after, projected)
    with torch.inference_mode():  # weights made in inference mode (no version counter) fold too
        inference_block = AdaAttN(value_channels=6, key_channels=10, max_style_positions=None).double()
        inference_block.load_state_dict(block.state_dict())
        inference_block.matmul_dtype = torch.float64
        assert inference_block.query.weight.is_inference()
        assert torch.allclose(inference_block(content, content_key, inference_block.memorize(style, style_key)), folded_after, atol=1e-10)


def test_a_logit_bias_needs_softmax_attention():
    query, key, value = torch.randn(1, 3, 4), torch.randn(1, 4, 5), torch.randn(1, 5, 2)
    with pytest.raises(ValueError, match="softmax"):
        fn.attention_mean_std(query, key, value, mode="cosine", logit_bias=torch.zeros(1, 1, 5))
