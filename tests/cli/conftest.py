"""CLI fixtures: tiny random models on a private weights path, image files, and the app under CliRunner."""

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adaattn_cli.cli import app
from adaattn_cli.encoders import build_encoder
from adaattn_cli.models import build_model
from adaattn_cli.weights import load_encoder, save_encoder, save_model


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """A random vgg16-hed encoder and adain/adaattn models trained "with" it (the header records its hash).

    Decoders are 8 times narrower than the real ones (width_divisor, kept in the file's config): fast tests.
    """
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    encoder = load_encoder(path=save_encoder(build_encoder("vgg16-hed"), folder / "vgg16-hed.safetensors"))
    for method in ("adain", "adaattn"):
        save_model(build_model(method, encoder, width_divisor=8), folder / f"{method}.safetensors", provenance={"steps": 7})
    return folder


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, weights_dir):
    """Weights found first in weights_dir, user folder and working directory inside tmp_path."""
    monkeypatch.setenv("ADAATTN_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("ADAATTN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")  # tables and messages unwrapped
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # --max-pixels changes it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: thread start-up and contention cost more than they save
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cli():
    """Run `adaattn ARGS...` in-process; arguments may be Paths."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(arg) for arg in args], prog_name="adaattn")

    return invoke


@pytest.fixture
def make_image(tmp_path):
    """Write a random image: make_image("a.png", (width, height), mode="RGB", **save_options) -> path."""

    def make(name, size=(48, 32), mode="RGB", **save_options) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        width, height = size
        if mode == "I;16":
            image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
        else:
            image = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA").convert(mode)
        image.save(path, **save_options)
        return path

    return make


@pytest.fixture
def style_args(make_image, weights_dir):
    """Fast stylize/blend options: the AdaIN model, a 32x32 style kept at its size, CPU."""
    style = make_image("style.png", (32, 32))
    return ["--style", style, "--model", weights_dir / "adain.safetensors", "--style-size", 0, "--device", "cpu"]


@pytest.fixture
def error_line():
    """error_line(result) -> the single stderr line of a run that failed with exit code 2 (no traceback)."""

    def check(result) -> str:
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and "Traceback" not in result.output
        return lines[0]

    return check
