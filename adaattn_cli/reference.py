"""Reference AdaAttN forward (the official formulation in plain fp32), for the tests and the benches.

Full n x n attention matrices (kept alongside their softmax copy, as the official code does), V and V^2
multiplied separately, std = sqrt(relu(E[V^2] - M^2)), NCHW tensors, style features computed per call.
It reuses the model's encoder and decoder weights, with its own maths everywhere (the official VGG
nn.Sequential order with nn.MaxPool2d, nn.ReflectionPad2d + Conv2d decoder), so it checks ours
(tests/test_fast_paths.py) and is the baseline of bench/stylize_speed.py; it lives in the package so that
both import it as adaattn_cli.reference.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


def plain_copy(model):
    """A copy of `model` in fp32 with contiguous (NCHW) weights: nothing of the fast path."""
    return copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()


def _plain_conv(layer, x: torch.Tensor) -> torch.Tensor:
    """The layer's 3x3 conv as the official code computes it (its padding, a direct conv): the layer's own forward
    runs Winograd."""
    if layer.padding_mode == "reflect":
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), layer.weight, layer.bias)
    return F.conv2d(x, layer.weight, layer.bias, padding=1)


def _encode(encoder, image: torch.Tensor) -> list[torch.Tensor]:
    """relu1_1..relu5_1 as the official VGG nn.Sequential computes them: conv, ReLU, MaxPool2d(2, 2, ceil_mode)."""
    x = F.conv2d(image, encoder.input_weight, encoder.input_bias)  # the input normalisation, a 1x1 conv
    taps = []
    for name, conv in encoder.convs.items():
        block, index = int(name[4]), int(name[6])  # "conv{block}_{index}"
        if index == 1 and block > 1:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        x = torch.relu(_plain_conv(conv, x))
        if index == 1:
            taps.append(x)
    return taps[:5]


def _norm(feat: torch.Tensor) -> torch.Tensor:
    size = feat.size()
    var = feat.view(size[0], size[1], -1).var(dim=2) + 1e-5
    std = var.sqrt().view(size[0], size[1], 1, 1)
    mean = feat.view(size[0], size[1], -1).mean(dim=2).view(size[0], size[1], 1, 1)
    return (feat - mean) / std


def _key(feats: list[torch.Tensor], last: int) -> torch.Tensor:
    """Official get_key(shallow=True): relu1_1..relu{last}_1 resized (nearest) to relu{last}_1, each normalised."""
    size = feats[last - 1].shape[-2:]
    return torch.cat([_norm(F.interpolate(f, size=size, mode="nearest")) for f in feats[:last]], dim=1)


def _adaattn(block, content, style, content_key, style_key, generator):
    query, key, value = block.query(content_key), block.key(style_key), block.value(style)
    b, _, h_s, w_s = key.size()
    key = key.view(b, -1, h_s * w_s)
    style_flat = value.view(b, -1, h_s * w_s)
    if block.max_style_positions is not None and h_s * w_s > block.max_style_positions:
        index = torch.randperm(h_s * w_s, generator=generator)[: block.max_style_positions]
        key, style_flat = key[:, :, index], style_flat[:, :, index]
    style_flat = style_flat.transpose(1, 2).contiguous()
    b, _, h, w = query.size()
    query = query.view(b, -1, h * w).permute(0, 2, 1)
    logits = torch.bmm(query, key)
    weights = torch.softmax(logits, dim=-1)
    mean = torch.bmm(weights, style_flat)
    std = torch.sqrt(torch.relu(torch.bmm(weights, style_flat**2) - mean**2))
    mean = mean.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
    std = std.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
    return std * _norm(content) + mean


def _decode(model, relu3_1, relu4_1, relu5_1):
    """Official decoder: merge conv of relu4_1 + up(relu5_1), then reflection pad + conv (+ ReLU) layers."""
    x = _plain_conv(model.merge, relu4_1 + F.interpolate(relu5_1, size=relu4_1.shape[-2:], mode="nearest"))
    layers = iter(model.decoder.convs)
    for item in model.decoder.row:
        if item == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        elif item == "skip":
            x = torch.cat([x, relu3_1], dim=1)
        else:
            x = _plain_conv(next(layers), x)
            x = x if item == 3 else torch.relu(x)
    return x


@torch.inference_mode()
def reference_stylize(model, content: torch.Tensor, style: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """content [1, 3, H, W], style [1, 3, h, w] (sides multiples of 16) -> [1, 3, H, W] in [0, 1].

    Style positions are drawn like ours (one private generator seeded with `seed`, blocks in order), so
    the result is comparable pixel for pixel.
    """
    generator = torch.Generator().manual_seed(seed)
    content_feats = _encode(model.encoder, content)
    style_feats = _encode(model.encoder, style)
    outputs = [
        _adaattn(block, content_feats[layer - 1], style_feats[layer - 1], _key(content_feats, layer), _key(style_feats, layer), generator)
        for block, layer in zip(model.blocks, (3, 4, 5))
    ]
    return _decode(model, *outputs).clamp(0, 1)
