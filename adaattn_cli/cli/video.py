"""`adaattn video`: stylise a clip frame by frame, streamed from decoder to encoder."""

from __future__ import annotations

import contextlib
import itertools
import time
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterable, Iterator, Optional

import typer

from ..config import STYLE_SIZE
from ..errors import BadInputError
from . import _common as common
from ._common import (
    AlphaOption,
    DeviceOption,
    MaxPixelsOption,
    MaxSizeOption,
    Method,
    ModelOption,
    OverwriteOption,
    PrecisionOption,
    SeedOption,
    SizeOption,
    StyleSizeOption,
)
from .stylize import StyleOption

if TYPE_CHECKING:
    import numpy as np

    from ..api import Style, Stylizer
    from ..video_io import VideoInfo


def _default_video_method() -> Method:
    """The video model when one is installed, else the image model (so the default works out of the box)."""
    from ..weights import find_weights

    if find_weights(f"{Method.adaattn_video.value}.safetensors"):
        return Method.adaattn_video
    common.info("no adaattn-video model installed; using the adaattn image model per frame")
    return Method.adaattn


def _parse_fps(value: Optional[str]) -> Optional[Fraction]:
    from ..video_io import frame_rate

    try:
        return None if value is None else frame_rate(value)
    except BadInputError as error:
        raise typer.BadParameter(str(error)) from None


ClipArgument = Annotated[
    Path,
    typer.Argument(help="Video file (mp4, mov, mkv, webm, avi, GIF, ...) or a folder of frames (sorted by name).",
                   metavar="CLIP", show_default=False),
]
VideoOutputOption = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", metavar="PATH",
                 help="Video file (.mp4 .mov .mkv .webm .gif) or a name without extension for a folder of PNG frames. "
                      "\\[default: <clip>_stylized_<style>.mp4]", show_default=False),
]
# Frames attend to fewer style positions than images by default: the video model's cosine attention spreads its
# weight over all positions, so 1,024 of them estimate its mean/std maps well, and attention then costs little
# next to the convolutions (bench/video_speed.py). --style-positions 0 uses them all.
VIDEO_STYLE_POSITIONS = 1024
VideoStylePositionsOption = Annotated[
    int,
    typer.Option(min=0, metavar="N", help="Style positions each attention block may attend to (a seeded random subset, "
                                         "the same for every frame). 0 = all."),
]
VideoMethodOption = Annotated[
    Optional[Method],
    typer.Option(help="Bundled model to use when --model is not given. \\[default: adaattn-video]", show_default=False),
]
FpsOption = Annotated[
    Optional[str],
    typer.Option(callback=_parse_fps, metavar="RATE",
                 help="Frame rate to write, e.g. 25 or 30000/1001. Frames are re-timed (the clip plays faster or slower; "
                      "its audio is then left out), never dropped or repeated. Also the rate of a folder of frames. "
                      "\\[default: the clip's, exactly]", show_default=False),
]
StartOption = Annotated[
    Optional[float],
    typer.Option(min=0.0, metavar="SECONDS", help="Skip this much of the clip (audio too).", show_default=False),
]
DurationOption = Annotated[
    Optional[float],
    typer.Option(min=0.0, metavar="SECONDS", help="Stylise only this much of the clip.", show_default=False),
]
CrfOption = Annotated[
    int, typer.Option(min=0, max=63, help="Video quality: lower is better and larger (x264: 0-51, VP9: 0-63).")
]
CodecOption = Annotated[
    Optional[str],
    typer.Option(metavar="CODEC", help="ffmpeg video encoder, e.g. libx265. \\[default: libx264; VP9 for .webm]",
                 show_default=False),
]


class Palette(str, Enum):
    image = "image"
    own = "own"


