"""video_io: probing, streamed reading and all-or-nothing writing, on small clips made here with ffmpeg."""

import os
import subprocess
import tracemalloc
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from videoclips import audio_seconds, make_clip

from adaattn_cli.errors import BadInputError
from adaattn_cli.video_io import VideoWriter, check_output, mux_audio, probe, read_frames


def textured_frames(count=12, size=(64, 48), step=2):
    """A smooth random texture panning right by `step` pixels per frame, uint8 [H, W, 3]."""
    width, height = size
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 8 + 1, (width + count * step) // 8 + 1, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((coarse.shape[1] * 8, coarse.shape[0] * 8), Image.BICUBIC))
    return [np.ascontiguousarray(texture[:height, t * step : t * step + width]) for t in range(count)]


def write(path, frames, **options):
    height, width = frames[0].shape[:2]
    with VideoWriter(path, fps=options.pop("fps", 25), size=(width, height), **options) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _brightness_error(frame, decoded):
    """Mean |difference| of the channel means: 4:2:0 video halves the colour resolution, brightness is kept."""
    return np.abs(frame.mean(-1) - decoded.astype(float).mean(-1)).mean()


def names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fps", ["25", "30000/1001"])
def test_probe_gives_the_exact_rate_size_length_and_audio(tmp_path, fps):
    info = probe(make_clip(tmp_path / "clip.mp4", fps=fps, audio=fps == "25"))
    assert info.fps == Fraction(fps) and info.size == (64, 48) and info.n_frames == 12
    assert info.has_audio == (fps == "25")
    assert info.duration == pytest.approx(12 / Fraction(fps), abs=0.02)


def test_read_frames_streams_resizes_and_trims(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    frames = list(read_frames(clip))
    assert len(frames) == 12 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])  # the pattern moves
    assert next(read_frames(clip, size=(32, 24))).shape == (24, 32, 3)
    trimmed = list(read_frames(clip, start=0.2, duration=0.2))  # frames 5..9 at 25 fps
    assert len(trimmed) == 5 and np.abs(trimmed[0].astype(int) - frames[5]).mean() < 2


def test_round_trip_keeps_frames_rate_and_pixels(tmp_path):
    frames = textured_frames()
    out = write(tmp_path / "out.mp4", frames, fps=Fraction(30000, 1001))
    assert probe(out).fps == Fraction(30000, 1001)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 12
    back = list(read_frames(out))
    assert np.mean([_brightness_error(a, b) for a, b in zip(frames, back)]) < 4  # crf 18: a small loss
    assert names(tmp_path) == ["out.mp4"]  # no temporaries left


def test_frame_folders_round_trip_exactly(tmp_path):
    frames = textured_frames(count=5, size=(63, 47))
    write(tmp_path / "frames", frames)
    assert names(tmp_path / "frames") == [f"frame_{i:06d}.png" for i in range(1, 6)]
    info = probe(tmp_path / "frames", fps=10)
    assert (info.fps, info.size, info.n_frames, info.has_audio) == (10, (63, 47), 5, False)
    assert all(np.array_equal(a, b) for a, b in zip(frames, read_frames(tmp_path / "frames")))
    assert len(list(read_frames(tmp_path / "frames", start=0.2, duration=0.2, fps=10))) == 2


@pytest.mark.parametrize("suffix, size", [(".mp4", (64, 48)), (".webm", (64, 48)), (".gif", (63, 47))])
def test_odd_sizes_are_padded_for_420_codecs(tmp_path, suffix, size):
    frames = textured_frames(count=4, size=(63, 47))
    out = write(tmp_path / f"odd{suffix}", frames)
    info = probe(out)
    assert info.size == size and imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 4
    if suffix == ".mp4":  # the added column and row repeat the edge
        back = next(read_frames(out)).astype(int)
        assert np.abs(back[:, 63] - back[:, 62]).mean() < 6 and _brightness_error(frames[0], back[:47, :63]) < 4


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_audio_is_copied_or_reencoded_and_trimmed(tmp_path, suffix):
    source = make_clip(tmp_path / "source.mp4", frames=25, audio=True)
    out = write(tmp_path / f"out{suffix}", textured_frames(count=10), audio_from=source, audio_start=0.2, audio_duration=0.4)
    info = probe(out)
    assert info.has_audio and info.duration == pytest.approx(0.4, abs=0.07)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 10
    assert names(tmp_path) == sorted(["source.mp4", f"out{suffix}"])


