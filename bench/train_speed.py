"""Training-step speed per method: a plain fp32 step beside the fast step the trainer uses with
`--precision bf16` (bf16 autocast for convs, channels_last tensors; attention stays fp32), in one run.

    python bench/train_speed.py                       # crop 256, batch 1 and 4, all methods
    python bench/train_speed.py --methods adaattn --batches 1 --steps 5 --local-layers 3 4 5
    python bench/train_speed.py --nproc 2 --methods adaattn --batches 4   # torchrun: 2 processes x 1 thread
                                                                          # beside 1 process x 2 threads

Each cell is the median time of `--steps` optimiser steps after one warm-up step, on random images
(data loading is not timed: the loader runs in parallel workers during training). Prints a markdown table.

With --nproc N the step is the trainer's (training.StepLosses, DistributedDataParallel across processes,
bf16 where `--precision auto` picks it) and the batch is the global one, split over the processes; each
setup runs in its own processes, started by torchrun, rotated `--rounds` times. With CUDA the processes
take one GPU each and the comparison is N GPUs against one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from adaattn_cli import distributed
from adaattn_cli.devices import pick_device, resolve_precision
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


def _random_batch(method: str, size: int, crop: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(size, 3, crop, crop, generator=generator) for k in ("content", "style")}
    if method == "adaattn-video":
        batch["content2"] = batch["content"].roll(4, dims=-1)
    return batch


def distributed_worker(args) -> None:
    """One process of a --nproc measurement (run by torchrun, or alone): seconds per step of the trainer's step."""
    from adaattn_cli.training import StepLosses

    world = distributed.current_world()
    device = distributed.rank_device(pick_device("auto"), world)
    distributed.join(world, device)
    precision = resolve_precision("auto", device)
    torch.manual_seed(0)
    model = build_model(args.methods[0], load_encoder()).to(device, memory_format=torch.channels_last).train()
    step = StepLosses(model, LossConfig.for_method(args.methods[0]))
    if world.size > 1:
        step = torch.nn.parallel.DistributedDataParallel(step, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = _random_batch(args.methods[0], args.batches[0] // world.size, args.crop, world.rank)
    batch = {k: v.to(device, memory_format=torch.channels_last) for k, v in batch.items()}
    times = []
    for index in range(args.steps + 1):
        distributed.wait_for_all(world)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = step(batch, torch.Generator().manual_seed(index))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    seconds = distributed.sum_over_processes([statistics.median(times)], world)[0] / world.size
    if world.is_main:
        print("RESULT " + json.dumps({"seconds": seconds, "device": str(device), "precision": precision}), flush=True)


def compare_processes(args) -> None:
    """N processes x 1 thread (torchrun) beside 1 process x N threads, each in fresh processes, rotated."""
    nproc, method, batch = args.nproc, args.methods[0], args.batches[0]
    if batch % nproc:
        raise SystemExit(f"--batches {batch}: the global batch must split evenly over --nproc {nproc} processes")
    worker = [
        str(Path(__file__).resolve()),
        "--worker",
        "--methods",
        method,
        "--batches",
        str(batch),
        "--crop",
        str(args.crop),
        "--steps",
        str(args.steps),
    ]
    setups = {
        f"1 process x {nproc} threads": ([sys.executable, *worker], {"OMP_NUM_THREADS": str(nproc)}),
        f"{nproc} processes x 1 thread": (
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *worker],
            {"OMP_NUM_THREADS": "1"},
        ),
    }
    if torch.cuda.is_available():
        setups = {"1 GPU": setups[f"1 process x {nproc} threads"], f"{nproc} GPUs": setups[f"{nproc} processes x 1 thread"]}
    results: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, (command, env) in setups.items():
            run = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
            line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{name} failed:\n{run.stderr[-3000:]}")
            result = json.loads(line[len("RESULT ") :])
            results[name].append(result["seconds"])
    print(
        f"`{' '.join(['python'] + sys.argv)}` — torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, {result['device']} {result['precision']}, {args.rounds} rounds\n"
    )
    print(f"| {method}, batch {batch} (global), crop {args.crop} | s/step (median of rounds) | samples/s | vs first row |")
    print("|---|---|---|---|")
    base = None
    for name, seconds in results.items():
        median = statistics.median(seconds)
        base = base or median
        print(f"| {name} | {median:.2f} | {batch / median:.2f} | {base / median:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["adaattn", "adaattn-video", "adain", "sanet"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--local-layers", type=int, nargs="+", help="AdaAttN local-loss layers (default: the recipe's 2 3 4 5)")
    parser.add_argument(
        "--nproc", type=int, help="compare N torchrun processes with one process of N threads (first method and batch; the batch is global)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --nproc: runs of each setup, rotated")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return distributed_worker(args)
    if args.nproc:
        return compare_processes(args)
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
