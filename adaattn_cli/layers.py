"""The conv layers encoders and decoders share, and the cache key of kernels derived from weights.

Conv3x3 is VGG's layer (encoders.py); ReflectConv2d, its reflection-padded form with the decoder's fused
upsampling and skip, is the decoders' and the merge convs' layer (models.py). Both pick the fast kernels of
kernels.py where they apply (their common part: _Conv3x3).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels


def version_stamp(*tensors: torch.Tensor) -> tuple:
    """Changes when any tensor gets new storage or an in-place update: the key of caches derived from weights."""
    return tuple((t.data_ptr(), 0 if t.is_inference() else t._version) for t in tensors)  # inference tensors have no version


Padding = Literal["zeros", "reflect"]


class _Conv3x3(nn.Conv2d):
    """A 3x3 conv with one pixel of zero or reflected padding, with the fast inference paths: what Conv3x3 and
    ReflectConv2d share (each has its own forward).

    Wide layers on the CPU whose weights take no gradient run as Winograd convs (kernels.winograd_conv3x3: F(2x2, 3x3)
    in bf16, F(4x4, 3x3) in fp32); a frozen zero-padded layer under autograd (an encoder in `--refine` and in
    training's losses) too, its input's gradient by the same kind of conv (kernels.WinogradConv3x3). The transformed
    kernels are kept until the weights change (new storage or an in-place update).
    `plain` (set by models.use_plain_ops, for ONNX export): one standard conv, reflection as a padded copy.
    """

    plain = False
    bias: torch.Tensor  # never None: built with a bias

    def __init__(self, in_channels: int, out_channels: int, padding_mode: Padding = "zeros"):
        super().__init__(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)
        # the weight's stamp, and its Winograd kernels by (tile, backward)
        self._winograd: tuple[tuple | None, dict[tuple[int, bool], torch.Tensor]] = (None, {})

    def winograd_kernel(self, tile: int, backward: bool = False) -> torch.Tensor:
        """The weight's F(tile x tile) Winograd kernel, or (backward) that of the conv giving its input's gradient;
        kept until the weights change."""
        stamp = version_stamp(self.weight)
        if self._winograd[0] != stamp:
            self._winograd = (stamp, {})
        cache = self._winograd[1]
        if (tile, backward) not in cache:
            weight = self.weight.detach()
            cache[tile, backward] = kernels.winograd_kernel(kernels.flipped_transposed(weight) if backward else weight, tile)
        return cache[tile, backward]

    def conv_part(self, x: torch.Tensor, inputs: slice = slice(None)) -> torch.Tensor:
        """inputs: the input channels x stands for when the layer's input is split in parts (the decoder's
        skip concatenation); the bias comes with the part that starts at channel 0."""
        weight = self.weight[:, inputs]
        bias = self.bias if not inputs.start else None
        reflect = self.padding_mode == "reflect"
        if self.plain:
            return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias) if reflect else F.conv2d(x, weight, bias, padding=1)
        tile = kernels.winograd_tile(x, weight)
        if tile:
            bias = None if bias is None else bias.to(x.dtype)
            kernel = self.winograd_kernel(tile)[:, inputs].to(x.dtype)
            if not (torch.is_grad_enabled() and x.requires_grad):
                return kernels.winograd_conv3x3(x, kernel, bias, reflect=reflect)
            if not reflect and inputs == slice(None):  # the input's gradient too (zero padding: the frozen encoders)
                return kernels.WinogradConv3x3.apply(x, kernel, self.winograd_kernel(tile, backward=True).to(x.dtype), bias)
        if reflect:
            return kernels.conv3x3_reflect(x, weight, bias)
        return F.conv2d(x, weight, bias, padding=1)


class Conv3x3(_Conv3x3):
    """VGG's layer: a 3x3 conv with one pixel of zero or reflected padding, with the fast inference paths."""

    def forward(self, x: torch.Tensor, inputs: slice = slice(None)) -> torch.Tensor:
        """inputs: the input channels x stands for when the layer's input is split in parts; the bias comes with
        the part that starts at channel 0."""
        return self.conv_part(x, inputs)


class ReflectConv2d(_Conv3x3):
    """The decoders' layer: 3x3 conv with one pixel of reflection padding (ReLU applied by the caller).

    upsample: the input is first upsampled x2 (nearest), fused into the conv (kernels.upsample_conv3x3_reflect).
    skip: channels concatenated after the input's; their share of the kernel runs as a second conv, so the
    concatenated copy is never built.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, padding_mode="reflect")

    def forward(self, x: torch.Tensor, *, upsample: bool = False, skip: torch.Tensor | None = None) -> torch.Tensor:
        own = slice(0, x.shape[1])
        if upsample and self.plain:  # ONNX export: the upsampled copy, then the conv
            x, upsample = F.interpolate(x, scale_factor=2, mode="nearest"), False
        out = kernels.upsample_conv3x3_reflect(x, self.weight[:, own], self.bias) if upsample else self.conv_part(x, own)
        if skip is not None:
            out = out.add_(self.conv_part(skip, slice(x.shape[1], None)))
        return out
