"""The fast kernels (kernels.py) and the layers that pick them (layers.py) equal the plain PyTorch operations."""

import pytest
import torch

from adaattn_cli import kernels


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 3, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_reflect_equals_padded_conv(shape, channels_last):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    fast = kernels.conv3x3_reflect(inputs, weight, bias)
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
    fused = kernels.upsample_conv3x3_reflect(inputs, weight, bias)
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
    phases = kernels.upsample_conv3x3_phases(x, weight, bias).relu_()
    interleaved = kernels.interleave_phases(phases)
    plain = torch.nn.functional.conv2d(torch.nn.functional.pad(interleaved, (1, 1, 1, 1), mode="reflect"), last_weight, last_bias)
    fused = kernels.phases_conv3x3_reflect(phases, last_weight, last_bias)
    assert fused.shape == plain.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    assert torch.allclose(fused, plain, atol=1e-11)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 2), (1, 4, 1, 3), (1, 3, 1, 1), (1, 2, 8, 6), (1, 3, 11, 13)])
@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_conv_equals_the_direct_conv(monkeypatch, shape, reflect, channels_last, tile):
    """F(2x2, 3x3) and F(4x4, 3x3) are exact in exact arithmetic: fp64 agrees to rounding, sides that are not whole
    tiles and 1-pixel sides, one or many bands."""
    if reflect and min(shape[2:]) < 2:
        pytest.skip("reflection padding needs two pixels")
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect" if reflect else "constant")
    plain = torch.nn.functional.conv2d(padded, weight, bias)
    kernel = kernels.winograd_kernel(weight, tile)
    for budget in (kernels.WINOGRAD_BAND_BUDGET, 1):  # one band; one tile row per band
        monkeypatch.setattr(kernels, "WINOGRAD_BAND_BUDGET", budget)
        out = kernels.winograd_conv3x3(x, kernel, bias, reflect=reflect)
        assert out.shape == plain.shape and torch.allclose(out, plain, atol=1e-12)
    assert torch.allclose(kernels.winograd_conv3x3(x, kernel, None, reflect=reflect), plain - bias[:, None, None], atol=1e-12)


def test_wide_bf16_layers_run_as_winograd_and_follow_their_weights():
    """Conv3x3 takes the Winograd path for bf16 (F(2x2), from 256 channels) and fp32 (F(4x4), from 128) CPU
    inference of wide layers; it stays within bf16 tolerance of the fp32 conv, and its cached kernel follows an
    in-place weight update."""
    from adaattn_cli.layers import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(256, 256).bfloat16()
    torch.nn.init.normal_(conv.weight, 0.0, (256 * 9) ** -0.5)
    x = torch.randn(1, 256, 10, 12).relu_().bfloat16().contiguous(memory_format=torch.channels_last)

    def check():
        exact = torch.nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        with torch.no_grad():
            assert kernels.winograd_tile(x, conv.weight) == 2
            out = conv(x)
        relative = (out.double() - exact).norm() / exact.norm()
        assert relative < 0.01  # measured ~0.004, ~2.5x the direct bf16 conv's rounding
        return out

    first = check()
    with torch.no_grad():  # fp32 too; narrow layers and fp64: the direct conv
        assert kernels.winograd_tile(x.float(), conv.weight) == kernels.winograd_tile(x.float(), conv.weight[:128]) == 4
        assert not kernels.winograd_tile(x, conv.weight[:128]) and not kernels.winograd_tile(x.float(), conv.weight[:64])
        assert not kernels.winograd_tile(x.double(), conv.weight)
    assert not kernels.winograd_tile(x, conv.weight.detach().requires_grad_(True))  # a trained layer: the direct conv
    with torch.no_grad():
        conv.weight.mul_(-1)
    assert torch.allclose(check().float(), -first.float() + 2 * conv.bias.float()[:, None, None], atol=0.05)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 1, 1), (1, 2, 8, 6)])
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_conv_gives_the_input_gradient_of_the_direct_conv(shape, tile):
    """The frozen encoder's Winograd pass under autograd (--refine): same output and same input gradient as the
    direct zero-padded conv, in fp64 to rounding; the weights take no gradient."""
    torch.manual_seed(0)
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(shape[0], 6, *shape[2:], dtype=torch.float64)
    plain = torch.nn.functional.conv2d(x, weight, bias, padding=1)
    (plain_grad,) = torch.autograd.grad(plain, x, upstream)
    back_kernel = kernels.winograd_kernel(kernels.flipped_transposed(weight), tile)
    out = kernels.WinogradConv3x3.apply(x, kernels.winograd_kernel(weight, tile), back_kernel, bias)
    (grad,) = torch.autograd.grad(out, x, upstream)
    assert torch.allclose(out, plain, atol=1e-12) and torch.allclose(grad, plain_grad, atol=1e-12)


def test_the_frozen_encoders_wide_layers_run_as_winograd_under_autograd(monkeypatch):
    """A frozen zero-padded layer takes the Winograd path with autograd on (bf16, wide) and its input gradient
    stays within bf16 tolerance of the fp64 one; a layer whose weights train keeps the direct conv."""
    from adaattn_cli.layers import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(256, 256).bfloat16().requires_grad_(False)
    torch.nn.init.normal_(conv.weight, 0.0, (256 * 9) ** -0.5)
    x = torch.randn(1, 256, 10, 12).relu_().bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    upstream = torch.randn(1, 256, 10, 12).double()
    called = []
    original = kernels.WinogradConv3x3.apply
    monkeypatch.setattr(kernels.WinogradConv3x3, "apply", lambda *a: called.append(1) or original(*a))
    out = torch.relu_(conv(x))  # in place, as the encoder does
    (grad,) = torch.autograd.grad(out, x, upstream.bfloat16())
    assert called
    x64 = x.detach().double().requires_grad_(True)
    through_relu = upstream * (out.detach() > 0)  # the ReLU's mask as the bf16 pass drew it
    (exact,) = torch.autograd.grad(torch.nn.functional.conv2d(x64, conv.weight.double(), None, padding=1), x64, through_relu)
    assert (grad.double() - exact).norm() / exact.norm() < 0.01
    assert not kernels.winograd_tile(x, conv.weight.detach().requires_grad_(True))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_a_split_conv3x3_adds_up_to_the_conv_of_the_concatenation(monkeypatch, padding_mode):
    """The decoder's skip: the layer applied to two parts of its input channels (Winograd kernel sliced too)."""
    from adaattn_cli.layers import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(7, 5, padding_mode).double()
    first, second = torch.randn(2, 3, 6, 5, dtype=torch.float64), torch.randn(2, 4, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        whole = conv(torch.cat([first, second], dim=1))
        for winograd in (0, 2, 4):
            monkeypatch.setattr(kernels, "winograd_tile", lambda x, weight: winograd)
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
    assert torch.equal(kernels.max_pool2x2(x), expected)
    x.requires_grad_(True)  # with autograd it is max_pool2d itself (its backward keeps the indices)
    assert torch.equal(kernels.max_pool2x2(x), expected)
