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

    Wide layers in bf16 on the CPU without autograd run as Winograd F(2x2, 3x3) (kernels.winograd_conv3x3); the
    transformed kernel is kept until the weights change (new storage or an in-place update).
    `plain` (set by models.use_plain_ops, for ONNX export): one standard conv, reflection as a padded copy.
    """

    plain = False
    bias: torch.Tensor  # never None: built with a bias

    def __init__(self, in_channels: int, out_channels: int, padding_mode: Padding = "zeros"):
        super().__init__(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)
        self._winograd: tuple = (None, None)  # (weight's stamp, its Winograd kernel)

    def winograd_kernel(self) -> torch.Tensor:
        stamp = version_stamp(self.weight)
        if self._winograd[0] != stamp:
            self._winograd = (stamp, kernels.winograd_kernel(self.weight.detach()))
        return self._winograd[1]

    def conv_part(self, x: torch.Tensor, inputs: slice = slice(None)) -> torch.Tensor:
        """inputs: the input channels x stands for when the layer's input is split in parts (the decoder's
        skip concatenation); the bias comes with the part that starts at channel 0."""
        weight = self.weight[:, inputs]
        bias = self.bias if not inputs.start else None
        reflect = self.padding_mode == "reflect"
        if self.plain:
            return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias) if reflect else F.conv2d(x, weight, bias, padding=1)
        if kernels.winograd_pays(x, weight):
            bias = None if bias is None else bias.to(x.dtype)
            return kernels.winograd_conv3x3(x, self.winograd_kernel()[:, inputs].to(x.dtype), bias, reflect=reflect)
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
