"""Make examples/teaser.jpg for the README: rows of content | style | the model's picture | refined picture.

python tools/teaser.py [--model adaattn] [--refine 25] [--out examples/teaser.jpg]
"""

import argparse

import torch
import torch.nn.functional as F

from adaattn_cli.api import Stylizer
from adaattn_cli.image_io import load_image, save_image
from adaattn_cli.weights import load_model

PAIRS = [("bedroom", "vangogh-wheat-field"), ("football", "monet-water-lilies"), ("flowers", "turner-shipwreck")]


def to_height(image: torch.Tensor, height: int) -> torch.Tensor:
    width = round(image.shape[-1] * height / image.shape[-2])
    return F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True)[0].clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="adaattn")
    parser.add_argument("--out", default="examples/teaser.jpg")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--refine", type=int, default=25, help="steps of the refined column (0: no such column)")
    args = parser.parse_args()
    stylizer = Stylizer(load_model(args.model), device="cpu")
    rows = []
    for content_name, style_name in PAIRS:
        content = load_image(f"examples/{content_name}.jpg").rgb
        style = load_image(f"examples/{style_name}.jpg").rgb
        encoded = stylizer.encode_style(style)
        result = stylizer.stylize(content, [encoded])
        refined = [stylizer.refine(content, result, [encoded], steps=args.refine)] if args.refine else []
        rows.append(torch.cat([to_height(t, args.height) for t in (content, style, result, *refined)], dim=-1))
    width = max(row.shape[-1] for row in rows)
    sheet = torch.ones(3, args.height * len(rows), width)
    for index, row in enumerate(rows):
        sheet[:, index * args.height : (index + 1) * args.height, : row.shape[-1]] = row
    save_image(args.out, sheet, overwrite=True, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
