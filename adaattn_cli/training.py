"""The training loop: `Trainer(config).run()` trains any method; `--resume` is `Trainer(config, resume=True)`.

Owns the device and precision choices; builds the models (build_models), keeps checkpoints (checkpoints.py) and
the run's log, loss plot and samples (run_log.py). Reproducible: model init from the seed, data sample i from
(seed, i), style-position sampling of step s from (seed, s); a checkpoint holds model, optimiser,
scheduler and step, so a resumed run continues exactly as if it had never stopped.

Under torchrun (distributed.py) every process trains a replica on its slice of each step's batch
(`batch_size` is the global batch) and DistributedDataParallel averages the gradients, so N processes
take the steps one process would; process 0 alone writes the log, samples, checkpoints and models.
"""

from __future__ import annotations

import json
import math
import signal
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from . import __version__, distributed
from .checkpoints import first_line, read_checkpoint, write_checkpoint
from .config import TrainConfig
from .data import SampleRange, StyleTransferData, find_images, split_holdout
from .devices import pick_device, resolve_precision
from .errors import BadInputError, SettingError
from .losses import LossConfig, training_losses
from .methods import get_method
from .models import StyleTransferModel, build_model
from .run_log import RunLog, plot_losses, write_samples
from .teacher_set import TeacherSetData, open_teacher_set
from .weights import load_encoder, load_model, read_model_header, resolve_model_path, save_model


class Interrupted(Exception):
    """Training stopped by Ctrl-C after saving a checkpoint."""


class StepLosses(torch.nn.Module):
    """The trainable parts of a model as one module whose forward is a training step's losses: what DDP
    wraps. The frozen encoder is used but not registered, so DDP neither broadcasts nor watches it."""

    def __init__(self, model: StyleTransferModel, losses: LossConfig):
        super().__init__()
        self.trainable = torch.nn.ModuleDict({name: part for name, part in model.named_children() if name != "encoder"})
        self.model = [model]  # a list: not a submodule
        self.losses = losses

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return training_losses(self.model[0], batch, self.losses, generator)[0]


def _ignore_stop_signals(worker_id: int) -> None:
    """Data-loader workers leave the stop signals to the training process, which shuts them down when it stops:
    torchrun signals a worker's whole process group, and a loader worker killed by it would fail the step that
    is being finished."""
    for sig in distributed.StopRequests.signals:
        signal.signal(sig, signal.SIG_IGN)


def model_record(name_or_path: str) -> dict:
    """The --init model as a trained model's provenance keeps it: its file, tensors' SHA-256 and its own provenance,
    so a fine-tune's header holds its whole lineage."""
    path = resolve_model_path(name_or_path)
    header = read_model_header(path)
    return {"file": path.name, "weights_sha256": header["weights_sha256"], "provenance": header.get("provenance", {})}


def lr_factor(schedule: str, step: int, max_steps: int) -> float:
    if schedule == "step":  # official AdaAttN: 5 epochs with x1, x1, x0.3, x0.09, x0.027
        return 0.3 ** max(0, math.floor(5 * step / max_steps) - 1)
    if schedule == "inverse":  # AdaIN/SANet: lr / (1 + 5e-5 t)
        return 1.0 / (1.0 + 5e-5 * step)
    if schedule == "constant":
        return 1.0
    raise BadInputError(f"unknown schedule {schedule!r}; use step, inverse or constant")


