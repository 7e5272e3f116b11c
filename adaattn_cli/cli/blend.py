"""`adaattn blend-styles`: several styles mixed with weights, or a contact sheet of mixes (--grid)."""

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from ..config import STYLE_SIZE
from ..errors import BadInputError
from .batch import run_batch
from .inputs import fit_masks, load_masks, load_style_image, load_stylizer, output_suffix, prepare_jobs
from .options import (
    AlphaOption,
    ContentArgument,
    DeviceOption,
    MaskOption,
    MatchColorOption,
    MaxPixelsOption,
    MaxSizeOption,
    MethodOption,
    ModelOption,
    OutputOption,
    OverwriteOption,
    Precision,
    PrecisionOption,
    RefineOption,
    SeedOption,
    ShardOption,
    SizeOption,
    StylePositionsOption,
    StyleSizeOption,
    TileOption,
    parsed_shard,
)
from .progress import part_progress

if TYPE_CHECKING:
    import torch

TILE_HEIGHT = 256  # contact sheet tiles are scaled to this height
LABEL_HEIGHT = 18
GAP = 8


def _parse_weights(value: Optional[str]) -> Optional[List[float]]:
    """'0.6,0.4' -> [0.6, 0.4]; the command receives the list."""
    if value is None:
        return None
    try:
        weights = [float(part) for part in value.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of numbers such as 0.6,0.4") from None
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise typer.BadParameter(f"{value!r}: weights must be non-negative numbers with a positive sum")
    return weights


StylesOption = Annotated[
    List[Path],
    typer.Option("--style", "-s", exists=True, dir_okay=False, metavar="FILE", help="Style image; give two or more.", show_default=False),
]
WeightsOption = Annotated[
    Optional[str],  # the callback turns it into a list of floats
    typer.Option(
        callback=_parse_weights,
        metavar="W1,W2,...",
        show_default=False,
        help="Weight per style, comma-separated, e.g. 0.6,0.4 (normalised). \\[default: equal]",
    ),
]
GridOption = Annotated[
    bool, typer.Option("--grid", help="Write a labelled contact sheet: content, styles and the blend at several weights.")
]


def blend_styles(
    content: ContentArgument,
    style: StylesOption,
    weights: WeightsOption = None,
    alpha: AlphaOption = 1.0,
    output: OutputOption = None,
    grid: GridOption = False,
    method: MethodOption = None,
    model: ModelOption = None,
    size: SizeOption = None,
    max_size: MaxSizeOption = None,
    style_size: StyleSizeOption = STYLE_SIZE,
    mask: MaskOption = None,
    match_color: MatchColorOption = True,
    device: DeviceOption = "auto",
    precision: PrecisionOption = Precision.auto,
    style_positions: StylePositionsOption = None,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = None,
    tile: TileOption = None,
    refine: RefineOption = 0,
    shard: ShardOption = None,
) -> None:
    """Stylise content images with a weighted mix of two or more styles.

    Writes [bold]<content>_blend_<styleA>+<styleB>.<ext>[/bold], or with --grid [bold]<content>_blend_grid.png[/bold].

    With --mask, give one mask per style: each style then applies where its mask is white.

    [bold]Examples[/bold]

      adaattn blend-styles photo.jpg -s starry.jpg -s scream.jpg --weights 0.7,0.3
      adaattn blend-styles photo.jpg -s starry.jpg -s scream.jpg --grid -o sheet.png
    """
    if len(style) < 2:
        raise BadInputError("blend-styles needs two or more --style images; use stylize for one")
    if weights is not None and len(weights) != len(style):
        raise BadInputError(f"--weights has {len(weights)} values for {len(style)} styles; give one per style")
    if mask and len(mask) != len(style):
        raise BadInputError(f"got {len(mask)} masks for {len(style)} styles; give one --mask per style, or none")

    def name(path: Path) -> str:
        if grid:
            return f"{path.stem}_blend_grid.png"
        return f"{path.stem}_blend_{'+'.join(s.stem for s in style)}{output_suffix(path)}"

    jobs = prepare_jobs(content, output, name, size=size, max_size=max_size, max_pixels=max_pixels, shard=parsed_shard(shard))
    stylizer = load_stylizer(method, model, device, precision, style_positions, tile)
    style_images = [load_style_image(path, style_size) for path in style]
    encoded = [stylizer.encode_style(image, seed=seed) for image in style_images]  # once, reused by every tile
    masks = load_masks(mask)

    def blend(image, mix):
        fitted = fit_masks(masks, image.rgb)
        with part_progress("tiles") as progress, part_progress("refining") as refine_progress:
            return stylizer.stylize(
                image.rgb,
                encoded,
                weights=mix,
                alpha=alpha,
                masks=fitted,
                match_color=match_color,
                seed=seed,
                progress=progress,
                refine=refine,
                refine_progress=refine_progress,
            )

    def render(image):
        if not grid:
            return dataclasses.replace(image, rgb=blend(image, weights))
        named = [(path.stem, rgb) for path, rgb in zip(style, style_images)]
        sheet = blend_grid(image.rgb, named, weights, lambda mix: blend(image, mix))
        return dataclasses.replace(image, rgb=sheet, alpha=None, icc_profile=None)

    run_batch(jobs, render, size=size, max_size=max_size, overwrite=overwrite)


def blend_grid(content, styles, weights: Optional[List[float]], blend) -> "torch.Tensor":
    """The --grid contact sheet [3, H, W]: the content and the (name, image) styles on top, the blends at
    grid_mixes' weights below, each rendered by blend(mix) (also `adaattn gui`'s blend grid)."""
    bottom = [(" / ".join(_short(w) for w in mix), blend(mix)) for mix in grid_mixes(len(styles), weights)]
    return _contact_sheet([[("content", content), *styles], bottom])


def grid_mixes(count: int, weights: Optional[List[float]]) -> List[List[float]]:
    """Two styles: 1/0, .75/.25, .5/.5, .25/.75, 0/1. More: each style alone, then the given (or equal) mix."""
    if count == 2:
        mixes = [[1 - t, t] for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
        extra = weights
    else:
        mixes = [[float(i == k) for i in range(count)] for k in range(count)]
        extra = weights or [1.0] * count
    if extra is not None:
        extra = [w / sum(extra) for w in extra]
        if not any(all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(extra, mix)) for mix in mixes):
            mixes.append(extra)
    return mixes


def _short(weight: float) -> str:
    return f"{weight:.2f}".rstrip("0").rstrip(".")


def _contact_sheet(rows):
    """Rows of (label, [3, H, W] image) -> one [3, H, W] sheet: tiles at TILE_HEIGHT, labels below."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw, ImageFont

    def to_pil(image):
        pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        tile = Image.fromarray(pixels)
        width = max(1, round(tile.width * TILE_HEIGHT / tile.height))
        return tile.resize((width, TILE_HEIGHT), Image.Resampling.LANCZOS)

    tiles = [[(label, to_pil(image)) for label, image in row] for row in rows]
    width = max(sum(tile.width + GAP for _, tile in row) + GAP for row in tiles)
    height = len(tiles) * (TILE_HEIGHT + LABEL_HEIGHT + GAP) + GAP
    sheet = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for row_index, row in enumerate(tiles):
        x, y = GAP, GAP + row_index * (TILE_HEIGHT + LABEL_HEIGHT + GAP)
        for label, tile in row:
            sheet.paste(tile, (x, y))
            draw.text((x, y + TILE_HEIGHT + 3), _fit_label(draw, font, label, tile.width), fill="black", font=font)
            x += tile.width + GAP
    return torch.from_numpy(np.asarray(sheet).copy()).permute(2, 0, 1).float().div(255)


def _fit_label(draw, font, label: str, width: int) -> str:
    """The label, shortened with '...' if it is wider than its tile."""
    if draw.textlength(label, font=font) <= width:
        return label
    while label and draw.textlength(label + "...", font=font) > width:
        label = label[:-1]
    return label + "..."
