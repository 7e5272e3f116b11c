"""The encoder's 3x3 conv layers, direct against Winograd F(2x2, 3x3) and F(4x4, 3x3), in fp32 and bf16, at the
shapes of a 512² picture (kernels.winograd_conv3x3; what kernels.WINOGRAD_TILE and WINOGRAD_MIN_CHANNELS rest on).

    python bench/conv_speed.py
    python bench/conv_speed.py --repeats 9

Per layer: median milliseconds of --repeats forward calls after a warm-up (inference, channels_last, random
weights of the layer's shape), each Winograd's speed-up over the direct conv, and each one's max abs error against
the fp64 conv.
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from profile_refine import timed  # bench/ is the script's folder

from adaattn_cli import kernels

# (in channels, out channels, side) of the HED VGG-16 encoder's layers at a 512² picture
LAYERS = [(64, 64, 512), (64, 128, 256), (128, 128, 256), (128, 256, 128), (256, 256, 128), (256, 512, 64), (512, 512, 64), (512, 512, 32)]


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(
        "| precision | layer | direct ms | F(2x2) ms | F(4x4) ms | F(2x2) speed-up | F(4x4) speed-up "
        "| direct error | F(2x2) error | F(4x4) error |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        for in_channels, out_channels, side in LAYERS:
            x = torch.randn(1, in_channels, side, side).relu_().to(dtype).contiguous(memory_format=torch.channels_last)
            weight = (torch.randn(out_channels, in_channels, 3, 3) * (in_channels * 9) ** -0.5).to(dtype)
            bias = torch.zeros(out_channels, dtype=dtype)
            calls = [lambda: F.conv2d(x, weight, bias, padding=1)]
            for tile in (2, 4):
                kernel = kernels.winograd_kernel(weight, tile)
                calls.append(lambda kernel=kernel: kernels.winograd_conv3x3(x, kernel, bias))
            times = [timed(call, args.repeats) * 1e3 for call in calls]
            exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
            errors = [float((call().double() - exact).abs().max()) for call in calls]
            name = str(dtype).removeprefix("torch.")
            print(
                f"| {name} | {in_channels}→{out_channels} at {side}² | {times[0]:.1f} | {times[1]:.1f} | {times[2]:.1f} | "
                f"{times[0] / times[1]:.2f}× | {times[0] / times[2]:.2f}× | {errors[0]:.1e} | {errors[1]:.1e} | {errors[2]:.1e} |"
            )


if __name__ == "__main__":
    main()
