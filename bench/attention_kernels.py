"""Attention kernels for CPUs without native bf16, measured and not used (docs/performance.md): PyTorch's fused
scaled_dot_product_attention, and int8 products (their speed, and what int8 logits and moments cost in PSNR).

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/attention_kernels.py

Speed, in fp32 at the relu3_1 block's shapes for a 512² picture (16,384 queries, 448 key channels, 4,096 style
positions, 256 value channels; random features): functional.attention_mean_std against
F.scaled_dot_product_attention of the same logits (scale 1, the logit bias as its mask) with [value, value²] as
its values; then one 1,024-query chunk's products, fp32 torch.mm against torch._int_mm (int8 x int8 -> int32),
quantising and rescaling not counted. PSNR: the bundled model in fp32 on four example pairs at 512², its attention
with int8 logits (query rows and key columns scaled to +-127), int8 moments (weights scaled per row to 0..127 and
divided by their sum, centred values and their squares per column to +-127) or both, against the exact output.
int8 products of at most 1,040 terms sum exactly in fp32, so the products are simulated in fp32 (relu5_1's 1,472
key channels round once more).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from attention_topk import PAIRS  # bench/ is the script's folder
from profile_refine import psnr, square, timed

from adaattn_cli import Stylizer
from adaattn_cli import functional as fn
from adaattn_cli.devices import tune_cpu_for_inference


def quantized(x: torch.Tensor, dim: int, levels: int = 127) -> torch.Tensor:
    """x rounded to `levels` steps of its largest magnitude along `dim` (the int8 value times its scale)."""
    scale = x.abs().amax(dim=dim, keepdim=True).clamp_min(1e-30) / levels
    return torch.round(x / scale) * scale


def centred_pairs(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre of the values and [value - centre, its square], as functional.attention_mean_std takes them."""
    centre = value.mean(dim=1, keepdim=True)
    shifted = value - centre
    return centre, torch.cat([shifted, shifted * shifted], dim=-1)


def mean_std(moments: torch.Tensor, centre: torch.Tensor, var_floor: float = fn.VAR_FLOOR) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention's mean and std from the weighted [value - centre, its square], as functional.attention_mean_std."""
    mean, second = moments.chunk(2, dim=-1)
    return mean + centre, (second - mean * mean).clamp_min(var_floor).sqrt()


def int8_mean_std(query, key, value, *, int8_logits: bool, int8_moments: bool, logit_bias=None, var_floor=fn.VAR_FLOOR, **_):
    """functional.attention_mean_std (softmax) with the logits' and/or the moments' operands rounded to int8."""
    query, key, value = query.float(), key.float(), value.float()
    centre, pairs = centred_pairs(value)
    pairs = quantized(pairs, 1) if int8_moments else pairs
    key = quantized(key, 1) if int8_logits else key
    means, stds = [], []
    for chunk in query.split(1024, dim=1):
        logits = torch.bmm(quantized(chunk, 2) if int8_logits else chunk, key)
        weights = torch.softmax(logits if logit_bias is None else logits + logit_bias, dim=-1)
        if int8_moments:  # divided by the rounded weights' own sum (an exact integer sum in int8)
            weights = quantized(weights, 2)
            weights = weights / weights.sum(dim=-1, keepdim=True)
        mean, std = mean_std(torch.bmm(weights, pairs), centre, var_floor)
        means.append(mean)
        stds.append(std)
    return torch.cat(means, dim=1), torch.cat(stds, dim=1)


def fused_mean_std(query, key, value, logit_bias):
    """attention_mean_std's softmax case through F.scaled_dot_product_attention (flash attention on the CPU)."""
    centre, pairs = centred_pairs(value)
    return mean_std(F.scaled_dot_product_attention(query, key.transpose(1, 2), pairs, attn_mask=logit_bias, scale=1.0), centre)


def speed_table() -> None:
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(1, 16384, 448, generator=generator) * 0.15, torch.randn(1, 448, 4096, generator=generator) * 0.15
    value, bias = torch.randn(1, 4096, 256, generator=generator), torch.randn(1, 1, 4096, generator=generator)
    ours, fused = [], []
    for _ in range(2):  # alternated: this machine's speed drifts over minutes
        ours.append(timed(lambda: fn.attention_mean_std(query, key, value, logit_bias=bias), 3))
        fused.append(timed(lambda: fused_mean_std(query, key, value, bias), 3))
    difference = (fn.attention_mean_std(query, key, value, logit_bias=bias)[0] - fused_mean_std(query, key, value, bias)[0]).abs().max()
    print(f"relu3_1 block, fp32: attention_mean_std {min(ours):.3f} s, scaled_dot_product_attention {min(fused):.3f} s", end="")
    print(f" (max diff {difference:.1e})\n")
    print("| product (relu3_1, one chunk) | fp32 ms | int8 ms | int8 / fp32 speed |\n|---|---:|---:|---:|")
    for name, (rows, inner, cols) in {"logits": (1024, 448, 4096), "moments": (1024, 4096, 512)}.items():
        a = torch.randint(-127, 128, (rows, inner), dtype=torch.int8, generator=generator)
        b = torch.randint(-127, 128, (inner, cols), dtype=torch.int8, generator=generator)
        a_float, b_float = a.float(), b.float()
        fp32 = timed(lambda: torch.mm(a_float, b_float), 10)
        int8 = timed(lambda: torch._int_mm(a, b), 10)
        print(f"| {name} [{rows}x{inner}]x[{inner}x{cols}] | {fp32 * 1e3:.1f} | {int8 * 1e3:.1f} | {fp32 / int8:.2f}x |")


def psnr_table() -> None:
    stylizer = Stylizer.load("adaattn", device="cpu", precision="fp32")
    exact = fn.attention_mean_std
    variants = {"int8 logits": (True, False), "int8 moments": (False, True), "both": (True, True)}
    print("\n| content | style | " + " | ".join(f"PSNR {name}" for name in variants) + " |")
    print("|---|---|" + "---:|" * len(variants))
    for content_name, style_name in PAIRS:
        content, style = square(f"{content_name}.jpg", 512), square(f"{style_name}.jpg", 512)
        reference = stylizer.stylize(content, [stylizer.encode_style(style)])
        cells = []
        for int8_logits, int8_moments in variants.values():

            def patched(query, key, value, **options):
                if options.get("mode", "softmax") != "softmax":
                    return exact(query, key, value, **options)
                return int8_mean_std(query, key, value, int8_logits=int8_logits, int8_moments=int8_moments, **options)

            fn.attention_mean_std = patched
            try:
                output = stylizer.stylize(content, [stylizer.encode_style(style)])
            finally:
                fn.attention_mean_std = exact
            cells.append(f"{psnr(output, reference):.1f} dB")
        print(f"| {content_name} | {style_name} | " + " | ".join(cells) + " |")


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    tune_cpu_for_inference()  # as the CLI does
    print(f"{torch.get_num_threads()} threads, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    speed_table()
    psnr_table()


if __name__ == "__main__":
    main()
