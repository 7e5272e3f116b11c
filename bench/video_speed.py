"""Video throughput: frames per second of `adaattn video`'s pipeline at 512x288, plain fp32 beside fast, in one run.

    python bench/video_speed.py                                   # cutBunny.mp4 at 512x288, 48 frames
    python bench/video_speed.py CLIP --size 288 --frames 96 --models adaattn-video adaattn

Per model and precision: "stylise" = frames/s of the model alone (frames decoded beforehand, style encoded
once, batches of --batch as the CLI does); "end to end" = decode + stylise + H.264 encode to a temporary file
(what `adaattn video` does, without audio). adaattn-video runs with its default palette (the painting's: fitted
once on the first frame, "palette fit" seconds, then a low-frequency recolouring of every frame); every model
runs with `adaattn video`'s default --hold (video_filters.StaticHold). fast = `adaattn video`'s default on this CPU (bf16, style
positions capped at 1024); fp32 = `--precision fp32 --style-positions 0` (the model's own caps). A model that is not
installed is built with random weights (the
time does not depend on the weights' values); the table says so.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from adaattn_cli.api import Stylizer
from adaattn_cli.config import DEFAULT_STYLE_POSITIONS, HOLD_THRESHOLD, STYLE_SIZE, VIDEO_STYLE_POSITIONS
from adaattn_cli.devices import tune_cpu_for_inference
from adaattn_cli.errors import WeightsError
from adaattn_cli.image_io import load_resized
from adaattn_cli.models import build_model
from adaattn_cli.video import default_palette, fit_frame_size, fit_palette, stylize_frames
from adaattn_cli.video_filters import StaticHold
from adaattn_cli.video_io import VideoWriter, probe, read_frames
from adaattn_cli.weights import load_encoder, load_model

ROOT = Path(__file__).resolve().parents[1]


def model_or_random(name: str):
    """A model name or file; a method whose model is not installed gets random weights (same time)."""
    try:
        return load_model(name), "trained"
    except WeightsError:
        return build_model(name, load_encoder()), "random weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", default=str(ROOT.parent / "shared/data/video/cutBunny.mp4"))
    parser.add_argument("--style", default=str(ROOT / "examples/vangogh-wheat-field.jpg"))
    parser.add_argument("--size", type=int, default=288, help="shorter side of the frames")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=1, help="frames per forward pass (the CLI: 1 on a CPU)")
    parser.add_argument("--models", nargs="+", default=["adaattn-video", "adaattn"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    parser.add_argument("--style-positions", type=int, default=VIDEO_STYLE_POSITIONS, help="cap of the fast runs (0 = all)")
    args = parser.parse_args()
    tune_cpu_for_inference()  # as the CLI does

    info = probe(args.clip)
    size = fit_frame_size(info.size, size=args.size, max_size=None)
    frames = list(itertools.islice(read_frames(args.clip, size=size), args.frames))
    style = load_resized(args.style, size=STYLE_SIZE).rgb
    print(
        f"`python bench/video_speed.py {shlex.join(sys.argv[1:])}`: {len(frames)} frames of {size[0]}x{size[1]}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| model | weights | precision | stylise frames/s | end to end frames/s | palette fit s |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models:
        for precision in args.precisions:
            model, origin = model_or_random(name)
            fast = precision == "fast"
            positions = args.style_positions if fast else DEFAULT_STYLE_POSITIONS  # exact: the video model's own cap
            stylizer = Stylizer.load(model, device="cpu", precision="auto" if fast else "fp32", style_positions=positions)
            encoded = stylizer.encode_style(style)
            stylize_frames(stylizer, frames[: args.batch], encoded, alpha=1.0, seed=0)  # warm-up
            recolour, fit_time = None, float("nan")
            palette = default_palette(model.method)  # as `adaattn video` does by default
            if palette != "own":
                start = time.perf_counter()
                recolour = fit_palette(stylizer, frames, encoded, alpha=1.0, seed=0, target=palette)
                fit_time = time.perf_counter() - start
            start, hold = time.perf_counter(), StaticHold(HOLD_THRESHOLD)
            for i in range(0, len(frames), args.batch):
                stylize_frames(stylizer, frames[i : i + args.batch], encoded, alpha=1.0, seed=0, recolour=recolour, hold=hold)
            model_fps = len(frames) / (time.perf_counter() - start)
            with tempfile.TemporaryDirectory() as tmp:
                start, hold = time.perf_counter(), StaticHold(HOLD_THRESHOLD)
                source = itertools.islice(read_frames(args.clip, size=size), args.frames)
                with VideoWriter(Path(tmp) / "out.mp4", fps=info.fps, size=size) as writer:
                    while chunk := list(itertools.islice(source, args.batch)):
                        for frame in stylize_frames(stylizer, chunk, encoded, alpha=1.0, seed=0, recolour=recolour, hold=hold):
                            writer.write(frame)
                pipeline_fps = len(frames) / (time.perf_counter() - start)
            label = f"{precision} ({stylizer.precision})" if fast else precision
            print(f"| {name} | {origin} | {label} | {model_fps:.2f} | {pipeline_fps:.2f} | {fit_time:.2f} |", flush=True)


if __name__ == "__main__":
    main()
