"""`adaattn stylize`: one style applied to one or more content images."""

import dataclasses
from pathlib import Path
from typing import Annotated

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

StyleOption = Annotated[
    Path, typer.Option("--style", "-s", exists=True, dir_okay=False, metavar="FILE", help="Style image.", show_default=False)
]
PreserveColorOption = Annotated[bool, typer.Option("--preserve-color", help="Keep the content's colours (the style is recoloured first).")]


def stylize(
    content: ContentArgument,
    style: StyleOption,
    alpha: AlphaOption = 1.0,
    output: OutputOption = None,
    method: MethodOption = None,
    model: ModelOption = None,
    size: SizeOption = None,
    max_size: MaxSizeOption = None,
    style_size: StyleSizeOption = STYLE_SIZE,
    preserve_color: PreserveColorOption = False,
    match_color: MatchColorOption = True,
    mask: MaskOption = None,
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
    """Stylise content images with one style image.

    Writes [bold]<content>_stylized_<style>.<ext>[/bold] (GIF becomes PNG) into the current folder or -o.

    A content image that cannot be read is reported and skipped; the exit code is then 2.

    [bold]Examples[/bold]

      adaattn stylize photo.jpg --style starry.jpg -o photo_starry.jpg
      adaattn stylize photos/ "more/*.png" -s starry.jpg --alpha 0.8 --max-size 1024 -o out/
      adaattn stylize photo.jpg -s starry.jpg --refine 50      # slower, painted rather than embossed
      torchrun --nproc-per-node 4 -m adaattn_cli stylize photos/ -s starry.jpg -o out/   # 4 GPUs
    """
    if mask and len(mask) > 1:
        raise BadInputError("stylize takes one --mask (one per style); use blend-styles for several styles")

    def name(path: Path) -> str:
        return f"{path.stem}_stylized_{style.stem}{output_suffix(path)}"

    jobs = prepare_jobs(content, output, name, size=size, max_size=max_size, max_pixels=max_pixels, shard=parsed_shard(shard))
    stylizer = load_stylizer(method, model, device, precision, style_positions, tile)
    style_image = load_style_image(style, style_size)
    masks = load_masks(mask)
    # Encoded once for the whole batch; with --preserve-color the style is recoloured per content instead.
    encoded = style_image if preserve_color else stylizer.encode_style(style_image, seed=seed)

    def render(image):
        fitted = fit_masks(masks, image.rgb)
        with part_progress("tiles") as progress, part_progress("refining") as refine_progress:
            stylized = stylizer.stylize(
                image.rgb,
                [encoded],
                alpha=alpha,
                masks=fitted,
                preserve_color=preserve_color,
                match_color=match_color,
                seed=seed,
                progress=progress,
                refine=refine,
                refine_progress=refine_progress,
            )
        return dataclasses.replace(image, rgb=stylized)

    run_batch(jobs, render, size=size, max_size=max_size, overwrite=overwrite)
