"""Where a model's style loss is, against `--refine`'s: per layer, the channel means' and stds' share of it.

    python bench/style_gap.py --model adaattn --pairs 12 --refine 50

On held-out pairs (bench/quality.py's), the global style loss of the model's picture, of that picture refined,
and of the model's picture with its RGB channel means moved to the painting's: one row each, the loss per layer
split into its mean and std terms, and the content and Gram losses. The last row is a yardstick, not a method: it
says how much of the gap is the picture's overall colour.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from quality import gram_style_loss, held_out_pairs

from adaattn_cli import functional as fn
from adaattn_cli.api import Stylizer
from adaattn_cli.image_io import load_image, resize_max_side
from adaattn_cli.losses import normalised_content_loss
from adaattn_cli.weights import load_encoder

LAYERS = (1, 2, 3, 4, 5)


def with_style_colour(picture: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The picture with each RGB channel's mean moved to the style's (stylize's colour step)."""
    return fn.match_mean_colour(picture[None], [(fn.mean_colour(style), 1.0)])[0]


@torch.inference_mode()
def terms(encoder, content: torch.Tensor, style: torch.Tensor, picture: torch.Tensor) -> list[float]:
    """[mean term, std term] per layer, then content and Gram losses."""
    content_feats, style_feats, feats = (encoder(x[None], 5) for x in (content, style, picture))
    row = []
    for layer in LAYERS:
        (mean, std), (style_mean, style_std) = fn.mean_std(feats[layer - 1]), fn.mean_std(style_feats[layer - 1])
        row += [float(F.mse_loss(mean, style_mean)), float(F.mse_loss(std, style_std))]
    return row + [float(normalised_content_loss(feats, content_feats, (4, 5))), float(gram_style_loss(feats, style_feats))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="adaattn")
    parser.add_argument("--content", default="../shared/data/train/content")
    parser.add_argument("--style", default="../shared/data/train/style")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=512, help="longer side of content and style")
    parser.add_argument("--refine", type=int, default=50, metavar="N", help="steps of the refined row")
    args = parser.parse_args()
    encoder = load_encoder()
    stylizer = Stylizer.load(args.model, device="cpu")
    pairs = held_out_pairs(args.content, args.style, args.pairs)
    rows = {"model": [], f"--refine {args.refine}": [], "model, RGB means moved to the style's": []}
    for content_path, style_path in pairs:
        content = resize_max_side(load_image(content_path).rgb, args.size)
        style = resize_max_side(load_image(style_path).rgb, args.size)
        encoded = stylizer.encode_style(style)
        picture = stylizer.stylize(content, [encoded], match_color=False)  # the model's own colours: the yardstick moves them
        refined = stylizer.refine(content, picture, [encoded], steps=args.refine)
        for name, output in zip(rows, (picture, refined, with_style_colour(picture, style))):
            rows[name].append(terms(encoder, content, style, output))
    print(f"`{' '.join(['python'] + sys.argv)}` — {len(pairs)} held-out pairs, longer side {args.size}\n")
    layer_columns = " | ".join(f"relu{layer}_1 mean | std" for layer in LAYERS)
    print(f"| picture | style loss | {layer_columns} | content loss | Gram style loss |")
    print("|---|" + "---:|" * (2 * len(LAYERS) + 3))
    for name, values in rows.items():
        means = torch.tensor(values).mean(0).tolist()
        style_loss = sum(means[: 2 * len(LAYERS)])
        cells = " | ".join(f"{value:.1f}" for value in means[: 2 * len(LAYERS)])
        print(f"| {name} | {style_loss:.1f} | {cells} | {means[-2]:.3f} | {means[-1]:.3g} |")


if __name__ == "__main__":
    main()
