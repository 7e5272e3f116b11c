"""`adaattn video`: stylise a clip frame by frame, streamed from decoder to encoder."""

from __future__ import annotations

import time
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import HOLD_THRESHOLD, STYLE_SIZE, VIDEO_CRF
from ..errors import BadInputError
from .console import info, interrupted
from .inputs import load_style_image, load_stylizer
from .options import (
    AlphaOption,
    DeviceOption,
    MaxPixelsOption,
    MaxSizeOption,
    Method,
    ModelOption,
    OverwriteOption,
    Precision,
    PrecisionOption,
    SeedOption,
    SizeOption,
    StylePositionsOption,
    StyleSizeOption,
    check_fraction,
)
from .progress import frame_progress
from .stylize import StyleOption


def _parse_fps(value: str) -> Fraction:
    from ..video_io import frame_rate

    try:
        return frame_rate(value)
    except BadInputError as error:
        raise typer.BadParameter(str(error)) from None


ClipArgument = Annotated[
    Path,
    typer.Argument(
        help="Video file (mp4, mov, mkv, webm, avi, GIF, ...) or a folder of frames (sorted by name).", metavar="CLIP", show_default=False
    ),
]
VideoOutputOption = Annotated[
    Optional[Path],
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Video file (.mp4 .mov .mkv .webm .gif) or a name without extension for a folder of PNG frames. "
        "\\[default: <clip>_stylized_<style>.mp4]",
        show_default=False,
    ),
]
VideoMethodOption = Annotated[
    Optional[Method],
    typer.Option(help="Bundled model to use when --model is not given. \\[default: adaattn-video]", show_default=False),
]
FpsOption = Annotated[
    Optional[Fraction],
    typer.Option(
        parser=_parse_fps,
        metavar="RATE",
        help="Frame rate to write, e.g. 25 or 30000/1001. Frames are re-timed (the clip plays faster or slower; "
        "its audio is then left out), never dropped or repeated. Also the rate of a folder of frames. "
        "\\[default: the clip's, exactly]",
        show_default=False,
    ),
]
StartOption = Annotated[
    Optional[float],
    typer.Option(min=0.0, metavar="SECONDS", help="Skip this much of the clip (audio too).", show_default=False),
]
DurationOption = Annotated[
    Optional[float],
    typer.Option(min=0.0, metavar="SECONDS", help="Stylise only this much of the clip.", show_default=False),
]
CrfOption = Annotated[int, typer.Option(min=0, max=63, help="Video quality: lower is better and larger (x264: 0-51, VP9: 0-63).")]
CodecOption = Annotated[
    Optional[str],
    typer.Option(metavar="CODEC", help="ffmpeg video encoder, e.g. libx265. \\[default: libx264; VP9 for .webm]", show_default=False),
]


class Palette(str, Enum):
    painting = "painting"
    image = "image"
    own = "own"


PaletteOption = Annotated[
    Optional[Palette],
    typer.Option(
        help="Colours of the frames. painting: the painting's colours, one colour map fitted on the first frame "
        "and applied to every frame's low frequencies, so the detail and its flicker are not amplified; image: the "
        "same, to the adaattn image model's picture of that frame (as before 2026-12-07); own: the model's colours. "
        "\\[default: painting for adaattn-video, own for the image models]",
        show_default=False,
    ),
]
HoldOption = Annotated[
    float,
    typer.Option(
        callback=check_fraction,
        metavar="CHANGE",
        help="Keep the previous stylised pixel where the input pixel has changed by less than this since it "
        "was stylised (mean RGB difference, 0-1; full hold up to half of it): still parts of the scene "
        "stop flickering, anything that moves is stylised anew. 0 = off, every frame on its own.",
    ),
]
VideoRefineOption = Annotated[
    int,
    typer.Option(
        min=0,
        metavar="N",
        help="Refine each frame with N optimisation steps, continuing the previous refined frame where the scene "
        "is still or (with OpenCV) along the motion: far more style, steady. 4 recommended (~3 s per "
        "512x288 frame on a 2-core CPU), 8 for more style; 0 = off. The first frame is refined like an image "
        "with --refine 6N. The refinement keeps still pixels itself (--hold sets its threshold).",
    ),
]
BatchOption = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        metavar="N",
        show_default=False,
        help="Frames per forward pass. \\[default: 4 on a GPU, 1 on a CPU, where bigger batches are measured slower]",
    ),
]


def video(
    clip: ClipArgument,
    style: StyleOption,
    output: VideoOutputOption = None,
    alpha: AlphaOption = 1.0,
    method: VideoMethodOption = None,
    model: ModelOption = None,
    size: SizeOption = None,
    max_size: MaxSizeOption = None,
    style_size: StyleSizeOption = STYLE_SIZE,
    fps: FpsOption = None,
    start: StartOption = None,
    duration: DurationOption = None,
    crf: CrfOption = VIDEO_CRF,
    codec: CodecOption = None,
    palette: PaletteOption = None,
    hold: HoldOption = HOLD_THRESHOLD,
    batch: BatchOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = Precision.auto,
    style_positions: StylePositionsOption = None,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    refine: VideoRefineOption = 0,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Stylise a video clip with one style image, frame by frame.

    Writes [bold]<clip>_stylized_<style>.mp4[/bold] into the current folder or -o, at the clip's size and exact
    frame rate, with its audio. Frames are streamed: memory does not grow with the clip's length. The style is
    encoded once, so every frame sees the same style positions, and still parts of the scene keep their
    stylisation from frame to frame (--hold). Ctrl-C or an error leaves no output file.

    [bold]Examples[/bold]

      adaattn video clip.mp4 --style starry.jpg
      adaattn video clip.mov -s starry.jpg --size 360 --start 5 --duration 10 -o part.webm
      adaattn video clip.mp4 -s starry.jpg --size 288 --refine 4            # far more style, slower
      adaattn video frames/ -s starry.jpg --fps 24 -o stylized_frames
    """
    from ..image_io import set_pixel_limit
    from ..video import check_palette, default_output, default_video_model, plan_video, render_video

    if max_pixels is not None:
        set_pixel_limit(max_pixels)
    output = output or default_output(clip, style.stem)
    plan = plan_video(clip, output, size=size, max_size=max_size, fps=fps, start=start, duration=duration, overwrite=overwrite)
    for note in plan.notes:
        info(note)

    began = time.perf_counter()
    try:
        if method is None and model is None:
            method = Method(default_video_model())
            if method is not Method("adaattn-video"):
                info("no adaattn-video model installed; using the adaattn image model per frame")
        stylizer = load_stylizer(method, model, device, precision, style_positions)
        encoded = stylizer.encode_style(load_style_image(style, style_size), seed=seed)  # once: every frame, the same positions
        chosen_palette = check_palette(palette.value if palette else None, stylizer.model.method)  # before the progress bar
        with frame_progress(plan.expected_frames) as advance:
            frames = render_video(
                stylizer,
                encoded,
                plan,
                alpha=alpha,
                seed=seed,
                batch=batch,
                palette=chosen_palette,
                hold=hold,
                refine=refine,
                codec=codec,
                crf=crf,
                progress=advance,
            )
    except KeyboardInterrupt:
        raise interrupted(f"{output} was not written") from None
    info(f"wrote {output} ({frames} frames at {float(plan.rate):.4g} fps, {time.perf_counter() - began:.1f} s)")
