"""Validation metrics of trained models on held-out content/style pairs, plus a contact sheet.

    python bench/quality.py --model adaattn --model adain --pairs 40 --sheet quality.png

The held-out images are the ones `adaattn train` keeps out of training (same deterministic split, so run it
with the same folders). Per model, means over the pairs, measured with the bundled HED encoder:
  style    global mean/std loss over relu1_1..relu5_1 (lower = closer to the style's statistics)
  content  MSE of the normalised relu4_1 and relu5_1 features vs the content's (lower = structure kept)
  local    AdaAttN's local feature loss over relu3_1..relu5_1 (lower = each region gets matching style)
"""

from __future__ import annotations

import argparse
import sys

import torch

from adaattn_cli.api import Stylizer
from adaattn_cli.data import find_images
from adaattn_cli.image_io import load_image, resize_max_side, save_image
from adaattn_cli.losses import global_style_loss, local_feature_loss, normalised_content_loss
from adaattn_cli.training import split_holdout
from adaattn_cli.weights import load_encoder, load_model


def held_out_pairs(content_folder: str, style_folder: str, count: int):
    contents = split_holdout(find_images(content_folder)[0], -1)[1]
    styles = split_holdout(find_images(style_folder)[0], -1)[1]
    return list(zip(contents, styles))[:count]


@torch.inference_mode()
def metrics(encoder, content: torch.Tensor, style: torch.Tensor, output: torch.Tensor) -> dict[str, float]:
    content_feats, style_feats, output_feats = (encoder(x[None], 5) for x in (content, style, output))
    generator = torch.Generator().manual_seed(0)
    return {
        "style": float(global_style_loss(output_feats, style_feats, (1, 2, 3, 4, 5))),
        "content": float(normalised_content_loss(output_feats, content_feats, (4, 5))),
        "local": float(local_feature_loss(output_feats, content_feats, style_feats, (3, 4, 5), generator=generator)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="model file or name (repeat)")
    parser.add_argument("--content", default="../shared/data/train/content")
    parser.add_argument("--style", default="../shared/data/train/style")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--size", type=int, default=512, help="longer side of content and style")
    parser.add_argument("--sheet", help="write a contact sheet (content | style | each model) of the first pairs here")
    parser.add_argument("--sheet-rows", type=int, default=6)
    parser.add_argument("--precision", default="auto", help="auto (as the CLI), bf16 or fp32")
    args = parser.parse_args()
    encoder = load_encoder()
    stylizers = {name: Stylizer(load_model(name), precision=args.precision, style_positions=4096) for name in args.model}
    pairs = held_out_pairs(args.content, args.style, args.pairs)
    totals = {name: {"style": 0.0, "content": 0.0, "local": 0.0} for name in stylizers}
    rows = []
    for index, (content_path, style_path) in enumerate(pairs):
        content = resize_max_side(load_image(content_path).rgb, args.size)
        style = resize_max_side(load_image(style_path).rgb, args.size)
        outputs = []
        for name, stylizer in stylizers.items():
            output = stylizer.stylize(content, [style])
            outputs.append(output)
            for key, value in metrics(encoder, content, style, output).items():
                totals[name][key] += value / len(pairs)
        if args.sheet and index < args.sheet_rows:
            height = 256
            tiles = [content, style, *outputs]
            tiles = [torch.nn.functional.interpolate(t[None], size=(height, round(t.shape[-1] * height / t.shape[-2])), mode="bilinear", antialias=True)[0] for t in tiles]
            rows.append(tiles)
    print(f"`{' '.join(['python'] + sys.argv)}` — {len(pairs)} held-out pairs, longer side {args.size}\n")
    print("| model | style loss | content loss | local loss |")
    print("|---|---|---|---|")
    for name, values in totals.items():
        print(f"| {name} | {values['style']:.2f} | {values['content']:.3f} | {values['local']:.2f} |")
    if args.sheet and rows:
        width = max(sum(t.shape[-1] for t in row) for row in rows)
        sheet = torch.ones(3, 256 * len(rows), width)
        for r, row in enumerate(rows):
            x = 0
            for tile in row:
                sheet[:, r * 256 : (r + 1) * 256, x : x + tile.shape[-1]] = tile.clamp(0, 1)
                x += tile.shape[-1]
        save_image(args.sheet, sheet, overwrite=True)
        print(f"\ncontact sheet: {args.sheet} (columns: content, style, {', '.join(stylizers)})")


if __name__ == "__main__":
    main()
