"""Several processes on CPU (gloo), launched by torchrun as users launch them: training and stylising."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_training import _config, _write_images

from adaattn_cli.checkpoints import read_checkpoint
from adaattn_cli.data import SampleRange
from adaattn_cli.distributed import StopRequests, World, rank_device, share
from adaattn_cli.errors import BadInputError
from adaattn_cli.training import TrainConfig, Trainer
from adaattn_cli.weights import read_model_header

WORKER = Path(__file__).with_name("distributed_train.py")
LATE_MAIN = Path(__file__).with_name("late_main.py")
ROOT = Path(__file__).parents[1]


def _torchrun(processes: int, *args, env=None) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *map(str, args)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return command, environment


def _run(processes: int, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    command, environment = _torchrun(processes, *args, env=env)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _write_images(root / "content", 6, 0, "content")
    _write_images(root / "style", 6, 1, "style")
    return root


def _settings(data, workdir: Path, method="adaattn", **overrides) -> dict:
    """test_training's tiny run, as JSON for the worker processes: a global batch of 4 crops of 32, a log line per step."""
    tiny = dict(max_steps=3, batch_size=4, crop_size=32, load_size=48, schedule="constant", log_every=1)
    config = asdict(_config(data, workdir, method, **{**tiny, **overrides}))
    return {**config, "workdir": str(workdir), "output": str(workdir / "model.safetensors")}


def _logged(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "log.jsonl").read_text().splitlines()]


def _losses(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "lr")} for r in records]


def test_each_process_loads_its_slice_of_every_step():
    whole = list(SampleRange(3, 5, 4))
    assert whole == [12, 13, 14, 15, 16, 17, 18, 19]
    slices = [list(SampleRange(3, 5, 4, rank=r, processes=2)) for r in range(2)]
    assert slices == [[12, 13, 16, 17], [14, 15, 18, 19]]
    with pytest.raises(BadInputError, match="does not split evenly"):
        SampleRange(0, 1, 5, processes=2)


def test_shares_are_disjoint_and_cover_everything():
    items = list(range(11))
    parts = [share(items, k, 4) for k in range(4)]
    assert sorted(sum(parts, [])) == items and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_gpu_checks_give_every_process_the_same_answer(monkeypatch):
    # Only process 0 prints input errors, so a device refusal must not depend on the rank.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for local_rank in (0, 1):
        world = World(rank=local_rank, size=2, local_rank=local_rank)
        with pytest.raises(BadInputError, match="device cuda:0: under torchrun"):
            rank_device(torch.device("cuda", 0), world)
        with pytest.raises(BadInputError, match="2 processes on this machine but 1 GPUs"):
            rank_device(torch.device("cuda"), world)
    assert rank_device(torch.device("cpu"), World(rank=1, size=2, local_rank=1)) == torch.device("cpu")


def test_stop_requests_turn_signals_into_a_flag_and_put_the_handlers_back():
    before = {sig: signal.getsignal(sig) for sig in StopRequests.signals}
    with StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert {sig: signal.getsignal(sig) for sig in StopRequests.signals} == before


def test_a_trainer_leaves_the_global_rng_as_it_was(data, tmp_path):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    Trainer(TrainConfig(**_settings(data, tmp_path / "rng")))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.slow  # torchrun and training runs
def test_two_processes_take_the_steps_of_one_with_the_whole_batch(data, tmp_path):
    """2 processes x 2 images = 1 process x 4 images, for every method (DDP would also fail on a parameter a
    method leaves unused)."""
    methods = ["adaattn", "adaattn-video", "adain", "sanet"]
    configs = [_settings(data, tmp_path / f"two-{m}", m) for m in methods]
    (tmp_path / "configs.json").write_text(json.dumps(configs))
    result = _run(2, WORKER, tmp_path / "configs.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained") == 2 * len(methods)  # every process finished every run
    for method in methods:
        one = Trainer(TrainConfig(**_settings(data, tmp_path / f"one-{method}", method)))
        one.run()
        two = _logged(tmp_path / f"two-{method}")
        assert [r["step"] for r in two] == [1, 2, 3]
        for got, expected in zip(_losses(two), _losses(one.history)):
            assert got == pytest.approx(expected, rel=1e-4), method
        assert read_model_header(tmp_path / f"two-{method}" / "model.safetensors")["provenance"]["processes"] == 2


