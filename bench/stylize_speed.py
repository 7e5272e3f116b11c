"""Stylisation speed and memory: the plain fp32 reference beside ours (exact fp32, and fast), in one run.

    python bench/stylize_speed.py                                   # 512 and 1024, content = style size
    python bench/stylize_speed.py --sizes 512 --variants reference fast --rounds 3   # medians of 3 interleaved runs
    python bench/stylize_speed.py --sizes 4096 --style-size 1024 --variants fast fp32 --repeats 1

Variants (all with the bundled AdaAttN model, one image, model loaded before timing):
  reference  adaattn_cli/reference.py: the official formulation in plain fp32 NCHW, full attention, the style
             encoded per call, the model's own position caps (4096 at relu3_1, 65536 elsewhere); then the
             colour step that `stylize` applies by default (functional.match_mean_colour, ~1 ms), so the outputs compare
  fp32       ours, exact: fp32 (the wide convs as Winograd, whose rounding is below the direct conv's), chunked
             attention, channels_last, the method's default cap of 4096 style positions (at the default 512-px
             style: the positions of the model's own caps, so the reference's maths)
  fast       ours as the CLI runs it by default: bf16 convs and attention matmuls (moments in fp32),
             channels_last, every block capped at 4096 style positions (--style-positions); the wide
             3x3 convs as Winograd F(2x2, 3x3)
  fast-direct  fast with every conv direct (no Winograd): what Winograd gains
  auto       what `adaattn stylize` runs on this CPU (--precision auto: bf16 where the CPU has avx512_bf16/AMX,
             else fp32), every block capped at 4096 style positions
  refineN    fast, then N steps of test-time refinement (`--refine N`; refine.py), e.g. refine25
Each cell runs in its own process (so peak RSS is its own): median wall time of --repeats calls after one
warm-up call (no warm-up with --repeats 1); with --rounds R every cell runs R times, the variants in a rotated
order each round, and the table gives the medians (this shared machine's speed drifts by ~10 % over minutes).
"s/image" encodes the style inside every timed call (one image,
cold); "style encoded once" is the per-image cost when the style is reused (a batch, a video, a blend), which
the reference cannot do. Max abs diff and PSNR compare each output with the reference's (or, where the
reference is not run, with fp32's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def square_image(path: Path, size: int) -> torch.Tensor:
    from adaattn_cli.image_io import load_image

    image = load_image(path).rgb
    side = min(image.shape[-2:])
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    crop = image[:, top : top + side, left : left + side]
    return F.interpolate(crop[None], size=(size, size), mode="bicubic", antialias=side > size).clamp(0, 1)


def run_cell(variant: str, size: int, style_size: int, repeats: int, model_name: str, out: Path) -> dict:
    """One variant at one size, in this process; writes the output tensor to `out`."""
    from adaattn_cli.api import Stylizer
    from adaattn_cli.weights import load_model

    content = square_image(ROOT / "examples/bedroom.jpg", size)
    style = square_image(ROOT / "examples/vangogh-wheat-field.jpg", style_size)
    model = load_model(model_name)
    if variant == "reference":
        from adaattn_cli.functional import match_mean_colour, mean_colour
        from adaattn_cli.reference import plain_copy, reference_stylize

        model = plain_copy(model)
        # with the colour step that `stylize` applies by default (about a millisecond), so the outputs compare
        calls = {"cold": lambda: match_mean_colour(reference_stylize(model, content, style), [(mean_colour(style[0]), 1.0)])}
    else:
        fast = variant in ("fast", "fast-direct") or variant.startswith("refine")
        precision = "auto" if variant == "auto" else "bf16" if fast else "fp32"
        steps = int(variant[len("refine") :]) if variant.startswith("refine") else 0
        if variant == "fast-direct":  # the fast path with every conv direct: what Winograd gains
            from adaattn_cli import kernels

            kernels.WINOGRAD_MIN_CHANNELS = dict.fromkeys(kernels.WINOGRAD_MIN_CHANNELS, sys.maxsize)
        stylizer = Stylizer.load(model, device="cpu", precision=precision)
        encoded = stylizer.encode_style(style[0])
        calls = {
            "cold": lambda: stylizer.stylize(content[0], [stylizer.encode_style(style[0])], refine=steps)[None],
            # style encoded once (batch, video, blend): its refinement targets too, after the first call
            "warm": lambda: stylizer.stylize(content[0], [encoded], refine=steps)[None],
        }
    result = {}
    for name, call in calls.items():
        if repeats > 1:
            call()  # warm-up: allocator and oneDNN kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            output = call()
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    torch.save(output.float().contiguous(), out)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return result


def _variant(name: str) -> str:
    if name in ("reference", "fp32", "fast", "fast-direct", "auto") or (name.startswith("refine") and name[len("refine") :].isdigit()):
        return name
    raise argparse.ArgumentTypeError(f"unknown variant {name!r}")


def compare(output: torch.Tensor, baseline: torch.Tensor) -> tuple[float, float]:
    diff = (output - baseline).abs()
    mse = float((diff**2).mean())
    return float(diff.max()), (math.inf if mse == 0 else 10 * math.log10(1 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--style-size", type=int, help="style side (default: the content's)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["reference", "fp32", "fast"],
        type=_variant,
        help="reference, fp32, fast, fast-direct, auto, refineN (see above)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="run every cell this many times, interleaved; report medians")
    parser.add_argument("--model", default="adaattn")
    parser.add_argument("--cell", nargs=3, metavar=("VARIANT", "SIZE", "OUT"), help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    from adaattn_cli.devices import tune_cpu_for_inference

    tune_cpu_for_inference()  # as the CLI does (every variant, the reference too)
    if args.cell:
        variant, size, out = args.cell
        result = run_cell(variant, int(size), args.style_size or int(size), args.repeats, args.model, Path(out))
        print(json.dumps(result))
        return

    print(
        f"`{' '.join(['python'] + sys.argv)}` — torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| content | style | variant | s/image | vs reference | s/image, style encoded once | vs reference | peak RSS GiB | "
        "max abs diff | PSNR dB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            style_size = args.style_size or size
            runs, outputs = {variant: [] for variant in args.variants}, {}
            for round_index in range(args.rounds):
                # rotate the order each round, so a slow spell of the machine does not fall on one variant only
                shift = round_index % len(args.variants)
                for variant in args.variants[shift:] + args.variants[:shift]:
                    out = Path(tmp) / f"{variant}-{size}.pt"
                    command = [
                        sys.executable,
                        __file__,
                        "--cell",
                        variant,
                        str(size),
                        str(out),
                        "--repeats",
                        str(args.repeats),
                        "--model",
                        args.model,
                        "--style-size",
                        str(style_size),
                    ]
                    finished = subprocess.run(command, capture_output=True, text=True)
                    if finished.returncode != 0:
                        print(f"| {size}² | {style_size}² | {variant} | failed: {finished.stderr.strip().splitlines()[-1:]} | | | | | | |")
                        continue
                    runs[variant].append(json.loads(finished.stdout.strip().splitlines()[-1]))
                    outputs[variant] = torch.load(out)
            baseline = "reference" if "reference" in outputs else "fp32"
            reference = statistics.median(r["cold"] for r in runs.get("reference", [])) if runs.get("reference") else math.nan
            for variant, cells in runs.items():
                if not cells:
                    continue
                diff, psnr = compare(outputs[variant], outputs[baseline]) if baseline in outputs else (math.nan, math.nan)
                cold = statistics.median(r["cold"] for r in cells)
                warm = statistics.median(r.get("warm", math.nan) for r in cells)
                peak = max(r["peak_rss_gib"] for r in cells)
                print(
                    f"| {size}² | {style_size}² | {variant} | {cold:.2f} | {reference / cold:.2f}x | "
                    f"{warm:.2f} | {reference / warm:.2f}x | {peak:.2f} | {diff:.4f} | {psnr:.1f} |",
                    flush=True,
                )
            if args.rounds > 1 and len(runs.get("reference", [])) == args.rounds:
                for variant, cells in runs.items():  # the spread of the ratio, round by round (same round's reference)
                    if variant != "reference" and len(cells) == args.rounds:
                        ratios = [ref["cold"] / cell["cold"] for ref, cell in zip(runs["reference"], cells)]
                        print(f"\n{size}² {variant}: cold speed-up per round " + ", ".join(f"{r:.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
