"""Validation metrics of trained models on held-out content/style pairs, plus a contact sheet.

    python bench/quality.py --model adaattn --model adain --pairs 40 --sheet quality.png
    python bench/quality.py --model adaattn --refine 10 --refine 25 --refine 50 --pairs 8 --sheet refine.jpg

The held-out images are the ones `adaattn train` keeps out of training (same deterministic split, so run it
with the same folders). Per model, means over the pairs, measured with the bundled HED encoder:
  style    global mean/std loss over relu1_1..relu5_1 (lower = closer to the style's statistics)
  content  MSE of the normalised relu4_1 and relu5_1 features vs the content's (lower = structure kept)
  local    AdaAttN's local feature loss over relu3_1..relu5_1 (lower = each region gets matching style)
  gram     Gram-matrix style loss over relu1_1..relu5_1: a statistic that neither training nor `--refine`
           optimises, the guard against gains that exist only in the optimised numbers
  s/image  seconds per picture with the model loaded and the style encoded (refinement targets included)
--refine N (repeatable) adds a row per model and N: the model's picture refined for N steps (Stylizer.refine).
--own-colours adds the rows of each model's own colours (`--no-match-color`) before the default's.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from adaattn_cli.api import Stylizer
from adaattn_cli.data import find_images, split_holdout
from adaattn_cli.image_io import grid_sheet, load_image, resize_max_side, save_image
from adaattn_cli.losses import global_style_loss, local_feature_loss, normalised_content_loss
from adaattn_cli.weights import load_encoder


def held_out_pairs(content_folder: str, style_folder: str, count: int):
    contents = split_holdout(find_images(content_folder)[0], -1)[1]
    styles = split_holdout(find_images(style_folder)[0], -1)[1]
    return list(zip(contents, styles))[:count]


def gram_style_loss(output: list[torch.Tensor], style: list[torch.Tensor]) -> torch.Tensor:
    """sum over layers of MSE(G(out), G(style)), G = F F^T / positions (Gatys et al.)."""

    def gram(features: torch.Tensor) -> torch.Tensor:
        flat = features.flatten(2)
        return flat @ flat.transpose(1, 2) / flat.shape[-1]

    return sum(torch.nn.functional.mse_loss(gram(o), gram(s)) for o, s in zip(output, style))


@torch.inference_mode()
def metrics(encoder, content: torch.Tensor, style: torch.Tensor, output: torch.Tensor) -> dict[str, float]:
    content_feats, style_feats, output_feats = (encoder(x[None], 5) for x in (content, style, output))
    generator = torch.Generator().manual_seed(0)
    return {
        "style": float(global_style_loss(output_feats, style_feats, (1, 2, 3, 4, 5))),
        "content": float(normalised_content_loss(output_feats, content_feats, (4, 5))),
        "local": float(local_feature_loss(output_feats, content_feats, style_feats, (3, 4, 5), generator=generator)),
        "gram": float(gram_style_loss(output_feats, style_feats)),
    }


def _label(name: str, match: bool, steps: int) -> str:
    return name + ("" if match else " --no-match-color") + (f" --refine {steps}" if steps else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="model file or name (repeat)")
    parser.add_argument("--content", default="../shared/data/train/content")
    parser.add_argument("--style", default="../shared/data/train/style")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--size", type=int, default=512, help="longer side of content and style")
    parser.add_argument("--sheet", help="write a contact sheet (content | style | each model) of the first pairs here")
    parser.add_argument("--sheet-rows", type=int, default=6)
    parser.add_argument("--sheet-cell", type=int, default=256, help="side of each square picture of the sheet, px")
    parser.add_argument("--precision", default="auto", help="auto (as the CLI), bf16 or fp32")
    parser.add_argument(
        "--refine",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="also refine each model's picture for N steps (repeat for several N)",
    )
    parser.add_argument("--own-colours", action="store_true", help="also rows with the models' own colours (--no-match-color)")
    args = parser.parse_args()
    encoder = load_encoder()
    matches = [False, True] if args.own_colours else [True]
    stylizers = {name: Stylizer.load(name, device="cpu", precision=args.precision) for name in args.model}
    pairs = held_out_pairs(args.content, args.style, args.pairs)
    row_names = [(name, match, steps) for name in stylizers for match in matches for steps in [0, *args.refine]]
    totals = {row: {"style": 0.0, "content": 0.0, "local": 0.0, "gram": 0.0, "seconds": 0.0} for row in row_names}
    rows = []
    for index, (content_path, style_path) in enumerate(pairs):
        content = resize_max_side(load_image(content_path).rgb, args.size)
        style = resize_max_side(load_image(style_path).rgb, args.size)
        outputs = []
        for (name, stylizer), match in ((item, match) for item in stylizers.items() for match in matches):
            encoded = stylizer.encode_style(style)
            start = time.perf_counter()
            picture = stylizer.stylize(content, [encoded], match_color=match)
            model_seconds = time.perf_counter() - start
            for steps in [0, *args.refine]:
                encoded.refine_targets.clear()  # every row pays for its refinement targets
                start = time.perf_counter()
                output = stylizer.refine(content, picture, [encoded], steps=steps) if steps else picture
                totals[name, match, steps]["seconds"] += (model_seconds + time.perf_counter() - start) / len(pairs)
                outputs.append(output)
                for key, value in metrics(encoder, content, style, output).items():
                    totals[name, match, steps][key] += value / len(pairs)
        if args.sheet and index < args.sheet_rows:
            rows.append([content, style, *outputs])
    print(f"`{' '.join(['python'] + sys.argv)}` — {len(pairs)} held-out pairs, longer side {args.size}\n")
    print("| model | style loss | content loss | local loss | Gram style loss | s/image |")
    print("|---|---|---|---|---|---|")
    for row, values in totals.items():
        label = _label(*row)
        print(
            f"| {label} | {values['style']:.2f} | {values['content']:.3f} | {values['local']:.2f} | "
            f"{values['gram']:.4g} | {values['seconds']:.1f} |"
        )
    if args.sheet and rows:
        # square cells, each picture cropped to fill its own: landscape and portrait pairs line up in columns
        save_image(args.sheet, grid_sheet(rows, (args.sheet_cell, args.sheet_cell)), overwrite=True, quality=90)
        columns = [_label(*row) for row in row_names]
        print(f"\ncontact sheet: {args.sheet} (columns: content, style, {', '.join(columns)})")


if __name__ == "__main__":
    main()
