"""Video files and folders of frames as streams of uint8 RGB frames [H, W, 3]; no Typer or Rich here.

    info = probe("clip.mp4")                          # fps (exact Fraction), size, duration, audio
    with VideoWriter("out.mp4", fps=info.fps, size=info.size, audio_from="clip.mp4") as writer:
        for frame in read_frames("clip.mp4"):         # streamed: memory does not grow with the clip
            writer.write(frame)

Both ends run the ffmpeg binary that imageio-ffmpeg ships. We start it ourselves rather than through
imageio_ffmpeg.read_frames/write_frames: those generators hide ffmpeg's exit status and error text, which we
need to tell a damaged clip from its end, to say why encoding failed, and to leave no partial output behind.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from .config import VIDEO_CRF
from .errors import BadInputError
from .files import check_target, publish

log = logging.getLogger(__name__)

FOLDER_FPS = Fraction(25)  # frame folders carry no rate
FRAME_NAME = "frame_{:06d}.png"
# Output extension -> (default video codec, audio codec used when the source's cannot be copied).
CONTAINERS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".gif": ("gif", None),
}
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}  # codecs with a -crf scale
# Words of ffmpeg's error lines (its stderr also holds stream listings and progress).
_ERROR_WORDS = re.compile(r"error|invalid|unknown|unsupported|not found|no such|could not|cannot|failed|not divisible", re.I)
# ffmpeg in its own process group: Ctrl-C reaches only Python, which then stops ffmpeg itself.
_OWN_GROUP: dict[str, Any]
if sys.platform == "win32":
    _OWN_GROUP = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
else:
    _OWN_GROUP = {"start_new_session": True}


@dataclass(frozen=True)
class VideoInfo:
    fps: Fraction  # exact: 30000/1001 for NTSC video; float(info.fps) for a number
    size: tuple[int, int]  # (width, height) of the decoded frames, rotation metadata applied
    n_frames: int | None  # duration x fps for files (an estimate), exact for frame folders
    duration: float | None  # seconds; None if the container does not say
    has_audio: bool
    sar: Fraction = Fraction(1)  # pixel aspect ratio (128/117: pixels a little wider than tall); 1 = square


def probe(path: str | os.PathLike, *, fps: Fraction | float | None = None) -> VideoInfo:
    """What a clip holds; decodes its first frame, so a file that passes can be read.

    `fps` is the rate of a frame folder (default 25); files report their own.
    """
    path = Path(path)
    _check_input(path)
    if path.is_dir():
        return _probe_folder(path, Fraction(fps) if fps else FOLDER_FPS)
    # showinfo prints the exact frame rate ("frame_rate: 30000/1001") and the first decoded frame's size.
    command = _ffmpeg("-i", f"file:{path}", "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-", loglevel="info")
    text = subprocess.run(command, capture_output=True, **_OWN_GROUP).stderr.decode(errors="replace")
    first_frame = re.search(r"\bn:\s*0\b.*?\bs:(\d+)x(\d+)", text)
    if re.search(r"Stream map '0:v:0' matches no streams|option 'map'", text):
        raise BadInputError(f"{path}: has no video stream")
    if "Error opening input" in text or not re.search(r"Stream #0:\d+.*: Video:", text):
        raise BadInputError(f"{path}: not a readable video ({_reason(text)})")
    if first_frame is None:
        raise BadInputError(f"{path}: has no video frames ({_reason(text)})")
    rate = re.search(r"frame_rate: (\d+)/(\d+)", text)
    listed = re.search(r"Video:.*?, ([\d.]+) fps", text)
    if rate and int(rate[1]) > 0 and int(rate[2]) > 0:
        fps = Fraction(int(rate[1]), int(rate[2]))
    else:
        fps = Fraction(listed[1]) if listed else FOLDER_FPS
    aspect = re.search(r"\bn:\s*0\b.*?\bsar:(\d+)/(\d+)", text)
    length = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = int(length[1]) * 3600 + int(length[2]) * 60 + float(length[3]) if length else None
    inputs = text.split("Stream mapping:")[0]  # only the input's streams, not what the probe maps
    return VideoInfo(
        fps=fps,
        size=(int(first_frame[1]), int(first_frame[2])),
        n_frames=round(duration * fps) if duration else None,
        duration=duration,
        has_audio=re.search(r"Stream #0:\d+.*: Audio:", inputs) is not None,
        sar=Fraction(int(aspect[1]), int(aspect[2])) if aspect and int(aspect[1]) > 0 and int(aspect[2]) > 0 else Fraction(1),
    )


def read_frames(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    start: float | None = None,
    duration: float | None = None,
    fps: Fraction | float | None = None,
    rate: Fraction | None = None,
) -> Generator[np.ndarray, None, None]:
    """Frames as uint8 [H, W, 3] arrays, one at a time (ffmpeg decodes ahead in its own process).

    size: (width, height) to resize to (default: the clip's). start, duration: seconds to skip and to read.
    fps: the rate of a frame folder, to turn start/duration into frame numbers (default 25).
    rate: a file's frames at this constant rate, each repeated or dropped by its timestamp, so that a clip with
    a variable frame rate keeps its timing (probe's fps is the rate to give); None: each decoded frame once.
    A frame that cannot be decoded ends the stream with a BadInputError naming the frame.
    """
    path = Path(path)
    _check_input(path)
    if path.is_dir():
        return _read_folder(path, size, start, duration, Fraction(fps) if fps else FOLDER_FPS)
    return _read_file(path, size or probe(path).size, start, duration, rate)


def _check_input(path: Path) -> None:
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise BadInputError(f"{path}: file is empty")


def _read_file(path: Path, size: tuple[int, int], start, duration, rate: Fraction | None) -> Generator[np.ndarray, None, None]:
    width, height = size
    trim = (["-ss", str(start)] if start else []) + (["-t", str(duration)] if duration else [])
    # -fps_mode cfr -r RATE: the frames a constant-rate stream of the clip's timing shows (a frame shown for 0.6 s
    # at 24 fps comes 14 times), since the encoder takes frames at one rate; passthrough: each frame once.
    timing = ["-fps_mode", "cfr", "-r", str(rate)] if rate else ["-fps_mode", "passthrough"]
    # -xerror: a damaged frame stops decoding (and is reported) instead of being patched over silently.
    command = _ffmpeg(
        "-xerror",
        *trim,
        "-i",
        f"file:{path}",
        "-map",
        "0:v:0",
        *timing,
        "-vf",
        f"scale={width}:{height}",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    )
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: ffmpeg can never block on a full stderr
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, **_OWN_GROUP)
        count = 0
        try:
            while (got := _fill(process.stdout, frame := np.empty((height, width, 3), np.uint8))) == frame.nbytes:
                count += 1
                yield frame
            if process.wait() != 0 or got:  # frame numbers are approximate: ffmpeg decodes a few frames ahead
                raise BadInputError(f"{path}: decoding failed at frame {count + 1}: {_reason(_text(errors))}")
        finally:
            _stop(process)  # also when the caller stops early or is interrupted
    if count == 0:
        raise BadInputError(f"{path}: no video frames" + (f" after {start} s" if start else ""))


def _fill(stream, frame: np.ndarray) -> int:
    """Read into `frame` until it is full or the stream ends; the number of bytes read."""
    view, done = frame.data.cast("B"), 0
    while done < len(view) and (got := stream.readinto(view[done:])):
        done += got
    return done


def _frame_files(folder: Path) -> list[Path]:
    from PIL import Image

    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in readable)
    if not files:
        raise BadInputError(f"{folder}: no image files in this folder")
    return files


def _load_frame(path: Path) -> np.ndarray:
    from .image_io import load_image

    rgb = load_image(path).rgb  # EXIF rotation, grey, palette and 16-bit handled there
    return rgb.mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()


def _probe_folder(folder: Path, fps: Fraction) -> VideoInfo:
    files = _frame_files(folder)
    height, width = _load_frame(files[0]).shape[:2]
    return VideoInfo(fps, (width, height), len(files), float(len(files) / fps), has_audio=False)


def _read_folder(folder: Path, size, start, duration, fps: Fraction) -> Generator[np.ndarray, None, None]:
    from PIL import Image

    files = _frame_files(folder)
    first = round(start * fps) if start else 0
    files = files[first : first + round(duration * fps) if duration else None]
    if not files:
        raise BadInputError(f"{folder}: no video frames after {start} s")
    source_size = None
    for path in files:
        frame = _load_frame(path)
        source_size = source_size or frame.shape[:2]
        if frame.shape[:2] != source_size:
            raise BadInputError(
                f"{path} is {frame.shape[1]}x{frame.shape[0]} but the first frame is {source_size[1]}x{source_size[0]}; "
                "frames of a clip must have one size"
            )
        if size is not None and (frame.shape[1], frame.shape[0]) != tuple(size):
            frame = np.asarray(Image.fromarray(frame).resize(tuple(size), Image.Resampling.BICUBIC))
        yield frame


# --- writing ----------------------------------------------------------------------------------------


def output_kind(path: Path) -> str:
    """The output's extension (a key of CONTAINERS), or "frames" for a folder of PNG frames."""
    suffix = path.suffix.lower()
    if suffix in CONTAINERS:
        return suffix
    if not suffix or path.is_dir():
        return "frames"
    raise BadInputError(f"{path}: unknown video extension '{path.suffix}'; use {', '.join(CONTAINERS)} or a folder name")


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Refuse an output that exists (unless overwrite) or could not be replaced safely; cheap, call it early."""
    path = Path(path)
    folder = output_kind(path) == "frames"
    check_target(path, overwrite=overwrite)
    if not path.exists():
        return
    if path.is_dir() != folder:
        wanted = "a folder name" if folder else "a video file name"
        raise BadInputError(f"{path}: is a {'file' if folder else 'folder'}; give {wanted}")
    # --overwrite replaces a frame folder only if it holds nothing but frames: never delete a user's folder.
    if folder and any(not re.fullmatch(r"frame_\d{6}\.png", p.name) for p in path.iterdir()):
        raise BadInputError(f"{path}: holds files other than frame_NNNNNN.png; refusing to replace it")


def frame_rate(fps: Fraction | float | str) -> Fraction:
    """An exact rate; floats such as 29.97002997 snap to the nearest simple fraction (30000/1001)."""
    try:
        rate = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise BadInputError(f"frame rate {fps!r} is not a number such as 25, 29.97 or 30000/1001") from None
    if rate <= 0:
        raise BadInputError(f"frame rate must be positive, got {fps}")
    return rate


class VideoWriter:
    """Write uint8 RGB frames [H, W, 3] to a video file or a folder of PNG frames, all or nothing.

    Formats by extension: .mp4 .mov .mkv (H.264), .webm (VP9), .gif (palette per clip); a name without extension
    is a folder of frame_000001.png ... `codec` overrides the video codec, `crf` is its quality (lower is better;
    used by x264, x265, VP9 and AV1). H.264/VP9 store 4:2:0 colour, which needs even sizes: an odd width or height
    is padded by one pixel (the edge repeated), so such a video is 1 pixel wider or taller than its frames.

    `audio_from`: a clip whose audio is copied into the output (re-encoded if the container does not take it),
    trimmed by `audio_start`/`audio_duration` seconds; GIFs and frame folders have no audio.
    `sar`: the pixel aspect ratio to record in a video file, so that non-square pixels show at the clip's
    display aspect (GIFs and PNG frames cannot record one: give them square pixels).

    Everything goes to hidden temporary names in the output's folder and is renamed into place when the block
    ends without an exception. On an exception or Ctrl-C ffmpeg is killed, the temporaries are deleted and no
    output exists.

    VideoWriter itself does only that and picks the writer by the extension: frames go to a _FrameFolder or to an
    _Encoder, and mux_audio adds the audio to the finished, silent video.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: Fraction | float | str,
        size: tuple[int, int],
        codec: str | None = None,
        crf: int = VIDEO_CRF,
        audio_from: str | os.PathLike | None = None,
        audio_start: float | None = None,
        audio_duration: float | None = None,
        overwrite: bool = False,
        sar: Fraction = Fraction(1),
    ):
        self.path = Path(path)
        self.kind = output_kind(self.path)
        if sar != 1 and self.kind in ("frames", ".gif"):
            raise ValueError(f"{self.path}: GIFs and PNG frames cannot record a pixel aspect ratio; resample to square pixels")
        check_output(self.path, overwrite=overwrite)
        self.overwrite = overwrite
        self.fps = frame_rate(fps)
        self.size = (int(size[0]), int(size[1]))
        if self.kind == "frames":
            self._output: _FrameFolder | _Encoder = _FrameFolder()
        else:
            self._output = _Encoder(self.path, fps=self.fps, size=self.size, codec=codec, crf=crf, sar=Fraction(sar))
        self.audio: tuple[Path, float | None, float | None] | None = None  # (source, start, duration)
        if self.kind not in ("frames", ".gif") and audio_from is not None:
            self.audio = (Path(audio_from), audio_start, audio_duration)
        self.frames = 0
        self._token = secrets.token_hex(4)
        self._temporaries: list[Path] = []

    def _temporary(self, tag: str) -> Path:
        # Hidden, next to the output: the final rename stays on one filesystem. Files keep the extension, which
        # tells ffmpeg the container.
        name = f".{self.path.name}.{tag}-{self._token}" + ("" if self.kind == "frames" else self.path.suffix)
        self._temporaries.append(self.path.with_name(name))
        return self._temporaries[-1]

    def __enter__(self) -> "VideoWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._output.start(self._temporary("tmp"))
        except OSError as error:
            self._cleanup()
            raise BadInputError(f"{self.path}: cannot write here ({error.strerror or error})") from None
        return self

    def write(self, frame: np.ndarray) -> None:
        expected = (self.size[1], self.size[0], 3)
        if frame.dtype != np.uint8 or frame.shape != expected:
            raise ValueError(f"expected a uint8 frame of shape {expected}, got {frame.dtype} {frame.shape}")
        self.frames += 1
        self._output.write(frame)

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is None:
                self._finish()
        finally:
            self._cleanup()

    def _finish(self) -> None:
        if self.frames == 0:
            raise BadInputError(f"{self.path}: no frames to write")
        finished = self._output.finish()
        if self.audio:
            finished = self._with_audio(finished, *self.audio)
        self._replace(finished)

    def _with_audio(self, video: Path, source: Path, start: float | None, duration: float | None) -> Path:
        """The finished video with the source's audio, or the video alone if it cannot be added (a warning)."""
        muxed = self._temporary("mux")
        try:
            mux_audio(video, source, muxed, start=start, duration=duration, length=float(self.frames / self.fps))
        except BadInputError as error:  # the picture is what was asked for: keep it
            log.warning("%s: %s; writing the video without it", self.path, error)
            return video
        return muxed

    def _replace(self, finished: Path) -> None:
        if self.overwrite and self.kind == "frames" and self.path.exists():
            check_output(self.path, overwrite=True)  # again: it still holds only frames
            # a rename cannot replace a folder that holds files: the old one goes aside, deleted with the temporaries
            old = self._temporary("old")
            os.replace(self.path, old)
        publish(finished, self.path, overwrite=self.overwrite)  # an output that appeared meanwhile stays

    def _cleanup(self) -> None:
        self._output.stop()  # first: a running ffmpeg still writes to its temporary
        for temporary in self._temporaries:
            if temporary.is_dir():
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                temporary.unlink(missing_ok=True)


class _FrameFolder:
    """Frames as frame_000001.png ... in a new folder (`start`); VideoWriter names it and publishes it."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.count = 0

    def start(self, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        assert self.folder is not None, "start() first"
        self.count += 1
        Image.fromarray(frame).save(self.folder / FRAME_NAME.format(self.count))

    def finish(self) -> Path:
        assert self.folder is not None, "start() first"
        return self.folder

    def stop(self) -> None:
        pass  # nothing runs in the background; VideoWriter deletes an unfinished folder


class _Encoder:
    """An ffmpeg process that encodes the frames piped to it into one file (`start`): a video or a GIF, no audio.

    `path` is the output the user named (for messages and its format); the file written is the one `start` gets.
    """

    def __init__(self, path: Path, *, fps: Fraction, size: tuple[int, int], codec: str | None, crf: int, sar: Fraction):
        self.path, self.kind, self.fps, self.size = path, path.suffix.lower(), fps, size
        self.codec, self.crf, self.sar = codec or CONTAINERS[self.kind][0], crf, sar
        # 4:2:0 video needs even sizes: one row/column of edge pixels where a side is odd (a GIF takes any size)
        self.pad = (0, 0) if self.kind == ".gif" else (size[1] % 2, size[0] % 2)
        self.process: subprocess.Popen | None = None
        self.target: Path | None = None
        self._errors: IO[bytes] | None = None

    def start(self, target: Path) -> None:
        width, height = self.size[0] + self.pad[1], self.size[1] + self.pad[0]
        if self.kind == ".gif":
            codec = ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse"]  # one palette fitted to the whole clip
        else:
            # max: setsar reduces ratios to terms of at most 100 by default (128/117 would become 93/85)
            sar = f"setsar=r={self.sar.numerator}/{self.sar.denominator}:max=65535"
            codec = ["-c:v", self.codec, "-pix_fmt", "yuv420p", "-vf", sar]
            if self.codec in _CRF_CODECS:
                codec += ["-crf", str(self.crf)] + (["-b:v", "0"] if self.codec == "libvpx-vp9" else [])
        command = _ffmpeg(
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(self.fps),
            "-i",
            "pipe:0",
            "-an",
            *codec,
            *_container_options(self.kind),
            f"file:{target}",
        )
        self._errors = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on a full stderr
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._errors, **_OWN_GROUP)
        self.target = target

    def write(self, frame: np.ndarray) -> None:
        assert self.process is not None and self.process.stdin is not None, "start() first"
        if any(self.pad):
            frame = np.pad(frame, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).data)
        except OSError:  # ffmpeg stopped: its stderr says why
            self.process.wait()
            raise BadInputError(f"{self.path}: encoding failed: {_reason(_text(self._errors))}") from None

    def finish(self) -> Path:
        """Let ffmpeg finish the file; the file, or a BadInputError with ffmpeg's reason."""
        assert self.process is not None and self.process.stdin is not None and self.target is not None, "start() first"
        try:
            self.process.stdin.close()  # end of stream: ffmpeg finishes the file
        except OSError:  # ffmpeg already stopped; its exit status and stderr say why
            pass
        if self.process.wait() != 0:
            raise BadInputError(f"{self.path}: encoding failed: {_reason(_text(self._errors))}")
        return self.target

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        if self._errors is not None:
            self._errors.close()


def mux_audio(video: Path, source: Path, output: Path, *, start: float | None = None, duration: float | None = None, length: float) -> None:
    """Write `video` with the audio of `source` (from `start`, for `duration` seconds) to `output`, a new file of a
    container that holds audio (its extension says which; not a GIF).

    The video stream is copied as it is; the audio is copied if the container takes it, else re-encoded with the
    container's codec (CONTAINERS). The output ends at `length` seconds, the video's: audio beyond the last frame is
    cut (-shortest can drop frames). A source without audio gives the video alone. If the audio cannot be added,
    a BadInputError with ffmpeg's reason (it names the source, not `output`: the caller knows what it was writing)
    and no `output`.
    """
    kind = output.suffix.lower()
    fallback = CONTAINERS.get(kind, (None, None))[1]  # the audio codec when the source's cannot be copied
    if fallback is None:
        raise ValueError(f"{output}: not a container that holds audio")
    trim = (["-ss", str(start)] if start else []) + (["-t", str(duration)] if duration else [])
    for audio_codec in ("copy", fallback):
        command = _ffmpeg(
            "-y",
            "-i",
            f"file:{video}",
            *trim,
            "-i",
            f"file:{source}",
            "-map",
            "0:v:0",
            "-map",
            "1:a?",
            "-c:v",
            "copy",
            "-c:a",
            audio_codec,
            "-t",
            str(length),
            *_container_options(kind),
            f"file:{output}",
        )
        result = subprocess.run(command, capture_output=True, **_OWN_GROUP)
        if result.returncode == 0:
            return
    output.unlink(missing_ok=True)  # what the failed tries left
    raise BadInputError(f"the audio of {source} could not be added ({_reason(result.stderr.decode(errors='replace'))})")


def _container_options(kind: str) -> list[str]:
    return ["-movflags", "+faststart"] if kind in (".mp4", ".mov") else []  # playable while downloading


# --- ffmpeg -----------------------------------------------------------------------------------------


def _ffmpeg(*args: str, loglevel: str = "error") -> list[str]:
    from imageio_ffmpeg import get_ffmpeg_exe

    return [get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel, *args]


def _stop(process: subprocess.Popen) -> None:
    """Kill ffmpeg if it still runs (interrupted or abandoned), reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:  # a broken pipe to a killed ffmpeg
                pass


def _text(errors) -> str:
    errors.seek(0)
    return errors.read().decode(errors="replace")


def _reason(stderr: str) -> str:
    """ffmpeg's first error line (the cause; later lines are consequences), without "[h264 @ 0x...]" prefixes."""
    lines = [re.sub(r"^(\[[^]]*\]\s*)+", "", line).strip() for line in stderr.splitlines()]
    errors = [line for line in lines if _ERROR_WORDS.search(line)]
    return (errors or [line for line in lines if line] or ["ffmpeg gave no reason"])[0]
