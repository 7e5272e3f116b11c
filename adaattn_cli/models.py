"""The four methods as one family: encode -> memorize style -> transfer blocks -> fuse -> decode.

Every model exposes the same steps, so stylising, blending, alpha, masks and video all work the same
way for every method (see api.py). Decoders are rows of one table, built by one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import functional as fn
from . import kernels
from .attention import AdaAttN, AdaIN, SANet, StyleMemory, TransferBlock
from .encoders import Encoder
from .layers import ReflectConv2d
from .methods import get_method

# Decoder rows: an int is a 3x3 conv (reflection pad, ReLU unless last) with that many output channels,
# "up" a nearest x2 upsampling, "skip" the concatenation of the relu3_1-level block output.
DECODERS = {
    "relu4_1": (256, "up", 256, 256, 256, 128, "up", 128, 64, "up", 64, 3),
    "relu4_1+skip3": (256, "up", "skip", 256, 256, 256, 128, "up", 128, 64, "up", 64, 3),
    "relu3_1": (256, 256, 256, 128, "up", 128, 64, "up", 64, 3),
}


class Decoder(nn.Module):
    plain = False  # models.use_plain_ops (ONNX export): no fused tail

    def __init__(self, row: tuple, *, in_channels: int, skip_channels: int = 0, width_divisor: int = 1):
        super().__init__()
        self.row = row
        self.convs = nn.ModuleList()
        channels = in_channels
        for item in row:
            if item == "skip":
                channels += skip_channels
            elif isinstance(item, int):
                out = item if item == 3 else item // width_divisor
                self.convs.append(ReflectConv2d(channels, out))
                channels = out

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        layers = cast("list[ReflectConv2d]", list(self.convs))  # what __init__ put in (nn.ModuleList's items are bare Modules)
        convs = iter(layers)
        last = layers[-1]
        # Every row ends "up", conv, last conv: at inference the last conv reads the upsampling conv's four
        # phases directly (kernels.phases_conv3x3_reflect), so the full-size map before it is never built.
        fuse_tail = not torch.is_grad_enabled() and not self.plain and self.row[-3] == "up"
        upsample, extra = False, None  # "up" and "skip" are carried into the next conv, which fuses them
        for item in self.row:
            if item == "up":
                upsample = True
            elif item == "skip":
                extra = skip
            else:
                conv = next(convs)
                if fuse_tail and conv is layers[-2]:
                    phases = torch.relu_(kernels.upsample_conv3x3_phases(x, conv.weight, conv.bias))
                    return kernels.phases_conv3x3_reflect(phases, last.weight, last.bias)
                x = conv(x, upsample=upsample, skip=extra)
                upsample, extra = False, None
                if conv is not last:
                    x = torch.relu_(x)  # in place: the conv's output is not needed by its backward
        return x


@dataclass
class Encoded:
    """An image seen by the encoder: taps relu1_1.. and, for AdaAttN, the shallow+deep keys per block."""

    features: list[torch.Tensor]
    keys: list[torch.Tensor] = field(default_factory=list)
    # (tap, level) -> (mean, std) for mean_variance_norm of relu{tap}_1 resized to relu{level}_1: the whole
    # image's statistics when it is processed in tiles (tiling.py); None = each map's own
    stats: dict | None = None

    def norm_stats(self, tap: int, level: int | None = None):
        return None if self.stats is None else self.stats[(tap, level or tap)]


class StyleTransferModel(nn.Module):
    """Shared skeleton. Subclasses set `method`, `depth` (deepest relu tap), `size_multiple`, `blocks`."""

    method = ""
    plain = False  # use_plain_ops (ONNX export): the keys' resizing as index gathers (fn.resize_nearest_gather)
    depth = 5
    size_multiple = 16
    block_levels: tuple = ()  # relu levels of the transfer blocks, in block order
    key_levels: tuple = ()  # levels with AdaAttN shallow+deep keys (relu1_1..level, each normalised)
    blocks: nn.ModuleList  # the transfer blocks (attention.TransferBlock), in block order: made by each subclass
    header: dict | None = None  # a loaded model's file header (weights.load_model)

    def __init__(self, encoder: Encoder, **config):
        super().__init__()
        self.encoder = encoder
        self.config = config

    def transfer_blocks(self) -> list[TransferBlock]:
        """self.blocks as what they are (an nn.ModuleList's items are bare Modules to a type checker)."""
        return cast("list[TransferBlock]", list(self.blocks))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights a model file holds: everything but the frozen encoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def encode(self, image: torch.Tensor, stats: dict | None = None) -> Encoded:
        features = self.encoder(image, self.depth)
        keys = [self.key(features, level, stats, plain=self.plain) for level in self.key_levels]
        return Encoded(features, keys, stats)

    @staticmethod
    def key(features: list[torch.Tensor], level: int, stats: dict | None = None, *, plain: bool = False) -> torch.Tensor:
        pieces_stats = None if stats is None else [stats[(tap, level)] for tap in range(1, level + 1)]
        return fn.shallow_deep_key(features[:level], pieces_stats, plain=plain)

    def configure_inference(self, *, matmul_dtype: torch.dtype, style_positions: int | None = None) -> None:
        """Inference settings of the transfer blocks: the dtype of their attention matmuls, and the cap on the style
        positions each attends to (None: the model's own caps, as configured; 0: every position)."""
        blocks = self.transfer_blocks()
        own_caps = self.config.get("max_style_positions") or [None] * len(blocks)
        for block, own_cap in zip(blocks, own_caps):
            cap = own_cap if style_positions is None else (style_positions or None)
            block.configure_inference(matmul_dtype=matmul_dtype, max_style_positions=cap)

    def normalised_maps(self) -> list[tuple[int, int]]:
        """(tap, level) of every map the model normalises with its own statistics (see Encoded.stats)."""
        keys = {(tap, level) for level in self.key_levels for tap in range(1, level + 1)}
        return sorted(keys | {(level, level) for level in self.block_levels})

    def memorize(self, style: Encoded, *, generator=None, mask=None) -> list[StyleMemory]:
        raise NotImplementedError

    def transfer(self, content: Encoded, memory: list[StyleMemory]) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def transfer_mixed(self, content: Encoded, terms: Sequence[tuple[list[StyleMemory], torch.Tensor | float]]) -> list[torch.Tensor]:
        """Blend several styles: per block, sum_k weight_k(x) * transfer(content, memory_k).

        Weights are floats or [B or 1, 1, H, W] maps (any size, resized to each block); they should sum to 1
        at every position. For AdaAttN/AdaIN this is exactly a weighted blend of the mean and std maps,
        since each block output is S * Norm(F_c) + M.
        """
        mixed: list[torch.Tensor] | None = None
        for memory, weight in terms:
            outputs = self.transfer(content, memory)
            if not isinstance(weight, (int, float)):
                outputs = [o * F.interpolate(weight.to(o.dtype), size=o.shape[-2:], mode="area") for o in outputs]
            elif weight != 1.0:
                outputs = [o * weight for o in outputs]
            mixed = outputs if mixed is None else [m + o for m, o in zip(mixed, outputs)]
        if mixed is None:
            raise ValueError("transfer_mixed needs at least one (memory, weight) term")
        return mixed

    def forward(self, content: torch.Tensor, style: torch.Tensor, *, generator=None) -> torch.Tensor:
        """Raw decoder output (not clamped) for content [B,3,H,W] and style [B or 1,3,h,w] in [0,1]."""
        memory = self.memorize(self.encode(style), generator=generator)
        return self.decode(self.transfer(self.encode(content), memory))


def _merge_conv(channels: int) -> ReflectConv2d:
    return ReflectConv2d(channels, channels)


def _fuse_4_5(merge: nn.Conv2d, relu4_1: torch.Tensor, relu5_1: torch.Tensor) -> torch.Tensor:
    """SANet/AdaAttN fusion: 3x3 conv of relu4_1 + nearest-upsampled relu5_1."""
    return merge(relu4_1 + F.interpolate(relu5_1, size=relu4_1.shape[-2:], mode="nearest"))


class AdaAttNModel(StyleTransferModel):
    """AdaAttN image model (released config: shallow keys, relu3_1 skip into the decoder)."""

    method = "adaattn"
    depth = 5
    size_multiple = 16
    block_levels = key_levels = (3, 4, 5)

    def __init__(self, encoder: Encoder, *, max_style_positions=(4096, 65536, 65536), width_divisor: int = 1):
        super().__init__(encoder, max_style_positions=list(max_style_positions), width_divisor=width_divisor)
        channels = [encoder.conv(f"conv{i}_1").out_channels for i in range(1, 6)]
        key_channels = [sum(channels[:3]), sum(channels[:4]), sum(channels[:5])]
        self.blocks = nn.ModuleList(
            AdaAttN(value_channels=channels[layer - 1], key_channels=keys, max_style_positions=cap)
            for layer, keys, cap in zip((3, 4, 5), key_channels, max_style_positions)
        )
        self.merge = _merge_conv(channels[3])
        self.decoder = Decoder(DECODERS["relu4_1+skip3"], in_channels=channels[3], skip_channels=channels[2], width_divisor=width_divisor)

    def memorize(self, style: Encoded, *, generator=None, mask=None) -> list[StyleMemory]:
        return [
            block.memorize(style.features[layer - 1], key, generator=generator, mask=mask)
            for block, layer, key in zip(cast("list[AdaAttN]", list(self.blocks)), self.block_levels, style.keys)
        ]

    def transfer(self, content: Encoded, memory: list[StyleMemory]) -> list[torch.Tensor]:
        return [
            block(content.features[layer - 1], key, block_memory)
            for block, layer, key, block_memory in zip(self.blocks, self.block_levels, content.keys, memory)
        ]

    def decode(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        relu3_1, relu4_1, relu5_1 = outputs
        return self.decoder(_fuse_4_5(self.merge, relu4_1, relu5_1), skip=relu3_1)


class AdaAttNVideoModel(StyleTransferModel):
    """Video variant (the released video model of Huage001/AdaAttN's inference_frame.py): one cosine-attention
    AdaAttN block at relu3_1, decoder from relu3_1."""

    method = "adaattn-video"
    depth = 3
    size_multiple = 4
    block_levels = key_levels = (3,)

    def __init__(self, encoder: Encoder, *, max_style_positions=(65536,), width_divisor: int = 1):
        super().__init__(encoder, max_style_positions=list(max_style_positions), width_divisor=width_divisor)
        channels = [encoder.conv(f"conv{i}_1").out_channels for i in range(1, 4)]
        self.blocks = nn.ModuleList(
            [
                AdaAttN(
                    value_channels=channels[2], key_channels=sum(channels), max_style_positions=max_style_positions[0], attention="cosine"
                )
            ]
        )
        self.decoder = Decoder(DECODERS["relu3_1"], in_channels=channels[2], width_divisor=width_divisor)

    def memorize(self, style: Encoded, *, generator=None, mask=None) -> list[StyleMemory]:
        return [cast(AdaAttN, self.blocks[0]).memorize(style.features[2], style.keys[0], generator=generator, mask=mask)]

    def transfer(self, content: Encoded, memory: list[StyleMemory]) -> list[torch.Tensor]:
        return [self.blocks[0](content.features[2], content.keys[0], memory[0])]

    def decode(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(outputs[0])


class AdaINModel(StyleTransferModel):
    """AdaIN at relu4_1 with the mirrored VGG decoder."""

    method = "adain"
    depth = 4
    size_multiple = 8
    block_levels = (4,)

    def __init__(self, encoder: Encoder, *, width_divisor: int = 1):
        super().__init__(encoder, width_divisor=width_divisor)
        self.blocks = nn.ModuleList([AdaIN()])
        self.decoder = Decoder(DECODERS["relu4_1"], in_channels=encoder.conv("conv4_1").out_channels, width_divisor=width_divisor)

    def memorize(self, style: Encoded, *, generator=None, mask=None) -> list[StyleMemory]:
        return [cast(AdaIN, self.blocks[0]).memorize(style.features[3], mask=mask, stats=style.norm_stats(4))]

    def transfer(self, content: Encoded, memory: list[StyleMemory]) -> list[torch.Tensor]:
        return [self.blocks[0](content.features[3], memory[0], content.norm_stats(4))]

    def decode(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(outputs[0])


class SANetModel(StyleTransferModel):
    """SANet at relu4_1 and relu5_1 (residual), fused like AdaAttN, AdaIN-style decoder.

    levels=(3, 4, 5) adds a third SANet block at relu3_1 whose output enters the decoder as AdaAttN's relu3_1
    skip does. The bundled model uses it: the offline HED encoder's relu4_1 keeps too little of the photo for
    a relu4_1-only decoder to redraw it (weights/README.md). (4, 5) is the paper's model.
    """

    method = "sanet"
    depth = 5
    size_multiple = 16

    def __init__(self, encoder: Encoder, *, levels=(4, 5), max_style_positions=None, width_divisor: int = 1):
        levels = tuple(levels)
        if levels not in ((4, 5), (3, 4, 5)):
            raise ValueError(f"SANet blocks sit at relu4_1+relu5_1 or relu3_1+relu4_1+relu5_1, not {levels}")
        skip = levels[0] == 3
        if max_style_positions is None:
            max_style_positions = (4096,) * skip + (65536, 65536)
        super().__init__(encoder, levels=list(levels), max_style_positions=list(max_style_positions), width_divisor=width_divisor)
        self.block_levels = levels
        channels = {level: encoder.conv(f"conv{level}_1").out_channels for level in (3, 4, 5)}
        self.blocks = nn.ModuleList(
            SANet(channels=channels[level], max_style_positions=cap) for level, cap in zip(levels, max_style_positions)
        )
        self.merge = _merge_conv(channels[4])
        self.decoder = Decoder(
            DECODERS["relu4_1+skip3" if skip else "relu4_1"],
            in_channels=channels[4],
            skip_channels=channels[3] if skip else 0,
            width_divisor=width_divisor,
        )

    def memorize(self, style: Encoded, *, generator=None, mask=None) -> list[StyleMemory]:
        return [
            block.memorize(style.features[layer - 1], generator=generator, mask=mask, stats=style.norm_stats(layer))
            for block, layer in zip(cast("list[SANet]", list(self.blocks)), self.block_levels)
        ]

    def transfer(self, content: Encoded, memory: list[StyleMemory]) -> list[torch.Tensor]:
        return [
            block(content.features[layer - 1], m, content.norm_stats(layer))
            for block, layer, m in zip(self.blocks, self.block_levels, memory)
        ]

    def decode(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        *skip, relu4_1, relu5_1 = outputs
        return self.decoder(_fuse_4_5(self.merge, relu4_1, relu5_1), skip=skip[0] if skip else None)


def use_plain_ops(model: StyleTransferModel, plain: bool = True) -> StyleTransferModel:
    """Switch `model` (in place) to standard operators only, for ONNX export: direct convs with padded copies,
    standard pooling and upsampling, nearest resizing as index gathers, no fused decoder tail, unfolded queries,
    attention in one piece (the n_content x n_style logits at once). Same results up to rounding; the inference
    fast paths are off while it is set (use_plain_ops(model, False) turns them back on). Returns the model."""
    for module in model.modules():  # duck-typed: the encoder, convs, decoders, blocks and the model have the switches
        if hasattr(module, "plain"):
            setattr(module, "plain", plain)
        if hasattr(module, "logit_budget"):
            setattr(module, "logit_budget", None if plain else fn.DEFAULT_LOGIT_BUDGET)
    return model


def build_model(method: str, encoder: Encoder, **config) -> StyleTransferModel:
    """A model of a registered method (methods.py) with freshly initialised weights (N(0, 0.02) convs, zero
    biases, as the official recipe)."""
    model = get_method(method).model_class()(encoder, **config)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and not name.startswith("encoder."):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def count_parameters(model: StyleTransferModel) -> int:
    return sum(t.numel() for t in model.trainable_state().values())
