"""The options and arguments the commands share, as Annotated aliases, and their enums and checks.

Nothing here imports torch (see cli/__init__.py).
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional, cast

import typer

from ..config import DEFAULT_STYLE_POSITIONS, VIDEO_STYLE_POSITIONS
from ..methods import list_methods

# --method's choices: the registered methods (methods.py), as an Enum because Typer lists an Enum's values.
Method = Enum("Method", {name.replace("-", "_"): name for name in list_methods()}, type=str)  # type: ignore[misc]


def check_fraction(value: float | None) -> float | None:
    """0 to 1; NaN is refused here (a range check alone would call it "more than 1")."""
    if value is not None and not 0 <= value <= 1:
        raise typer.BadParameter(f"{value} is not a number from 0 to 1")
    return value


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' (1 <= K <= N) -> (K - 1, N): the K-th of N shares, as `split -n K/N` counts them. ASCII digits only
    (str.isdigit also takes '²', which int() refuses, and int() takes other scripts' digits); an empty value (an
    unset $SHARD) is refused, not read as "all of it"."""
    if text is None:
        return None
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise typer.BadParameter(f"{text!r} is not K/N with 1 <= K <= N, e.g. 1/4 for the first of four shares")
    return int(match[1]) - 1, int(match[2])


def parsed_shard(option: str | None) -> tuple[int, int] | None:
    """A ShardOption's value as the command gets it: parse_shard, its callback, has turned the text into (K - 1, N)."""
    return cast("tuple[int, int] | None", option)


def _check_tile(value: int | None) -> int | None:
    if not value:
        return value
    from ..tiling import MIN_TILE  # imports torch: only when --tile N is given

    if value < MIN_TILE:
        raise typer.BadParameter(f"{value} is below {MIN_TILE} px, where a tile's window is mostly its halo; give {MIN_TILE} or more, or 0")
    return value


def _check_style_size(value: int) -> int:
    if value != 0 and value < 32:  # 32: api.MIN_SIDE, the smallest side a model takes
        raise typer.BadParameter(f"{value} is neither 0 (keep the size) nor at least 32 pixels")
    return value


def _check_device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return value


ContentArgument = Annotated[
    List[str],
    typer.Argument(
        help="Content images: files, folders (their images, not recursive) or quoted glob patterns.",
        metavar="CONTENT",
        show_default=False,
    ),
]
AlphaOption = Annotated[
    float,
    typer.Option(
        "--alpha", "-a", callback=check_fraction, help="Style strength, 0-1: 1 = full style, 0 = the model's reconstruction of the content."
    ),
]
OutputOption = Annotated[
    Optional[str],  # a string, not a Path: Path drops the trailing "/" that marks a folder
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Output file (one content image, image extension) or folder (created; a name without extension or "
        "ending in /). \\[default: current folder]",
        show_default=False,
    ),
]
MethodOption = Annotated[
    Optional[Method],
    typer.Option(help="Bundled model to use when --model is not given. \\[default: adaattn]", show_default=False),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(help="Model file (.safetensors), or a model name on the weights search path.", metavar="FILE|NAME", show_default=False),
]
SizeOption = Annotated[
    Optional[int],
    typer.Option(min=32, help="Resize the content so its shorter side is N pixels.", metavar="N", show_default=False),
]
MaxSizeOption = Annotated[
    Optional[int],
    typer.Option(min=32, help="Shrink the content only if its longer side exceeds N pixels.", metavar="N", show_default=False),
]


StyleSizeOption = Annotated[
    int,
    typer.Option(
        callback=_check_style_size, help="Resize style images so their shorter side is N pixels, at least 32 (0 = keep).", metavar="N"
    ),
]
MaskOption = Annotated[
    Optional[List[Path]],
    typer.Option(
        exists=True,
        dir_okay=False,
        metavar="FILE",
        help="Greyscale image, white where the style applies; same aspect ratio as the content. One per style.",
        show_default=False,
    ),
]
DeviceOption = Annotated[str, typer.Option(callback=_check_device, metavar="DEVICE", help="Where to run: auto, cpu, cuda, cuda:N or mps.")]
SeedOption = Annotated[int, typer.Option(help="Seed for the style positions that attention samples.")]


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


PrecisionOption = Annotated[
    Precision,
    typer.Option(
        help="bf16: bf16 convolutions and attention matmuls (2-3x faster on CPUs with avx512_bf16, within "
        "bf16 tolerance); fp32: exact; auto: bf16 where it is faster (CUDA, avx512_bf16/AMX CPUs)."
    ),
]
StylePositionsOption = Annotated[
    Optional[int],
    typer.Option(
        min=0,
        metavar="N",
        show_default=False,
        help="Style positions each attention block may attend to (a seeded random subset beyond N, the same for every "
        f"content and frame; keeps time linear in the content's pixels). 0 = all. \\[default: {DEFAULT_STYLE_POSITIONS}; "
        f"{VIDEO_STYLE_POSITIONS} for adaattn-video, whose cosine attention spreads over all positions]",
    ),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")]
RefineOption = Annotated[
    int,
    typer.Option(
        min=0,
        metavar="N",
        help="Refine each picture in the encoder's feature space: painted rather than embossed. N is the work, in "
        "optimisation steps at half size (a full-size step counts 4; the progress bar shows the steps taken). 50 "
        "recommended (~12 s at 512x512 on a 2-core CPU), 100 for more paint; 0 = the model's picture. Since "
        "2026-12-07 --refine 50 takes half the time of the 50 steps it meant before, for a better picture.",
    ),
]
TileOption = Annotated[
    Optional[int],
    typer.Option(
        min=0,
        callback=_check_tile,
        metavar="N",
        show_default=False,
        help="Run contents larger than N px per side in N-px tiles (at least 256): memory bounded by the tile, same "
        "result. 0 = never. \\[default: 2048-px tiles above 4096x4096 pixels]",
    ),
]
ShardOption = Annotated[
    Optional[str],  # the callback turns it into (K - 1, N)
    typer.Option(
        callback=parse_shard,
        metavar="K/N",
        show_default=False,
        help="Only the K-th of N shares of the contents (1 <= K <= N; the same split every time): one job of an "
        "array. Under torchrun the share is split again over the processes.",
    ),
]
MaxPixelsOption = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        help="Refuse images with more pixels than this. \\[default: Pillow's limit, about 89 million]",
        metavar="N",
        show_default=False,
    ),
]
MatchColorOption = Annotated[
    bool,
    typer.Option(
        "--match-color/--no-match-color",
        help="Move the picture's mean colour to the style's, where each style applies (--no-match-color: the model's own colours).",
    ),
]
