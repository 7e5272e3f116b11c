"""Temporal stability vs. style strength of several models on one clip; prints a markdown table.

    python bench/temporal.py ../shared/data/video/bikes.mp4 --style examples/vangogh-wheat-field.jpg \
        --method adaattn-video --method adaattn --max-frames 60 --size 256

Each model stylises the first --max-frames frames independently (style encoded once, as `adaattn video` does);
a second row per model runs the same frames through `adaattn video`'s --hold filter (video_filters.StaticHold).
--refine N adds rows with `adaattn video --refine N` (video_filters.FrameRefiner, before the hold), with seconds per
frame.
Warping error (lower = steadier): adaattn_cli.video_metrics.warping_error, flow from the input frames. Style loss
(lower = more style): global mean/std loss of the frames against the style with the bundled encoder (--per-layer:
also its relu1_1..relu5_1 terms, which say at which scale a model misses the style). The input
clip's own row is the floor the flow allows. Needs OpenCV: pip install opencv-python-headless.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time

import numpy as np
import torch

from adaattn_cli.api import Stylizer
from adaattn_cli.config import HOLD_THRESHOLD, STYLE_SIZE
from adaattn_cli.devices import tune_cpu_for_inference
from adaattn_cli.image_io import load_resized
from adaattn_cli.video import PALETTES, check_palette, fit_frame_size, fit_palette, stylize_frames
from adaattn_cli.video_filters import FrameRefiner, StaticHold
from adaattn_cli.video_io import probe, read_frames
from adaattn_cli.video_metrics import STYLE_LAYERS, style_loss_by_layer, warping_error
from adaattn_cli.weights import load_encoder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--style", "-s", required=True)
    # Both fill one list, in the order given; the first model is the reference of the ratios.
    parser.add_argument("--method", action="append", dest="models", help="bundled model name (repeatable)")
    parser.add_argument("--model", action="append", dest="models", help="model file (repeatable)")
    parser.add_argument("--max-frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=256, help="shorter side of the frames (0 = as is)")
    parser.add_argument("--style-size", type=int, default=STYLE_SIZE)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="fp32 (exact, the default here) or as `adaattn video` runs (auto: bf16 where faster)",
    )
    parser.add_argument(
        "--style-positions",
        type=int,
        default=None,
        metavar="N",
        help="cap on the style positions per block (0 = all); default: the method's, as `adaattn video` (1024 for adaattn-video)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-layer", action="store_true", help="also the style loss's relu1_1..relu5_1 terms")
    parser.add_argument(
        "--palette",
        choices=PALETTES,
        default=None,
        help="palette of the frames (`adaattn video --palette`); default: the model's, as `adaattn video`",
    )
    parser.add_argument(
        "--refine", type=int, action="append", default=[], metavar="N", help="also rows with `adaattn video --refine N` (repeatable)"
    )
    parser.add_argument(
        "--hold", type=float, default=HOLD_THRESHOLD, help="threshold of the held rows (`adaattn video --hold`; 0 = no held rows)"
    )
    args = parser.parse_args(argv)
    tune_cpu_for_inference()  # as `adaattn video` does
    models = args.models or ["adaattn-video", "adaattn"]

    size = fit_frame_size(probe(args.clip).size, size=args.size or None, max_size=None)
    frames = list(itertools.islice(read_frames(args.clip, size=size), args.max_frames))
    style = load_resized(args.style, size=args.style_size or None).rgb
    encoder = load_encoder()
    rows = []
    for name in models:
        stylizer = Stylizer.load(name, device=args.device, precision=args.precision, style_positions=args.style_positions)
        encoded = stylizer.encode_style(style, seed=args.seed)
        recolour = None
        palette = check_palette(args.palette, stylizer.model.method)
        if palette != "own":
            recolour = fit_palette(stylizer, frames, encoded, alpha=args.alpha, seed=args.seed, target=palette)
            name += f" (palette: {palette})"
        for steps in [0, *args.refine]:
            refiner = (
                FrameRefiner(stylizer, encoded, steps=steps, threshold=args.hold or HOLD_THRESHOLD, alpha=args.alpha, seed=args.seed)
                if steps
                else None
            )
            outputs, began = [], time.perf_counter()
            for start in range(0, len(frames), args.batch):
                chunk = frames[start : start + args.batch]
                outputs += list(
                    stylize_frames(stylizer, chunk, encoded, alpha=args.alpha, seed=args.seed, recolour=recolour, refine=refiner)
                )
            seconds = (time.perf_counter() - began) / len(frames)
            label = f"{name} --refine {steps}" if steps else name
            rows.append((label, warping_error(frames, outputs), style_loss_by_layer(outputs, style, encoder), seconds))
            if args.hold and not steps:  # `adaattn video --refine` keeps still pixels itself, with no hold after it
                held = _hold(frames, outputs, args.hold)
                rows.append(
                    (f"{label} + hold {args.hold:g}", warping_error(frames, held), style_loss_by_layer(held, style, encoder), seconds)
                )
    rows.append(("(input clip)", warping_error(frames, frames), style_loss_by_layer(frames, style, encoder), 0.0))

    print(
        f"`python bench/temporal.py {shlex.join(sys.argv[1:] if argv is None else argv)}`: "
        f"{len(frames)} frames of {size[0]}x{size[1]}, torch {torch.__version__}\n"
    )
    layers = [f"relu{layer}_1" for layer in STYLE_LAYERS] if args.per_layer else []
    print("| model | warping error | × first | style loss | × first | s/frame |" + "".join(f" {name} |" for name in layers))
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(layers))
    first_error, first_loss = rows[0][1], sum(rows[0][2])
    for name, error, terms, seconds in rows:
        loss = sum(terms)
        cells = "".join(f" {term:.4g} |" for term in terms) if layers else ""
        print(f"| {name} | {error:.4f} | {_ratio(error, first_error)} | {loss:.4g} | {_ratio(loss, first_loss)} | {seconds:.2f} |" + cells)


def _hold(frames, outputs, threshold: float):
    """The stylised frames as `adaattn video --hold` writes them, uint8 in and out (the CLI holds the frames
    before they are rounded to 8 bits: within half a level of this)."""

    def tensor(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)

    held = StaticHold(threshold)(tensor(frames), tensor(outputs))
    return list(held.mul(255).round_().byte().permute(0, 2, 3, 1).numpy())


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference else "n/a"


if __name__ == "__main__":
    main()