class Trainer:
    def __init__(self, config: TrainConfig, *, resume: bool = False):
        self.config = config
        self.workdir = Path(config.workdir)
        self.world = distributed.current_world()
        self.device = distributed.rank_device(pick_device(config.device), self.world)
        if config.batch_size % self.world.size:
            raise SettingError(
                f"{{batch_size}} {config.batch_size} is the global batch and must split evenly over {self.world.size} processes"
            )
        self.precision = resolve_precision(config.precision, self.device)
        content, content_skipped = find_images(config.content)
        style, style_skipped = find_images(config.style)
        self.content, self.content_val = split_holdout(content, config.holdout)
        self.style, self.style_val = split_holdout(style, config.holdout)
        self.skipped = content_skipped + style_skipped
        # Read first: a resumed run keeps the teacher set's size it started with, however far the set has grown since.
        checkpoint = read_checkpoint(self.checkpoint_path) if resume else None
        self.teacher_triples: list[Path] = []
        if config.teacher_set:
            if checkpoint is not None and not config.teacher_set_size:
                config.teacher_set_size = int(checkpoint["config"].get("teacher_set_size") or 0)
            self.teacher_triples = open_teacher_set(  # the images as found above: the folders are not scanned again
                config.teacher_set,
                content=config.content,
                content_images=self.content,
                style=config.style,
                style_images=self.style,
                holdout=config.holdout,
                size=config.teacher_set_size,
            )
            config.teacher_set_size = len(self.teacher_triples)
        distributed.join(self.world, self.device)
        self.model, self.teacher = build_models(config, self.device)
        # channels_last: oneDNN (CPU) and cuDNN run 3x3 convs faster on NHWC tensors (bench/train_speed.py); torch's
        # stubs leave memory_format out of Module.to's device overload, which takes it (torch.nn.Module.to)
        self.model.to(self.device, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
        params = [p for p in self.model.parameters() if p.requires_grad]
        assert config.losses is not None  # TrainConfig.__post_init__ fills it
        self.step_losses: torch.nn.Module = StepLosses(self.model, config.losses)
        if self.world.size > 1:
            # The 1x1 kernels' gradients come back with other strides than the channels_last parameters' in the
            # size-1 dimensions only: the same memory, so DDP's one copy per step is all this warning costs.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.step_losses = torch.nn.parallel.DistributedDataParallel(
                self.step_losses, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(config.schedule, s, config.max_steps))
        self.step = 0
        self.resumed_from_processes: int | None = None  # the checkpoint's number of processes, after --resume
        self.log = RunLog(self.workdir, every=config.log_every, writes=self.world.is_main)
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        # Written only now: a start that fails (no images, a bad checkpoint) leaves no workdir and changes nothing.
        if self.world.is_main:
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / "validation.json").write_text(
                json.dumps({"content": [str(p) for p in self.content_val], "style": [str(p) for p in self.style_val]}, indent=1)
            )

    @property
    def checkpoint_path(self) -> Path:
        return self.workdir / "checkpoint.pt"

    @property
    def history(self) -> list[dict]:
        """The losses of every step so far (a resumed run's from its log)."""
        return self.log.history

    def save_checkpoint(self) -> Path:
        """Process 0 writes; every process returns the path."""
        if not self.world.is_main:
            return self.checkpoint_path
        state = {
            "step": self.step,
            "processes": self.world.size,
            "model": self.model.trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "config": json.dumps(asdict(self.config)),
        }
        return write_checkpoint(state, self.checkpoint_path)

    def _load_checkpoint(self, state: dict) -> None:
        path = self.checkpoint_path
        saved = state["config"]
        for key in ("method", "crop_size", "batch_size", "seed", "encoder", "width_divisor", "teacher_set_size"):
            if saved.get(key, 0) != getattr(self.config, key):
                raise SettingError(f"{{resume}}: checkpoint was made with {key}={saved.get(key)!r}, not {getattr(self.config, key)!r}")
        try:
            self.model.load_state_dict({**state["model"], **{f"encoder.{k}": v for k, v in self.model.encoder.state_dict().items()}})
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            raise BadInputError(f"{path}: does not fit this model and optimiser ({first_line(error)}); nothing was changed") from None
        self.step = state["step"]
        self.resumed_from_processes = int(state.get("processes", 1))
        self.log.resume_at(self.step)

    def _loader(self) -> torch.utils.data.DataLoader:
        config = self.config
        if self.teacher_triples:
            data: torch.utils.data.Dataset = TeacherSetData(self.teacher_triples, seed=config.seed, crop_size=config.crop_size)
        else:
            data = StyleTransferData(
                self.content,
                self.style,
                seed=config.seed,
                load_size=config.load_size,
                crop_size=config.crop_size,
                view_pairs=get_method(config.method).video,
            )
        sampler = SampleRange(self.step, config.max_steps, config.batch_size, rank=self.world.rank, processes=self.world.size)
        return torch.utils.data.DataLoader(
            data,
            batch_size=config.batch_size // self.world.size,
            sampler=sampler,
            num_workers=config.workers,
            worker_init_fn=_ignore_stop_signals,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {
            k: v.to(self.device, non_blocking=True, memory_format=torch.channels_last if v.dim() == 4 else torch.preserve_format)
            for k, v in batch.items()
        }
        step_seed = self.config.seed * 1_000_003 + self.step
        generator = torch.Generator().manual_seed(step_seed)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        if self.teacher is not None:
            with torch.no_grad(), autocast:
                teacher_generator = torch.Generator().manual_seed(step_seed)
                batch["teacher"] = self.teacher(batch["content"], batch["style"], generator=teacher_generator).float().clamp(0, 1)
        # Every process draws the same style positions: sampling is per batch, not per image, so N processes
        # with slices of the batch compute what one process computes with all of it.
        with autocast:
            losses = self.step_losses(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        self.scheduler.step()
        return {k: v.detach() for k, v in losses.items()}

    def _agree(self, losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, float], bool]:
        """The step's losses averaged over the processes (each has an equal slice of the batch), and whether
        any of them was asked to stop: one all-reduce."""
        names = list(losses)
        values = distributed.sum_over_processes([float(losses[n]) for n in names] + [float(stop)], self.world)
        return {n: v / self.world.size for n, v in zip(names, values)}, values[-1] > 0

    def run(self, progress: Callable[[int, int, dict], None] | None = None) -> Path:
        """Train to max_steps (checkpoints, samples, log along the way) and write the model file.

        Ctrl-C: one process stops at once; several finish the step they are in and stop together (a second
        Ctrl-C stops them at once, without saving)."""
        config = self.config
        started = time.time()
        stop = False
        try:
            with self.log, distributed.StopRequests(enabled=self.world.size > 1) as stop_requests:
                for batch in self._loader():
                    losses, stop = self._agree(self._train_step(batch), stop_requests.requested)
                    self.step += 1
                    record = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], "time": round(time.time() - started, 2), **losses}
                    self.log.add(record, last=self.step == config.max_steps)
                    if progress:
                        progress(self.step, config.max_steps, losses)
                    if stop:
                        raise KeyboardInterrupt
                    if self.step % config.checkpoint_every == 0:
                        self.save_checkpoint()
                        self.save_model(self.workdir / "latest.safetensors")  # usable at once, even if the run dies
                    if self.step % config.sample_every == 0:
                        self.write_samples()
        except KeyboardInterrupt:
            if self.world.size > 1 and not stop:  # in the middle of a step: the others may wait in an all-reduce
                message = f"stopped in step {self.step + 1} without saving; {self.checkpoint_path} holds the last checkpoint"
                raise Interrupted(message) from None
            self.save_checkpoint()
            distributed.wait_for_all(self.world)  # nobody exits before the checkpoint is written
            raise Interrupted(f"stopped at step {self.step}; checkpoint saved in {self.checkpoint_path}; continue with --resume") from None
        self.save_checkpoint()
        self.write_samples()
        if self.world.is_main:
            plot_losses(self.history, self.workdir / "losses.png")
        path = self.save_model()
        distributed.wait_for_all(self.world)
        return path

    def save_model(self, path: str | Path | None = None) -> Path:
        """Process 0 writes; every process returns the path."""
        path = Path(path or self.config.output)
        if not self.world.is_main:
            return path
        assert self.config.losses is not None  # TrainConfig.__post_init__ fills it
        provenance = {
            "trained_by": f"adaattn {__version__}",
            "content": str(self.config.content),
            "style": str(self.config.style),
            "content_images": len(self.content),
            "style_images": len(self.style),
            "skipped_unreadable": self.skipped,
            "held_out": {"content": len(self.content_val), "style": len(self.style_val)},
            "steps": self.step,
            "batch_size": self.config.batch_size,
            "processes": self.world.size,
            "crop_size": self.config.crop_size,
            "load_size": self.config.load_size,
            "lr": self.config.lr,
            "schedule": self.config.schedule,
            "precision": self.precision,
            "device": str(self.device),
            "seed": self.config.seed,
            "losses": asdict(self.config.losses),
            **({"init": model_record(self.config.init)} if self.config.init else {}),
            **({"teacher": Path(self.config.teacher).name} if self.config.teacher else {}),
            **({"teacher_set": self._teacher_set_record(self.config.teacher_set)} if self.config.teacher_set else {}),
            "final_losses": self.log.recent_means(),
        }
        return save_model(self.model, path, provenance=provenance)

    def _teacher_set_record(self, folder: str) -> dict:
        """How the teacher set's pictures were made (its manifest, less the local paths) and how many were used."""
        from .teacher_set import read_manifest

        manifest = read_manifest(folder)
        return {**{k: v for k, v in manifest.items() if k not in ("content", "style")}, "used": self.config.teacher_set_size}

    def write_samples(self, count: int = 4) -> Path | None:
        """Sample sheet of held-out content | style | output rows (training images if nothing is held out); process 0 only."""
        if not self.world.is_main:
            return None
        contents, styles = (self.content_val or self.content)[:count], (self.style_val or self.style)[:count]
        path = self.workdir / "samples" / f"step{self.step:07d}.png"
        return write_samples(self.model, contents, styles, crop_size=self.config.crop_size, device=self.device, path=path)


