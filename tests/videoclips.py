"""Synthetic clips shared by the video tests."""

import re
import subprocess

import imageio_ffmpeg


def make_clip(path, *, size=(64, 48), frames=12, fps="25", audio=False, sar=None):
    """A moving test pattern (ffmpeg's testsrc2) as H.264, with a 1 s 440 Hz tone if `audio`; `sar` (e.g. "12/11")
    makes its pixels non-square."""
    pattern = f"testsrc2=size={size[0]}x{size[1]}:rate={fps}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", pattern]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    if sar:
        command += ["-vf", f"setsar=r={sar}:max=65535"]  # exact: setsar rounds to terms of at most 100 by default
    subprocess.run(command + ["-frames:v", str(frames), "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def make_vfr_clip(path, *, gap=0.6):
    """24 frames at 24 fps with a `gap`-second pause after the 12th (the 12th is shown that much longer), and a
    tone as long as the picture: a variable-frame-rate clip (Matroska keeps each frame's timestamp)."""
    seconds = 24 / 24 + gap
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
        "-frames:v",
        "24",
        "-vf",
        f"setpts='if(lt(N,12),N,N+{gap}*24)/24/TB'",
        "-fps_mode",
        "vfr",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-t",
        str(seconds),
        str(path),
    ]
    subprocess.run(command, check=True)
    return path


def audio_seconds(path):
    """How long the audio stream of `path` plays (0 without audio)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:a:0?", "-f", "null", "-"]
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", subprocess.run(command, capture_output=True, text=True).stderr)
    return int(times[-1][0]) * 3600 + int(times[-1][1]) * 60 + float(times[-1][2]) if times else 0.0
