"""Synthetic clips shared by the video tests."""

import subprocess

import imageio_ffmpeg


def make_clip(path, *, size=(64, 48), frames=12, fps="25", audio=False):
    """A moving test pattern (ffmpeg's testsrc2) as H.264, with a 1 s 440 Hz tone if `audio`."""
    pattern = f"testsrc2=size={size[0]}x{size[1]}:rate={fps}"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", pattern]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    subprocess.run(command + ["-frames:v", str(frames), "-pix_fmt", "yuv420p", str(path)], check=True)
    return path
