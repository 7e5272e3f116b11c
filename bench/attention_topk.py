"""The attention moments from each query's top weights (functional.SPARSE_TOP_K) against the dense product: the
bundled model on four example pairs at 512² (their top-left squares), the same call both ways.

    python bench/attention_topk.py                   # --precision auto
    python bench/attention_topk.py --precision fp32

Per pair: the PSNR of the output against the dense one, and the seconds of each (two calls each, alternated).
"""

from __future__ import annotations

import argparse
import time

import torch
from profile_refine import psnr, square  # bench/ is the script's folder

from adaattn_cli import Stylizer
from adaattn_cli import functional as fn

PAIRS = [
    ("bedroom", "vangogh-wheat-field"),
    ("football", "turner-shipwreck"),
    ("flowers", "monet-water-lilies"),
    ("bedroom", "hoitsu-flowers"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    stylizer = Stylizer.load("adaattn", device="cpu", precision=args.precision)
    top_k = fn.SPARSE_TOP_K
    print(f"precision {stylizer.precision}, {torch.get_num_threads()} threads\n")
    print("| content | style | PSNR top-k vs dense | s, top-k | s, dense |")
    print("|---|---|---:|---:|---:|")
    for content_name, style_name in PAIRS:
        content, style = square(f"{content_name}.jpg", 512), square(f"{style_name}.jpg", 512)
        outputs, times = {}, {"top-k": [], "dense": []}
        for name in ["top-k", "dense"] * 2:
            fn.SPARSE_TOP_K = top_k if name == "top-k" else 2**30  # more than any key count: dense
            start = time.perf_counter()
            outputs[name] = stylizer.stylize(content, [stylizer.encode_style(style)])
            times[name].append(time.perf_counter() - start)
        fn.SPARSE_TOP_K = top_k
        psnr_db = psnr(outputs["top-k"], outputs["dense"])
        print(f"| {content_name} | {style_name} | {psnr_db:.1f} dB | {min(times['top-k']):.2f} | {min(times['dense']):.2f} |")


if __name__ == "__main__":
    main()