# Blur of the palette correction, as a fraction of the frame's shorter side (10.7 px at 256 px; measured 8-16 px
# at 256: a smaller blur moves more colour and more of the frame-to-frame change, see docs/video.md, "Tuning the palette").
PALETTE_BLUR = 1 / 24
PaletteOption = Annotated[
    Optional[Palette],
    typer.Option(help="Colours of the adaattn-video model's frames. image: the image model's palette, one colour map "
                      "fitted on the first frame (adaattn image model vs video model) and applied to every frame's low "
                      "frequencies, so the detail and its flicker are not amplified; own: the video model's paler colours. "
                      "\\[default: image for adaattn-video]", show_default=False),
]
# ~4 of 255 levels: about the noise of a compressed clip. Measured at 256 px on the three test clips (docs/video.md,
# "The hold's shape"): higher thresholds also hold back slow movement and average stylisations (less style).
HOLD_THRESHOLD = 0.015
HoldOption = Annotated[
    float,
    typer.Option(callback=common.check_fraction, metavar="CHANGE",
                 help="Keep the previous stylised pixel where the input pixel has changed by less than this since it "
                      "was stylised (mean RGB difference, 0-1; full hold up to half of it): still parts of the scene "
                      "stop flickering, anything that moves is stylised anew. 0 = off, every frame on its own."),
]
VideoRefineOption = Annotated[
    int,
    typer.Option(min=0, metavar="N",
                 help="Refine each frame with N optimisation steps, continuing the previous refined frame where the scene "
                      "is still or (with OpenCV) along the motion: far more style, steady. 8 recommended (~4 s per "
                      "512x288 frame on a 2-core CPU); 0 = off. The refinement keeps still pixels itself (--hold sets "
                      "its threshold)."),
]
BatchOption = Annotated[
    Optional[int],
    typer.Option(min=1, metavar="N", show_default=False,
                 help="Frames per forward pass. \\[default: 4 on a GPU, 1 on a CPU, where bigger batches are measured slower]"),
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
    crf: CrfOption = 18,
    codec: CodecOption = None,
    palette: PaletteOption = None,
    hold: HoldOption = HOLD_THRESHOLD,
    batch: BatchOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    style_positions: VideoStylePositionsOption = VIDEO_STYLE_POSITIONS,
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
      adaattn video clip.mp4 -s starry.jpg --size 288 --refine 8            # far more style, slower
      adaattn video frames/ -s starry.jpg --fps 24 -o stylized_frames
    """
    from .. import video_io
    from ..api import MIN_SIDE
    from ..image_io import check_pixel_limit, set_pixel_limit
    from ..temporal import FrameRefiner, StaticHold

    if size is not None and max_size is not None:
        raise BadInputError("--size and --max-size exclude each other; give one")
    if duration == 0:
        raise BadInputError("--duration 0 leaves no frames; give a positive number of seconds")
    if max_pixels is not None:
        set_pixel_limit(max_pixels)
    info = video_io.probe(clip, fps=fps)
    output = output or Path(f"{clip.stem}_stylized_{style.stem}.mp4")
    video_io.check_output(output, overwrite=overwrite)  # before the model loads: a typo costs nothing
    frame_size, sar = fit_frame_size(info.size, size=size, max_size=max_size), info.sar
    if sar != 1 and video_io.output_kind(output) in ("frames", ".gif"):  # they cannot record non-square pixels
        frame_size, sar = square_pixels(frame_size, sar), Fraction(1)
    check_pixel_limit(*frame_size, f"{clip}: each frame")
    if min(frame_size) < MIN_SIDE:
        width, height = frame_size
        raise BadInputError(f"{clip}: frames would be {width}x{height}; each side must be at least {MIN_SIDE} (see --size)")
    rate = fps or info.fps
    audio = _audio_source(clip, info, output, rate)

    began = time.perf_counter()
    try:
        stylizer = common.load_stylizer(method or (None if model else _default_video_method()), model, device, precision, style_positions)
        style_image = common.load_resized(style, size=style_size or None).rgb
        encoded = stylizer.encode_style(style_image, seed=seed)  # once: every frame attends to the same style positions
        palette = _check_palette(palette, stylizer.model.method)
        batch = batch or (1 if stylizer.device.type == "cpu" else 4)
        # Without --fps, frames come at the clip's rate by their timestamps (a variable rate keeps its timing);
        # --fps re-times: each frame once.
        frames = video_io.read_frames(clip, size=frame_size, start=start, duration=duration, fps=fps,
                                      rate=None if fps else info.fps)
        writer = video_io.VideoWriter(output, fps=rate, size=frame_size, codec=codec, crf=crf, audio_from=audio,
                                      audio_start=start, audio_duration=duration, overwrite=overwrite, sar=sar)
        recolour, hold_filter, refiner = None, StaticHold(hold) if hold else None, None
        if refine:  # the refinement keeps still pixels itself (the hold's test) and carries the rest along the motion
            refiner = FrameRefiner(stylizer, encoded, steps=refine, threshold=hold or HOLD_THRESHOLD, alpha=alpha, seed=seed)
            hold_filter = None
        with contextlib.closing(frames), writer, common.frame_progress(_expected_frames(info, start, duration)) as advance:
            for chunk in _chunks(frames, batch):
                if palette is Palette.image and recolour is None:
                    recolour = fit_palette(stylizer, chunk[0], encoded, style_image, alpha=alpha, seed=seed)
                for frame in stylize_frames(stylizer, chunk, encoded, alpha=alpha, seed=seed, recolour=recolour, refine=refiner,
                                            hold=hold_filter):
                    writer.write(frame)
                advance(len(chunk))
    except KeyboardInterrupt:
        common.info(f"interrupted; {output} was not written")
        raise typer.Exit(code=130) from None
    common.info(f"wrote {output} ({writer.frames} frames at {float(rate):.4g} fps, {time.perf_counter() - began:.1f} s)")


def square_pixels(size: tuple[int, int], sar: Fraction) -> tuple[int, int]:
    """(width, height) showing the same picture with square pixels: the side the pixels are long along grows."""
    width, height = size
    return (round(width * sar), height) if sar > 1 else (width, round(height / sar))


def fit_frame_size(source: tuple[int, int], *, size: int | None, max_size: int | None) -> tuple[int, int]:
    """--size: shorter side N; --max-size: longer side at most N; else the source's. Resized sides are even (4:2:0)."""
    width, height = source
    if size:
        scale = size / min(width, height)
    elif max_size and max(width, height) > max_size:
        scale = max_size / max(width, height)
    else:
        return source
    return tuple(max(2, round(side * scale) // 2 * 2) for side in (width, height))


def _audio_source(clip: Path, info: VideoInfo, output: Path, rate: Fraction) -> Path | None:
    """The clip, if its audio can go into the output unchanged in timing."""
    from ..video_io import output_kind

    if not info.has_audio:
        return None
    if output_kind(output) in ("frames", ".gif"):
        common.info(f"note: {output} cannot hold audio; the clip's audio is left out")
        return None
    if rate != info.fps:
        common.info("note: --fps re-times the frames, so the clip's audio would be out of sync; it is left out")
        return None
    return clip


def _expected_frames(info: VideoInfo, start: float | None, duration: float | None) -> int | None:
    """For the progress bar only (an estimate; None when unknown)."""
    if info.n_frames is None:
        return None
    count = info.n_frames - round((start or 0) * info.fps)
    if duration is not None:
        count = min(count, round(duration * info.fps))
    return max(count, 0) or None


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    iterator = iter(frames)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _check_palette(palette: Palette | None, method: str) -> Palette:
    from ..weights import find_weights

    if palette is None:  # the default: the image model's palette where it applies and is installed
        wanted = method == Method.adaattn_video.value
        if wanted and not find_weights(f"{Method.adaattn.value}.safetensors"):
            common.info("no adaattn image model installed; the video model keeps its own palette")
            wanted = False
        return Palette.image if wanted else Palette.own
    if palette is Palette.image and method != Method.adaattn_video.value:
        raise BadInputError(f"--palette image recolours the adaattn-video model's frames; this model is {method}")
    return palette


def fit_palette(stylizer: Stylizer, frame: np.ndarray, style: Style, style_image, *, alpha: float, seed: int, image_stylizer=None):
    """(A, b, blur): the colour map from the video model's output of `frame` to the image model's (fn.colour_transform).

    image_stylizer: the image model (default: the installed adaattn model, loaded here and dropped after)."""
    from .. import functional as fn

    image_stylizer = image_stylizer or common.load_stylizer(Method.adaattn, None, str(stylizer.device), stylizer.precision)
    image_style = image_stylizer.encode_style(style_image, seed=seed)
    target = stylize_frames(image_stylizer, [frame], image_style, alpha=alpha, seed=seed, as_uint8=False)
    source = stylize_frames(stylizer, [frame], style, alpha=alpha, seed=seed, as_uint8=False)
    matrix, offset = fn.colour_transform(source[0], target[0])
    return matrix, offset, PALETTE_BLUR * min(frame.shape[:2])


def stylize_frames(
    stylizer: Stylizer, chunk: list[np.ndarray], style: Style, *, alpha: float, seed: int, recolour=None, refine=None,
    hold=None, as_uint8: bool = True,
):
    """uint8 frames [H, W, 3] -> stylised uint8 frames [B, H, W, 3], one forward pass (as_uint8=False: the float
    [B, 3, H, W] tensor). recolour: fit_palette's (A, b, blur), applied to each frame's low frequencies; refine: the
    clip's temporal.FrameRefiner; hold: its temporal.StaticHold, applied last (both keep state: pass the chunks in
    order)."""
    import numpy as np
    import torch

    from .. import functional as fn

    content = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div_(255)
    stylized = stylizer.stylize(content, [style], alpha=alpha, seed=seed)
    stylized = stylized.reshape(len(chunk), *stylized.shape[-3:])  # stylize drops the axis of a batch of one
    if recolour is not None:
        stylized = fn.recolour_low_frequencies(stylized, *recolour)
    if refine is not None:
        stylized = refine(content, stylized).to(stylized.device)
    if hold is not None:
        stylized = hold(content.to(stylized.device), stylized)
    if not as_uint8:
        return stylized
    return stylized.mul(255).round_().byte().permute(0, 2, 3, 1).cpu().numpy()
