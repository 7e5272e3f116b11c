"""Where the time of one cold `stylize` goes (no refinement), and how concentrated each AdaAttN block's attention is.

    python bench/profile_stylize.py                      # 512x512, --precision auto (what the CLI runs here)
    python bench/profile_stylize.py --precision fp32     # the exact path (what AVX2-only CPUs run)
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/profile_stylize.py \
        --precision fp32                                 # the same kernels as an AVX2-only CPU, on this one

One call = the style encoded and memorized, the content encoded, the blocks, the decoder, the colour step (the
bundled AdaAttN model; bedroom and Van Gogh's wheat field, square crops). The first table is torch.profiler's
self time of one call after a warm-up, grouped into parts:
  direct convs                oneDNN convolutions (encoder, decoder, 1x1 projections)
  Winograd products           the batched products of the Winograd convs (kernels.py: batch = the tile's 16 or 36 points)
  attention logits            query x key products (+ the folded logit bias), per AdaAttN block
  attention moments           attention weights x [value, value^2], per AdaAttN block
  softmax                     the attention's softmax
  other                       everything else, memory-bound passes: the Winograd transforms, normalisation,
                              pooling, ReLUs, copies, resizes, the colour step
The GFLOP/s column is the products' multiply-adds x 2 over their time: near the CPU's peak, only fewer FLOPs
make a part faster.
The second table: per AdaAttN block, how many style positions carry 1 - 1e-3 and 1 - 1e-5 of each query's
attention weight (median and 90th percentile over the first 2,048 queries).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import torch
from profile_refine import square  # bench/ is the script's folder

from adaattn_cli import functional as fn
from adaattn_cli.api import Stylizer


def part_of(event) -> tuple[str, float]:
    """(part, GFLOP) of one profiler event, from its name and input shapes."""
    name, shapes = event.key, event.input_shapes
    if name == "aten::mkldnn_convolution":
        out_channels, in_channels, kh, kw = shapes[1]
        batch, _, height, width = shapes[0]
        return "direct convs", 2 * batch * out_channels * in_channels * kh * kw * height * width / 1e9
    if name in ("aten::bmm", "aten::baddbmm"):
        a, b = (shapes[1], shapes[2]) if name == "aten::baddbmm" else (shapes[0], shapes[1])
        gflop = 2 * a[0] * a[1] * a[2] * b[2] / 1e9
        if a[0] in (16, 36):
            return "Winograd products", gflop
        return ("attention logits" if name == "aten::baddbmm" else "attention moments"), gflop
    if name == "aten::_softmax":
        return "softmax", 0.0
    return "other", 0.0


def time_table(stylizer: Stylizer, content: torch.Tensor, style: torch.Tensor) -> None:
    def call():
        return stylizer.stylize(content, [stylizer.encode_style(style)])

    call()
    start = time.perf_counter()
    call()
    print(f"one call: {time.perf_counter() - start:.2f} s (unprofiled)\n")
    with torch.profiler.profile(record_shapes=True) as profile:
        call()
    seconds, gflops = defaultdict(float), defaultdict(float)
    for event in profile.key_averages(group_by_input_shape=True):
        part, gflop = part_of(event)
        seconds[part] += event.self_cpu_time_total / 1e6
        gflops[part] += gflop * event.count
    total = sum(seconds.values())
    print("| part | s | share | GFLOP | GFLOP/s |\n|---|---:|---:|---:|---:|")
    for part in sorted(seconds, key=seconds.get, reverse=True):
        rate = f"{gflops[part] / seconds[part]:.0f}" if gflops[part] else "—"
        print(f"| {part} | {seconds[part]:.3f} | {seconds[part] / total:.0%} | {gflops[part]:.1f} | {rate} |")
    print(f"| all (profiled) | {total:.3f} | 100% | {sum(gflops.values()):.1f} | |\n")


def concentration_table(stylizer: Stylizer, content: torch.Tensor, style: torch.Tensor) -> None:
    rows = []
    exact = fn.attention_mean_std

    def measuring(query, key, value, **options):
        bias = options.get("logit_bias")
        logits = torch.bmm(query[:, :2048].float(), key.float())
        weights = torch.softmax(logits if bias is None else logits + bias.float(), dim=-1)[0]
        mass = weights.sort(dim=-1, descending=True).values.cumsum(dim=-1)
        counts = [((mass < 1 - tol).sum(dim=-1) + 1).float() for tol in (1e-3, 1e-5)]
        rows.append((key.shape[1], key.shape[2], *[(float(c.median()), float(c.quantile(0.9))) for c in counts]))
        return exact(query, key, value, **options)

    fn.attention_mean_std = measuring
    try:
        stylizer.stylize(content, [stylizer.encode_style(style)])
    finally:
        fn.attention_mean_std = exact
    print("| block (key channels) | style positions | for 1 - 1e-3: median, p90 | for 1 - 1e-5: median, p90 |")
    print("|---|---:|---:|---:|")
    for channels, positions, loose, tight in rows:
        print(f"| {channels} | {positions} | {loose[0]:.0f}, {loose[1]:.0f} | {tight[0]:.0f}, {tight[1]:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    stylizer = Stylizer.load("adaattn", device="cpu", precision=args.precision)
    content, style = square("bedroom.jpg", args.size), square("vangogh-wheat-field.jpg", args.size)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"precision {args.precision}, {args.size}x{args.size}, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}\n"
    )
    time_table(stylizer, content, style)
    concentration_table(stylizer, content, style)


if __name__ == "__main__":
    main()