@pytest.mark.slow  # torchrun and training runs
def test_a_two_process_run_resumed_with_one_goes_on_as_one_run(data, tmp_path):
    two = _settings(data, tmp_path / "resumed", max_steps=2)
    (tmp_path / "first.json").write_text(json.dumps([two]))
    result = _run(2, WORKER, tmp_path / "first.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["processes"] == 2

    resumed = Trainer(TrainConfig(**{**two, "max_steps": 4}), resume=True)
    assert (resumed.step, resumed.resumed_from_processes) == (2, 2)
    resumed.run()
    whole = Trainer(TrainConfig(**_settings(data, tmp_path / "whole", max_steps=4)))
    whole.run()
    got, expected = _losses(_logged(tmp_path / "resumed")), _losses(whole.history)
    assert [r["step"] for r in got] == [1, 2, 3, 4]
    for step_got, step_expected in zip(got, expected):
        assert step_got == pytest.approx(step_expected, rel=1e-4)


@pytest.mark.slow  # torchrun and a training run
@pytest.mark.parametrize("target", ["torchrun", "process 1"])
def test_ctrl_c_saves_once_and_stops_every_process(data, tmp_path, target):
    workdir = tmp_path / "stopped"
    (tmp_path / "long.json").write_text(json.dumps([_settings(data, workdir, max_steps=100000, crop_size=64, load_size=64, workers=1)]))
    command, environment = _torchrun(2, WORKER, tmp_path / "long.json")
    # A terminal's Ctrl-C: SIGINT to torchrun, which passes it on to its workers (each in its own session); the
    # run in a session of its own, so that pytest does not get it.
    run = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (workdir / "log.jsonl").is_file() or len((workdir / "log.jsonl").read_text().splitlines()) < 2:
            assert time.time() < deadline and run.poll() is None, "training did not start"
            time.sleep(0.2)
        if target == "torchrun":
            os.killpg(run.pid, signal.SIGINT)
        else:  # one worker alone: it tells the others in the step's all-reduce
            os.kill(int((tmp_path / "pid1").read_text()), signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert stdout.count("interrupted") == 2, stdout + stderr[-3000:]  # both processes stopped through Interrupted
    assert "Traceback" not in stdout
    step = read_checkpoint(workdir / "checkpoint.pt")["step"]
    assert step == _logged(workdir)[-1]["step"]  # saved after the last step both processes took
    assert not list(workdir.glob(".*.tmp"))


@pytest.mark.slow  # torchrun
def test_stylize_under_torchrun_writes_each_output_exactly_once(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        Image.new("RGB", (40 + index, 32), (40 * index, 90, 200)).save(folder / f"p{index}.png")
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "style.png")
    model = _tiny_model(tmp_path)
    result = _run(
        2,
        "-m",
        "adaattn_cli",
        "-v",
        "stylize",
        folder,
        "-s",
        tmp_path / "style.png",
        "--model",
        model,
        "--style-size",
        0,
        "-o",
        tmp_path / "out",
        "--device",
        "cpu",
        env={"ADAATTN_WEIGHTS": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == [f"p{i}_stylized_style.png" for i in range(5)]
    for name in outputs:
        assert result.stderr.count(f"wrote {tmp_path / 'out' / name}") == 1, result.stderr
    assert result.stderr.count("5 of 5 images written by 2 processes") == 1


def _tiny_model(folder: Path) -> Path:
    from adaattn_cli.encoders import build_encoder
    from adaattn_cli.models import build_model
    from adaattn_cli.weights import load_encoder, save_encoder, save_model

    torch.manual_seed(0)
    encoder = load_encoder(path=save_encoder(build_encoder("vgg16-hed"), folder / "vgg16-hed.safetensors"))
    return save_model(build_model("adain", encoder, width_divisor=8), folder / "adain.safetensors", provenance={})


@pytest.mark.slow  # torchrun
@pytest.mark.parametrize(
    "args, line",
    [
        (["export", "adain"], "error: adaattn export runs in one process"),  # refused before anything loads
        (["stylize", "c.png", "-s", "c.png", "--shard", ""], "error: --shard: '' is not K/N"),  # a usage error
        (
            ["stylize", "c.png", "-s", "tiny.png", "--style-size", "0", "--model", "adain", "--device", "cpu"],
            "16x16 pixels; each side must be at least 32",  # after the processes joined
        ),
    ],
    ids=["refused", "usage", "input"],
)
def test_an_error_every_process_meets_is_printed_once_even_when_process_0_is_last(tmp_path, args, line):
    Image.new("RGB", (48, 40), (20, 90, 200)).save(tmp_path / "c.png")
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "tiny.png")
    _tiny_model(tmp_path)  # adain, for the input error (after the processes joined)
    command, environment = _torchrun(2, LATE_MAIN, *args, env={"ADAATTN_WEIGHTS": str(tmp_path)})
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.stderr.count(line) == 1, result.stderr[-3000:]
    # torchrun exits 1 with its own report whatever its processes' codes; the first to exit is the cause it names
    cause = re.search(r"Root Cause.*?exitcode\s*:\s*(-?\d+)", result.stderr, re.DOTALL)
    assert cause and cause[1] == "2", result.stderr[-3000:]


@pytest.mark.parametrize("rank, printed", [("0", 1), ("1", 0)])
def test_commands_that_cannot_share_their_work_refuse_torchrun_once(monkeypatch, tmp_path, rank, printed):
    from typer.testing import CliRunner

    from adaattn_cli.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    result = CliRunner().invoke(app, ["video", str(tmp_path / "clip.mp4"), "-s", str(tmp_path / "s.jpg")], prog_name="adaattn")
    assert result.exit_code == 2 and result.output.count("adaattn video runs in one process") == printed
    assert not list(tmp_path.iterdir())
