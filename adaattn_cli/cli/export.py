"""`adaattn export`: a model as an ONNX graph (adaattn_cli.export does the work)."""

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import DEFAULT_STYLE_POSITIONS, ONNX_OPSET, STYLE_SIZE, VIDEO_STYLE_POSITIONS
from .console import info, interrupted
from .inputs import load_style_image, names_folder
from .options import MatchColorOption, OverwriteOption, StyleSizeOption

ModelArgument = Annotated[
    str,
    typer.Argument(
        help="Model name on the weights search path (adaattn, adain, sanet, adaattn-video) or a .safetensors file.",
        metavar="MODEL",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Optional[str],  # a string, not a Path: Path drops the trailing "/" that marks a folder
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="ONNX file to write (.onnx), or a folder for the default name (created; a name without extension or "
        "ending in /). \\[default: <model>.onnx, or <model>_<style>.onnx with --style, in the current folder]",
        show_default=False,
    ),
]
StyleOption = Annotated[
    Optional[Path],
    typer.Option(
        "--style",
        "-s",
        exists=True,
        dir_okay=False,
        metavar="FILE",
        show_default=False,
        help="Bake this style in: the graph takes the content only (the style's encoding is stored in it).",
    ),
]


def _check_alpha(value: float) -> float:
    """Above 0 (a graph at 0 would ignore its style) and at most 1; NaN is refused too."""
    if not 0 < value <= 1:
        raise typer.BadParameter(f"{value} is not a number above 0 and at most 1 (0 would leave the style out)")
    return value


AlphaOption = Annotated[
    float,
    typer.Option(
        "--alpha",
        "-a",
        callback=_check_alpha,
        help="Style strength, above 0 and at most 1, fixed in the graph (not an input): below 1 the graph also "
        "attends from the content to itself, n_content x n_content logits per block.",
    ),
]
OpsetOption = Annotated[int, typer.Option(min=17, help="ONNX opset of the graph.")]
StylePositionsOption = Annotated[
    Optional[int],
    typer.Option(
        min=0,
        metavar="N",
        show_default=False,
        help="With --style: style positions each attention block keeps, drawn as `adaattn "
        "stylize --style-positions N --seed S` draws them. 0 = all. A style input always attends to all. "
        f"\\[default: the method's, as stylize: {DEFAULT_STYLE_POSITIONS}; {VIDEO_STYLE_POSITIONS} for adaattn-video]",
    ),
]
SeedOption = Annotated[int, typer.Option(help="With --style: seed of the style positions kept.")]


def export(
    model: ModelArgument,
    output: OutputOption = None,
    style: StyleOption = None,
    style_size: StyleSizeOption = STYLE_SIZE,
    alpha: AlphaOption = 1.0,
    style_positions: StylePositionsOption = None,
    seed: SeedOption = 0,
    match_color: MatchColorOption = True,
    opset: OpsetOption = ONNX_OPSET,
    overwrite: OverwriteOption = False,
) -> None:
    """Export a model to ONNX: (content, style) images in, the stylised image out, any height and width.

    Inputs and output are RGB float32 [1, 3, H, W] in [0, 1]; the padding to the model's size multiple is done
    inside the graph. The graph is the plain formulation: each attention block computes its whole logits matrix at
    once, n_content x n_style positions (a quarter of the pixels per side at relu3_1). A style input is attended at
    every position, so memory grows with content x style: 1 GiB of logits for a 512² content and a 512² style,
    256 MiB with a 256² style; keep styles at 256-512 px. --style bakes a style in with the positions `adaattn
    stylize` would sample (4,096; 1,024 for adaattn-video). Needs the onnx extra: pip install 'adaattn\\[onnx]'. See docs/export.md.

    [bold]Examples[/bold]

      adaattn export adaattn -o adaattn.onnx
      adaattn export adaattn --style starry.jpg -o adaattn_starry.onnx
      adaattn export my-model.safetensors --alpha 0.8 -o mine.onnx
    """
    from ..export import check_installed, check_output, export_onnx

    check_installed()  # before the model loads: the missing extra is the first thing to hear about
    name = Path(model).stem if Path(model).suffix else model
    default = f"{name}_{style.stem}.onnx" if style else f"{name}.onnx"
    path = Path(output) / default if output is not None and names_folder(output) else Path(output or default)
    check_output(path, overwrite=overwrite)  # a .onnx name, and nothing replaced without --overwrite
    start = time.perf_counter()
    style_image = None if style is None else load_style_image(style, style_size)
    try:
        export_onnx(
            model,
            path,
            alpha=alpha,
            style=style_image,
            style_name=style.name if style is not None else None,
            style_positions=style_positions,
            seed=seed,
            match_color=match_color,
            opset=opset,
            overwrite=overwrite,
        )
    except KeyboardInterrupt:
        raise interrupted(f"{path} was not written") from None
    info(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s)")