def build_models(config: TrainConfig, device: torch.device) -> tuple[StyleTransferModel, StyleTransferModel | None]:
    """The model to train (from the seed, or --init's weights) and the frozen --teacher model, if any, on `device`.

    The initial weights come from the seed, drawn on the CPU (the model is built there); the caller's RNG is left as
    it was. Every process builds the same model (DDP would copy process 0's anyway)."""
    assert config.encoder is not None  # TrainConfig.__post_init__ fills it
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)
        if config.width_divisor > 1:
            from .encoders import build_encoder

            encoder = build_encoder(config.encoder, width_divisor=config.width_divisor)
        else:
            encoder = load_encoder(config.encoder)
        model_config = {"width_divisor": config.width_divisor, **config.model_config}
        init = load_model(config.init, encoder=encoder) if config.init else None
        if init is not None:
            if init.method != config.method:
                raise SettingError(f"{{init}} {config.init} is a {init.method} model, not {config.method}")
            model_config.update(init.config)  # fine-tuning keeps the file's variant (e.g. SANet's levels)
        model = build_model(config.method, encoder, **model_config)
        if init is not None:
            model.load_state_dict(init.state_dict())
    teacher = None
    if config.teacher:
        # memory_format: see Trainer.__init__ (torch's stubs leave it out of Module.to's device overload)
        teacher = load_model(config.teacher, encoder=encoder).to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        teacher.requires_grad_(False)
    return model, teacher
