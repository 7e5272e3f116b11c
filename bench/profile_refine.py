"""Where the time of `--refine` goes: one table, per part of a refinement step and per level, at one size.

    python bench/profile_refine.py                       # 512x512, --precision auto (what the CLI runs here)
    python bench/profile_refine.py --precision fp32      # the exact path (what AVX2-only CPUs run)

Parts (median of --repeats runs each, after a warm-up, the bundled AdaAttN model and encoder):
  encoder convN_M fwd/bwd   one conv layer (with its ReLU, and the 2x2 max-pool before a block's first conv),
                            forward and the backward to its input, on the real activations of the picture
  step: objective + backward, Adam   one whole optimiser step at this size, and its parts outside the encoder
  level setup               once per level: the photo's features, the local loss's attention targets, resizes
  style targets             once per style and level: the style's features and its sampled positions
  whole refine              Stylizer.stylize(..., refine=N) minus the model's picture (style encoded once)
Sizes are the refinement's levels: full size (its steps over blocks 1 to RefineSettings.full_size_depth; the encoder
rows show every layer) and the coarse level (refine.RefineSettings.coarse_scale).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from adaattn_cli import kernels
from adaattn_cli.api import Stylizer
from adaattn_cli.devices import tune_cpu_for_inference
from adaattn_cli.image_io import load_image, resize

ROOT = Path(__file__).resolve().parents[1]


def timed(call, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two pictures in [0, 1] (300 dB for equal ones)."""
    return 10 * torch.log10(torch.tensor(1 / max(float((a - b).square().mean()), 1e-30))).item()


def square(name: str, size: int) -> torch.Tensor:
    image = load_image(ROOT / "examples" / name).rgb
    side = min(image.shape[-2:])
    return resize(image[:, :side, :side], (size, size))


def encoder_rows(stylizer: Stylizer, picture: torch.Tensor, repeats: int) -> list[tuple[str, float, float]]:
    """(layer, forward s, backward s) of each conv of the encoder on `picture` [1, 3, H, W]."""
    encoder, refiner = stylizer.model.encoder, stylizer.refiner
    rows = []
    with refiner._autocast():
        x = F.conv2d(picture, encoder.input_weight, encoder.input_bias).contiguous(memory_format=torch.channels_last)
        for name, conv in encoder.convs.items():
            pools = int(name[6]) == 1 and int(name[4]) > 1
            source = x.detach().requires_grad_(True)

            def layer(source=source, conv=conv, pools=pools):
                return torch.relu(conv(kernels.max_pool2x2(source) if pools else source))

            output = layer()
            grad = torch.ones_like(output)
            forward = timed(lambda: layer(), repeats)
            backward = timed(lambda: torch.autograd.grad(layer(), source, grad), repeats) - forward
            rows.append((name, forward, backward))
            x = output.detach()
            if name == "conv5_1":
                break
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=50, help="the whole-refine row's --refine N")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    tune_cpu_for_inference()
    stylizer = Stylizer.load("adaattn", device="cpu", precision=args.precision)
    refiner, settings = stylizer.refiner, stylizer.refiner.settings
    content, style_image = square("bedroom.jpg", args.size), square("vangogh-wheat-field.jpg", 512)
    style = stylizer.encode_style(style_image)
    picture = stylizer.stylize(content, style)[None]
    targets = lambda scale: refiner.style_targets(style.image, scale, style.seed)  # noqa: E731
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"precision {stylizer.precision}, {args.size}x{args.size}, repeats {args.repeats}\n"
    )
    print("| part | " + " | ".join(f"{s}x{s} ms" for s in _level_sizes(args.size, settings.coarse_scale)) + " |")
    print("|---|" + "---:|" * 2)
    columns: dict[str, list[float]] = {}
    for side in _level_sizes(args.size, settings.coarse_scale):
        scale = side / args.size
        depth = settings.full_size_depth if side == args.size else 5  # the full-size steps stop at this block
        at_size = F.interpolate(picture, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        photo = F.interpolate(content[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        for name, forward, backward in encoder_rows(stylizer, at_size, args.repeats):
            columns.setdefault(f"encoder {name} fwd", []).append(forward)
            columns.setdefault(f"encoder {name} bwd", []).append(backward)
        columns.setdefault("style targets (once per style and level)", []).append(timed(lambda: targets(scale), args.repeats))
        terms = [(targets, 1.0)]
        columns.setdefault("level setup (photo features, local attention targets)", []).append(
            timed(lambda: refiner.objective(photo, terms, None, scale, depth), args.repeats)
        )
        objective = refiner.objective(photo, terms, None, scale, depth)
        image = at_size.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        optimizer = torch.optim.Adam([image], lr=settings.learning_rate)

        def step():
            optimizer.zero_grad(set_to_none=True)
            objective(image).backward()

        def adam():
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)

        columns.setdefault("step: objective + backward", []).append(timed(step, args.repeats))
        columns.setdefault("step: Adam + clamp", []).append(timed(adam, args.repeats))
    for name, values in columns.items():
        print(f"| {name} | " + " | ".join(f"{1000 * v:.1f}" for v in values) + " |")
    encoder_total = [sum(v[i] for k, v in columns.items() if k.startswith("encoder")) for i in range(2)]
    print("| encoder, all layers fwd + bwd | " + " | ".join(f"{1000 * v:.1f}" for v in encoder_total) + " |")
    whole = timed(lambda: stylizer.stylize(content, style, refine=args.steps), 1) - timed(lambda: stylizer.stylize(content, style), 1)
    print(f"\nwhole --refine {args.steps} (style encoded once, minus the model's picture): {whole:.2f} s")


def _level_sizes(size: int, coarse_scale: float) -> list[int]:
    return [size, round(size * coarse_scale)]


if __name__ == "__main__":
    main()
