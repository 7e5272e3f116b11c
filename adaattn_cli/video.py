"""The video pipeline, streamed: decode -> stylise -> palette -> hold or refine -> encode.

    stylize_video("clip.mp4", "monet.jpg", "out.mp4", size=288)   # all of `adaattn video`, as a function

    stylizer = Stylizer.load("adaattn-video")                 # its steps, as the CLI and the app run them:
    style = stylizer.encode_style("monet.jpg", seed=0)        # once: every frame attends to the same positions
    plan = plan_video("clip.mp4", "out.mp4", size=288)        # checks and sizes, before any frame is stylised
    frames = render_video(stylizer, style, plan, palette=default_palette(stylizer.model.method))

Frames go from ffmpeg's decoder to its encoder one batch at a time (video_io), so memory does not grow with the
clip; the output appears only once every frame is written, and an exception or Ctrl-C leaves none
(video_io.VideoWriter). No Typer or Rich here: progress is a callback, as in api.py. How the palette, the
hold and the refinement were tuned: docs/video.md.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from . import functional as fn
from . import video_io
from .api import MIN_SIDE, Style, StyleLike, Stylizer
from .config import HOLD_THRESHOLD, VIDEO_CRF
from .errors import SettingError
from .image_io import check_pixel_limit
from .video_filters import FrameRefiner, StaticHold
from .video_io import VideoInfo
from .weights import find_weights

log = logging.getLogger(__name__)

PALETTES = ("painting", "image", "own")
# Blur of the palette correction, as a fraction of the frame's shorter side (16 px and 10.7 px at 256 px): a
# smaller blur moves more colour and more of the frame-to-frame change (docs/video.md, "Tuning the palette").
PALETTE_BLUR = {"painting": 1 / 16, "image": 1 / 24}
# The painting palette's largest gain (singular value of its colour map): the video model's frames are paler than
# paintings (gains of 1.7-4.3 measured on the README's pictures), but a map fitted on a nearly flat frame would
# blow every later frame's colours up.
MAX_PALETTE_GAIN = 4.0
# A frame whose colours spread less than this (the root of the covariance's trace, [0, 1] pixels: a fade from
# black, a title card) tells nothing of the clip's colours; the palette is fitted on the first frame that spreads more.
MIN_PALETTE_SPREAD = 0.03


@dataclass
class VideoPlan:
    """What to read and what to write: the clip, the output, the frames' size and timing, the audio.

    plan_video makes one and checks it; stylize_video carries it out."""

    clip: Path
    output: Path
    info: VideoInfo
    size: tuple[int, int]  # (width, height) of the stylised frames
    sar: Fraction  # the pixel aspect ratio recorded in the output
    rate: Fraction  # frames per second written
    fps: Fraction | None = None  # re-timed to this rate (each frame once), or None: the clip's frames at its timing
    start: float | None = None  # seconds of the clip skipped
    duration: float | None = None  # seconds of the clip stylised (None: to its end)
    audio_from: Path | None = None  # the clip, when its audio goes into the output
    overwrite: bool = False
    notes: list[str] = field(default_factory=list)  # what the plan leaves out, and why (e.g. the audio), for the user

    @property
    def expected_frames(self) -> int | None:
        """For a progress bar only (an estimate; None when unknown)."""
        if self.info.n_frames is None:
            return None
        count = self.info.n_frames - round((self.start or 0) * self.info.fps)
        if self.duration is not None:
            count = min(count, round(self.duration * self.info.fps))
        return max(count, 0) or None


def plan_video(
    clip: str | os.PathLike,
    output: str | os.PathLike,
    *,
    size: int | None = None,
    max_size: int | None = None,
    fps: Fraction | None = None,
    start: float | None = None,
    duration: float | None = None,
    overwrite: bool = False,
) -> VideoPlan:
    """Probe `clip` and plan its stylisation into `output`; every check that needs no model is made here.

    size: the frames' shorter side; max_size: their longer side at most (else the clip's size). fps: re-time the
    frames to this rate (their audio is then left out; for a folder of frames, its rate). start, duration: seconds.
    Raises BadInputError for an output that exists (unless overwrite), an unknown format, or frames that would be
    too small or above the pixel limit."""
    clip, output = Path(clip), Path(output)
    if size is not None and max_size is not None:
        raise SettingError("{size} and {max_size} exclude each other; give one")
    if duration == 0:
        raise SettingError("{duration} 0 leaves no frames; give a positive number of seconds")
    info = video_io.probe(clip, fps=fps)
    video_io.check_output(output, overwrite=overwrite)  # before the model loads: a typo costs nothing
    frame_size, sar = fit_frame_size(info.size, size=size, max_size=max_size), info.sar
    if sar != 1 and video_io.output_kind(output) in ("frames", ".gif"):  # they cannot record non-square pixels
        frame_size, sar = square_pixels(frame_size, sar), Fraction(1)
    check_pixel_limit(*frame_size, f"{clip}: each frame")
    if min(frame_size) < MIN_SIDE:
        width, height = frame_size
        raise SettingError(f"{clip}: frames would be {width}x{height}; each side must be at least {MIN_SIDE} (see {{size}})")
    rate = fps or info.fps
    notes: list[str] = []
    audio_from = _audio_source(clip, info, output, rate, notes)
    return VideoPlan(clip, output, info, frame_size, sar, rate, fps, start, duration, audio_from, overwrite, notes)


def stylize_video(
    clip: str | os.PathLike[str],
    style: StyleLike,
    output: str | os.PathLike[str] | None = None,
    *,
    stylizer: Stylizer | None = None,
    alpha: float = 1.0,
    seed: int = 0,
    size: int | None = None,
    max_size: int | None = None,
    fps: Fraction | None = None,
    start: float | None = None,
    duration: float | None = None,
    palette: str | None = None,
    hold: float = HOLD_THRESHOLD,
    refine: int = 0,
    codec: str | None = None,
    crf: int = VIDEO_CRF,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    notes: Callable[[str], None] = log.info,
) -> Path:
    """`adaattn video` as a function: stylise `clip` (a video file or a folder of frames) with `style` into `output`
    (default <clip>_stylized_<style>.mp4 beside the clip; a name without extension: a folder of PNG frames); returns
    the output's path. Nothing is written if it fails or is interrupted.

    stylizer: default Stylizer.load(default_video_model()). style: a Style of that stylizer or a picture (encoded
    with `seed`). size/max_size/fps/start/duration/overwrite: plan_video's; palette: None = default_palette's;
    hold, refine, codec, crf, progress: render_video's. notes(text): what is left out (audio that cannot follow).
    """
    if output is None:
        output = default_output(clip, Path(style).stem if isinstance(style, (str, os.PathLike)) else "style")
    plan = plan_video(clip, output, size=size, max_size=max_size, fps=fps, start=start, duration=duration, overwrite=overwrite)
    for note in plan.notes:
        notes(note)
    stylizer = stylizer or Stylizer.load(default_video_model())
    render_video(
        stylizer,
        stylizer.as_style(style, seed, None),
        plan,
        alpha=alpha,
        seed=seed,
        palette=palette,
        hold=hold,
        refine=refine,
        codec=codec,
        crf=crf,
        progress=progress,
    )
    return plan.output


def default_output(clip: str | os.PathLike[str], style_name: str) -> Path:
    """<clip>_stylized_<style>.mp4 in the current folder (`adaattn video` without -o)."""
    return Path(f"{Path(clip).stem}_stylized_{style_name}.mp4")


def check_palette(palette: str | None, method: str) -> str:
    """The palette to use: "painting", "image" or "own" as given (the image model's palette fits only the video
    model's frames), None: default_palette's."""
    if palette is None:
        return default_palette(method)
    if palette not in PALETTES:
        raise SettingError(f"{{palette}} is one of {', '.join(PALETTES)}; got {palette!r}")
    if palette == "image" and method != "adaattn-video":
        raise SettingError(f"{{palette}} image recolours the adaattn-video model's frames; this model is {method}")
    return palette


def default_video_model() -> str:
    """The video model when one is installed, else the image model (so that video works out of the box)."""
    return "adaattn-video" if find_weights("adaattn-video.safetensors") else "adaattn"


def default_palette(method: str) -> str:
    """ "painting" (the painting's colours, docs/video.md) for the video model, whose own colours are paler, else
    "own" (the image models take the painting's colours themselves)."""
    return "painting" if method == "adaattn-video" else "own"


def render_video(
    stylizer: Stylizer,
    style: Style,
    plan: VideoPlan,
    *,
    alpha: float = 1.0,
    seed: int = 0,
    batch: int | None = None,
    palette: str | None = None,
    image_stylizer: Stylizer | None = None,
    hold: float = HOLD_THRESHOLD,
    refine: int = 0,
    codec: str | None = None,
    crf: int = VIDEO_CRF,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Stylise the clip of `plan` with `style` (encoded by `stylizer`) and write its output; returns the frames written.

    batch: frames per forward pass (None: 1 on a CPU, where bigger batches are measured slower, else 4).
    palette: "painting" recolours the frames with the painting's colours, "image" with the image model's picture's
    (`image_stylizer`, default the installed adaattn model), one map fitted on the first frame that is not flat
    (fit_palette); "own" keeps the model's colours; None: check_palette's.
    hold: StaticHold's threshold (0: off). refine: steps of FrameRefiner per frame (0: off); it keeps still pixels
    itself, with `hold` (or HOLD_THRESHOLD) as its threshold, and no hold follows it.
    codec, crf: the encoder's (video_io.VideoWriter). progress(frames): called after each batch with its frame count.
    """
    palette = check_palette(palette, stylizer.model.method)
    if not 0 <= hold < 1:
        raise SettingError(f"{{hold}} is a difference of colour from 0 (off) to below 1, got {hold}")
    if refine < 0:
        raise SettingError(f"{{refine}} is a number of steps, 0 or more, got {refine}")
    batch = batch or default_batch(stylizer.device)
    # Without re-timing, frames come at the clip's rate by their timestamps (a variable rate keeps its timing);
    # re-timed: each frame once.
    frames = video_io.read_frames(
        plan.clip, size=plan.size, start=plan.start, duration=plan.duration, fps=plan.fps, rate=None if plan.fps else plan.info.fps
    )
    writer = video_io.VideoWriter(
        plan.output,
        fps=plan.rate,
        size=plan.size,
        codec=codec,
        crf=crf,
        audio_from=plan.audio_from,
        audio_start=plan.start,
        audio_duration=plan.duration,
        overwrite=plan.overwrite,
        sar=plan.sar,
    )
    recolour, hold_filter, refiner = None, StaticHold(hold) if hold else None, None
    if refine:  # the refinement keeps still pixels itself (the hold's test) and carries the rest along the motion
        refiner = FrameRefiner(stylizer, style, steps=refine, threshold=hold or HOLD_THRESHOLD, alpha=alpha, seed=seed)
        hold_filter = None
    with contextlib.closing(frames), writer:
        for chunk in _chunks(frames, batch):
            if palette != "own" and recolour is None:  # frames before the fit (all flat) keep their colours
                recolour = fit_palette(stylizer, chunk, style, alpha=alpha, seed=seed, target=palette, image_stylizer=image_stylizer)
            for frame in stylize_frames(
                stylizer, chunk, style, alpha=alpha, seed=seed, recolour=recolour, refine=refiner, hold=hold_filter
            ):
                writer.write(frame)
            if progress is not None:
                progress(len(chunk))
    return writer.frames


def default_batch(device: torch.device) -> int:
    """Frames per forward pass: 1 on a CPU, where bigger batches are measured slower (docs/performance.md), else 4."""
    return 1 if device.type == "cpu" else 4


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
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


def _audio_source(clip: Path, info: VideoInfo, output: Path, rate: Fraction, notes: list[str]) -> Path | None:
    """The clip, if its audio can go into the output unchanged in timing; else None, with the reason in `notes`."""
    if not info.has_audio:
        return None
    if video_io.output_kind(output) in ("frames", ".gif"):
        notes.append(f"note: {output} cannot hold audio; the clip's audio is left out")
        return None
    if rate != info.fps:
        notes.append("note: --fps re-times the frames, so the clip's audio would be out of sync; it is left out")
        return None
    return clip


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    iterator = iter(frames)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def fit_palette(
    stylizer: Stylizer,
    frames: list[np.ndarray],
    style: Style,
    *,
    alpha: float,
    seed: int,
    target: str = "painting",
    image_stylizer: Stylizer | None = None,
):
    """(A, b, blur): the colour map (fn.colour_transform) from the model's output of the first of `frames` whose
    colours spread (MIN_PALETTE_SPREAD) to the colours of `target`, or None if every frame is flat.

    target "painting": the painting's pixels (under the style's mask), the map's gain capped at MAX_PALETTE_GAIN and
    moved towards none by 1 - alpha. "image": the image model's picture of that frame with the painting's mean
    colour (image_stylizer, default the installed adaattn model, loaded here and dropped after). One fixed map gives
    every frame those colours without a per-frame shift that would follow what enters and leaves the scene."""
    frame = next((f for f in frames if _spread(torch.from_numpy(f).permute(2, 0, 1).float() / 255) >= MIN_PALETTE_SPREAD), None)
    if frame is None:
        return None
    source = stylize_frames(stylizer, [frame], style, alpha=alpha, seed=seed, as_uint8=False)[0]
    if target == "painting":
        painting = style.image if style.mask is None else style.image[:, style.mask.to(style.image.device) > 0.5]
        matrix, _ = fn.colour_transform(source, painting)
        u, gains, vh = torch.linalg.svd(matrix)
        matrix = u @ torch.diag(gains.clamp(max=MAX_PALETTE_GAIN)) @ vh
        means = [fn.mean_colour(style.image, style.mask), fn.mean_colour(source)]
        painting_mean, source_mean = (mean.double().view(3, 1).to(matrix.device) for mean in means)
        offset = alpha * (painting_mean - matrix @ source_mean)  # x -> x + alpha (A x + b - x)
        eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
        matrix = eye + alpha * (matrix - eye)
    else:
        image_stylizer = image_stylizer or _installed_image_stylizer(stylizer)
        image_style = image_stylizer.encode_style(style.image, mask=style.mask, seed=style.seed)
        picture = stylize_frames(image_stylizer, [frame], image_style, alpha=alpha, seed=seed, as_uint8=False, match_color=True)
        matrix, offset = fn.colour_transform(source, picture[0])
    return matrix, offset, PALETTE_BLUR[target] * min(frame.shape[:2])


def _spread(pixels: torch.Tensor) -> float:
    """How far colours [3, ...] spread: the root of their covariance's trace."""
    return float(pixels.reshape(3, -1).double().var(dim=1).sum().sqrt())


def _installed_image_stylizer(stylizer: Stylizer) -> Stylizer:
    """The installed adaattn image model, on the device and at the precision of `stylizer`."""
    image_stylizer = Stylizer.load("adaattn", device=stylizer.device, precision=stylizer.precision)
    log.info("model %s (%s) on %s, %s", "adaattn", "adaattn", image_stylizer.device, image_stylizer.precision)
    return image_stylizer


def stylize_frames(
    stylizer: Stylizer,
    chunk: list[np.ndarray],
    style: Style,
    *,
    alpha: float,
    seed: int,
    recolour=None,
    refine=None,
    hold=None,
    as_uint8: bool = True,
    match_color: bool = False,
):
    """uint8 frames [H, W, 3] -> stylised uint8 frames [B, H, W, 3], one forward pass (as_uint8=False: the float
    [B, 3, H, W] tensor). recolour: fit_palette's (A, b, blur), applied to each frame's low frequencies; refine: the
    clip's video_filters.FrameRefiner; hold: its video_filters.StaticHold, applied last (both keep state: pass the
    chunks in order). match_color: Stylizer.stylize's, off for frames (the palette carries the colour, steady)."""
    content = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div_(255)
    stylized = stylizer.stylize(content, [style], alpha=alpha, seed=seed, match_color=match_color)
    if recolour is not None:
        stylized = fn.recolour_low_frequencies(stylized, *recolour)
    if refine is not None:
        stylized = refine(content, stylized).to(stylized.device)
    if hold is not None:
        stylized = hold(content.to(stylized.device), stylized)
    if not as_uint8:
        return stylized
    return stylized.mul(255).round_().byte().permute(0, 2, 3, 1).cpu().numpy()
