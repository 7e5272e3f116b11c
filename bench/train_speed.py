"""Training-step speed per method: a plain fp32 step beside the fast step the trainer uses with
`--precision bf16` (bf16 autocast for convs, channels_last tensors; attention stays fp32), in one run.

    python bench/train_speed.py                       # crop 256, batch 1 and 4, all methods
    python bench/train_speed.py --methods adaattn --batches 1 --steps 5 --local-layers 3 4 5

Each cell is the median time of `--steps` optimiser steps after one warm-up step, on random images
(data loading is not timed: the loader runs in parallel workers during training). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from adaattn_cli.losses import LossConfig, training_losses
from adaattn_cli.models import build_model
from adaattn_cli.weights import load_encoder


def time_steps(model, config: LossConfig, batch: dict, *, precision: str, steps: int) -> float:
    memory_format = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model.to(memory_format=memory_format)
    batch = {k: v.contiguous(memory_format=memory_format) for k, v in batch.items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses, _ = training_losses(model, batch, config, torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        if step:  # the first step warms up allocators and oneDNN kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["adaattn", "adaattn-video", "adain", "sanet"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--local-layers", type=int, nargs="+", help="AdaAttN local-loss layers (default: the recipe's 2 3 4 5)")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = load_encoder()
    print(
        f"`{' '.join(['python'] + sys.argv)}` — torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| method | batch | plain fp32 s/step | fast (bf16, NHWC) s/step | speed-up | fast images/s |")
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        model = build_model(method, encoder).train()
        config = LossConfig.for_method(method)
        if args.local_layers and config.local:
            config.local_layers = tuple(args.local_layers)
        for batch_size in args.batches:
            generator = torch.Generator().manual_seed(batch_size)
            batch = {k: torch.rand(batch_size, 3, args.crop, args.crop, generator=generator) for k in ("content", "style")}
            if method == "adaattn-video":
                batch["content2"] = batch["content"].roll(4, dims=-1)
            fp32 = time_steps(model, config, batch, precision="fp32", steps=args.steps)
            bf16 = time_steps(model, config, batch, precision="bf16", steps=args.steps)
            print(f"| {method} | {batch_size} | {fp32:.2f} | {bf16:.2f} | {fp32 / bf16:.2f}x | {batch_size / bf16:.2f} |", flush=True)


if __name__ == "__main__":
    main()
