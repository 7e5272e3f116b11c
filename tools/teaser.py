"""Make examples/teaser.jpg for the README: rows of content | style | the model's picture | refined picture.

python tools/teaser.py [--model adaattn] [--refine 50] [--out examples/teaser.jpg]

Every picture fills a square cell (cropped, centred): the photos are landscape and portrait, the paintings
landscape, and cells of one shape keep the rows and columns aligned.
"""

import argparse

from adaattn_cli.api import Stylizer
from adaattn_cli.image_io import grid_sheet, load_image, save_image

PAIRS = [("bedroom", "vangogh-wheat-field"), ("football", "monet-water-lilies"), ("flowers", "turner-shipwreck")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="adaattn")
    parser.add_argument("--out", default="examples/teaser.jpg")
    parser.add_argument("--cell", type=int, default=240, help="side of each square picture, px")
    parser.add_argument("--refine", type=int, default=50, help="--refine N of the refined column (0: no such column)")
    args = parser.parse_args()
    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    rows = []
    for content_name, style_name in PAIRS:
        content = load_image(f"examples/{content_name}.jpg").rgb
        style = load_image(f"examples/{style_name}.jpg").rgb
        encoded = stylizer.encode_style(style)
        result = stylizer.stylize(content, [encoded])
        refined = [stylizer.refine(content, result, [encoded], steps=args.refine)] if args.refine else []
        rows.append([content, style, result, *refined])
    save_image(args.out, grid_sheet(rows, (args.cell, args.cell)), overwrite=True, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
