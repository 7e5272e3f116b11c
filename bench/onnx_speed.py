"""The exported ONNX graph on onnxruntime (CPU) beside ours, side by side in one process.

    python bench/onnx_speed.py                                  # 512², 3 rounds, exports to a temporary folder
    python bench/onnx_speed.py --onnx /tmp/adaattn.onnx --baked /tmp/adaattn_wheat.onnx --rounds 5

Variants (bundled AdaAttN by default; content bedroom.jpg, style vangogh-wheat-field.jpg, both centre-cropped
square and resized to --size):
  onnxruntime          the two-input graph of `adaattn export` (fp32, every style position), CPU execution provider,
                       as many intra-op threads as torch uses
  ours fp32, all       adaattn_cli.api.Stylizer, precision fp32, every style position: the graph's maths
  onnxruntime baked    the graph of `adaattn export --style` (its default: 4,096 style positions per block, seed 0,
                       stored in the graph): comparable with "style encoded once"
  ours fp32, 4096      Stylizer, precision fp32, 4,096 style positions (seed 0): the baked graph's maths
  ours auto, 4096      Stylizer as `adaattn stylize` runs by default (precision auto: bf16 on CPUs with
                       avx512_bf16/AMX; 4,096 style positions, seed 0)
Every round runs each variant cold (style encoded inside the timed call) and with the style encoded before the
call, in an order rotated each round, after one untimed warm-up call of each; the table gives the medians over
rounds. Max abs diff and PSNR compare each output with ours in fp32 with the same style positions. Exports (not
timed) go to a temporary folder unless --onnx / --baked name existing files.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from stylize_speed import compare, square_image  # bench/ is on sys.path: this file runs as a script

ROOT = Path(__file__).resolve().parents[1]


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def variants(args, tmp: Path, content: torch.Tensor, style: torch.Tensor) -> dict:
    """name -> (cold call or None, warm call or None, baseline name); every call returns [1, 3, H, W] float."""
    from adaattn_cli.api import DEFAULT_STYLE_POSITIONS, Stylizer
    from adaattn_cli.devices import resolve_precision
    from adaattn_cli.export import export_onnx

    threads, cap = torch.get_num_threads(), DEFAULT_STYLE_POSITIONS
    onnx_path = Path(args.onnx) if args.onnx else tmp / "model.onnx"
    if not onnx_path.exists():
        export_onnx(args.model, onnx_path)
    baked_path = Path(args.baked) if args.baked else tmp / "baked.onnx"
    if not baked_path.exists():
        export_onnx(args.model, baked_path, style=style[0], style_name="vangogh-wheat-field.jpg", style_positions=cap, seed=0)
    session, baked = ort_session(onnx_path, threads), ort_session(baked_path, threads)
    feeds = {"content": content.numpy(), "style": style.numpy()}

    def ours(precision: str, positions: int):
        stylizer = Stylizer.load(args.model, device="cpu", precision=precision, style_positions=positions)
        encoded = stylizer.encode_style(style[0], seed=0)
        return (
            lambda: stylizer.stylize(content[0], [stylizer.encode_style(style[0], seed=0)])[None],
            lambda: stylizer.stylize(content[0], [encoded])[None],
        )

    return {
        "onnxruntime, all positions": (lambda: torch.from_numpy(session.run(None, feeds)[0]), None, "ours fp32, all positions"),
        "ours fp32, all positions": (*ours("fp32", 0), "ours fp32, all positions"),
        f"onnxruntime baked, {cap}": (
            None,
            lambda: torch.from_numpy(baked.run(None, {"content": feeds["content"]})[0]),
            f"ours fp32, {cap}",
        ),
        f"ours fp32, {cap}": (*ours("fp32", cap), f"ours fp32, {cap}"),
        f"ours auto ({resolve_precision('auto', torch.device('cpu'))}), {cap}": (*ours("auto", cap), f"ours fp32, {cap}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="content and style side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="adaattn")
    parser.add_argument("--onnx", help="two-input graph to use (exported here if the file is missing)")
    parser.add_argument("--baked", help="baked-style graph to use (exported here with 4,096 positions if the file is missing)")
    args = parser.parse_args()
    from adaattn_cli.devices import tune_cpu_for_inference

    tune_cpu_for_inference()
    import onnxruntime as ort

    content = square_image(ROOT / "examples/bedroom.jpg", args.size)
    style = square_image(ROOT / "examples/vangogh-wheat-field.jpg", args.size)
    with tempfile.TemporaryDirectory() as tmp:
        calls = variants(args, Path(tmp), content, style)
        times = {name: {"cold": [], "warm": []} for name in calls}
        outputs = {}
        for name, (cold, warm, _) in calls.items():  # warm-up: allocators, kernel selection, onnxruntime's planning
            outputs[name] = (cold or warm)().float()
        names = list(calls)
        for round_index in range(args.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                for kind, call in zip(("cold", "warm"), calls[name][:2]):
                    if call is not None:
                        start = time.perf_counter()
                        outputs[name] = call().float()
                        times[name][kind].append(time.perf_counter() - start)

    print(
        f"`{' '.join(['python'] + sys.argv)}` — torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.machine()}, {os.cpu_count()} CPUs, {args.rounds} rounds\n"
    )
    print("| content | style | variant | s/image | s/image, style encoded once | max abs diff | PSNR dB | vs |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    median = lambda values: f"{statistics.median(values):.2f}" if values else "—"  # noqa: E731
    for name, (_, _, baseline) in calls.items():
        diff, psnr = compare(outputs[name], outputs[baseline])
        print(
            f"| {args.size}² | {args.size}² | {name} | {median(times[name]['cold'])} | {median(times[name]['warm'])} | "
            f"{diff:.5f} | {psnr:.1f} | {baseline} |"
        )
    print()
    for name in names:
        rounds = "; ".join(f"{kind} " + ", ".join(f"{t:.2f}" for t in values) for kind, values in times[name].items() if values)
        print(f"- {name}: {rounds} s per round")


if __name__ == "__main__":
    main()