def test_mux_audio_adds_a_trimmed_audio_track_to_a_finished_video(tmp_path):
    video = write(tmp_path / "silent.mp4", textured_frames(count=10))
    source = make_clip(tmp_path / "source.mp4", frames=25, audio=True)
    mux_audio(video, source, tmp_path / "out.mp4", start=0.2, duration=0.3, length=0.4)
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "out.mp4"))[0] == 10  # the video stream copied whole
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(0.3, abs=0.05)
    (tmp_path / "notes.txt").write_text("no audio here")
    with pytest.raises(BadInputError, match="the audio of .*notes.txt could not be added"):
        mux_audio(video, tmp_path / "notes.txt", tmp_path / "failed.mp4", length=0.4)
    assert not (tmp_path / "failed.mp4").exists()


def test_gif_and_frame_folders_drop_audio(tmp_path):
    source = make_clip(tmp_path / "source.mp4", audio=True)
    assert not probe(write(tmp_path / "out.gif", textured_frames(count=3), audio_from=source)).has_audio


def _write_bad(tmp_path, kind):
    files = {"text": "notes.mp4", "random": "random.mp4", "empty": "empty.mp4", "audio": "tone.m4a"}
    path = tmp_path / files.get(kind, "missing.mp4")
    if kind == "text":
        path.write_text("not a video")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "empty":
        path.touch()
    elif kind == "audio":
        tone = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(path)]
        subprocess.run(tone, check=True)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("empty", "file is empty"),
        ("text", "not a readable video"),
        ("random", "not a readable video"),
        ("audio", "has no video stream"),
    ],
)
def test_unusable_inputs_are_named_clearly(tmp_path, kind, message):
    path = _write_bad(tmp_path, kind)
    for attempt in (lambda: probe(path), lambda: list(read_frames(path))):
        with pytest.raises(BadInputError, match=message) as error:
            attempt()
        assert str(error.value).startswith(f"{path}: ")


def test_a_damaged_frame_mid_clip_stops_reading_with_its_number(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=48)
    data = bytearray(clip.read_bytes())
    data[len(data) // 2 : len(data) * 55 // 100] = bytes(len(data) * 55 // 100 - len(data) // 2)  # zeros in the middle
    clip.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match=r"clip.mp4: decoding failed at frame \d+: "):
        list(read_frames(clip))


def test_nothing_after_the_end_is_an_error(tmp_path):
    with pytest.raises(BadInputError, match="no video frames after 5 s"):
        list(read_frames(make_clip(tmp_path / "clip.mp4"), start=5))


def test_existing_outputs_need_overwrite_and_frame_folders_stay_safe(tmp_path):
    (tmp_path / "out.mp4").write_text("keep me")
    with pytest.raises(BadInputError, match="exists; pass overwrite=True"):
        write(tmp_path / "out.mp4", textured_frames(count=2))
    assert (tmp_path / "out.mp4").read_text() == "keep me"
    write(tmp_path / "out.mp4", textured_frames(count=2), overwrite=True)
    assert probe(tmp_path / "out.mp4").n_frames == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(BadInputError, match="other than frame_NNNNNN.png"):
        check_output(tmp_path / "mine", overwrite=True)
    with pytest.raises(BadInputError, match="unknown video extension '.avi'"):
        check_output(tmp_path / "out.avi")


@pytest.mark.parametrize("target", ["out.mp4", "out.mp4", "frames"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_leaves_nothing(tmp_path, target, error):
    source = make_clip(tmp_path / "source.mp4", audio=True)
    before = names(tmp_path)
    with pytest.raises(error):
        with VideoWriter(tmp_path / target, fps=25, size=(64, 48), audio_from=source) as writer:
            for index, frame in enumerate(textured_frames(count=6)):
                if index == 4:
                    raise error()
                writer.write(frame)
    assert names(tmp_path) == before
    process = getattr(writer._output, "process", None)  # an _Encoder's ffmpeg; a frame folder has none
    assert process is None or process.poll() is not None  # ffmpeg is gone


def test_encoder_failures_are_reported_and_leave_nothing(tmp_path):
    with pytest.raises(BadInputError, match="out.mp4: encoding failed: Unknown encoder 'nosuch'"):
        write(tmp_path / "out.mp4", textured_frames(count=3), codec="nosuch")
    assert names(tmp_path) == []


def test_a_long_clip_streams_in_constant_memory(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", size=(96, 64), frames=600)  # 11 MB of frames if all were held
    tracemalloc.start()
    try:
        with VideoWriter(tmp_path / "out.mp4", fps=25, size=(96, 64)) as writer:
            for frame in read_frames(clip):
                writer.write(255 - frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert writer.frames == 600 and peak < 2_000_000, peak
    assert os.path.getsize(tmp_path / "out.mp4") > 0
