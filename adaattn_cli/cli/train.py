"""`adaattn train`: train a model for any method; checkpoints, samples and logs go to --workdir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import DISTILL_FEATURE_WEIGHT, DISTILL_WEIGHT, TEACHER_WEIGHT, TrainConfig
from ..errors import BadInputError
from .console import info
from .options import DeviceOption, Method
from .progress import step_progress


def train(
    content: Annotated[
        Path, typer.Option("--content", "-c", help="Folder of content photos (searched recursively).", file_okay=False, exists=True)
    ],
    style: Annotated[
        Path, typer.Option("--style", "-s", help="Folder of style artworks (searched recursively).", file_okay=False, exists=True)
    ],
    method: Annotated[Method, typer.Option(help="What to train.")] = Method("adaattn"),
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Final model file. \\[default: WORKDIR/<method>.safetensors]", show_default=False),
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Checkpoints, log.jsonl, losses.png, samples/ and latest.safetensors.")] = Path(
        "runs/train"
    ),
    max_steps: Annotated[
        int, typer.Option(min=1, help="Optimiser steps in all (the official AdaAttN recipe: ~52k at batch 8).")
    ] = TrainConfig.max_steps,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per step, in all: under torchrun each process takes an equal share.")
    ] = TrainConfig.batch_size,
    crop_size: Annotated[int, typer.Option(min=32, help="Random crop side (a multiple of 16).")] = TrainConfig.crop_size,
    load_size: Annotated[int, typer.Option(min=32, help="Shorter side images are resized to before cropping.")] = TrainConfig.load_size,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = TrainConfig.lr,
    schedule: Annotated[
        str, typer.Option(help="LR schedule: auto, step (AdaAttN recipe), inverse (AdaIN/SANet), constant.")
    ] = TrainConfig.schedule,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 autocast on CUDA and on CPUs with avx512_bf16/AMX, else fp32), fp32 or bf16.")
    ] = TrainConfig.precision,
    device: DeviceOption = TrainConfig.device,
    seed: Annotated[int, typer.Option(help="Seeds model init, data order, crops and style sampling.")] = TrainConfig.seed,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes (per training process under torchrun).")] = TrainConfig.workers,
    holdout: Annotated[
        int, typer.Option(help="Images held out of each folder for validation samples (-1: min(40, 10 %)).")
    ] = TrainConfig.holdout,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = TrainConfig.checkpoint_every,
    sample_every: Annotated[int, typer.Option(min=1, help="Steps between sample sheets.")] = TrainConfig.sample_every,
    log_every: Annotated[int, typer.Option(min=1, help="Steps between lines of WORKDIR/log.jsonl.")] = TrainConfig.log_every,
    style_weight: Annotated[
        Optional[float], typer.Option(help="Global style loss weight. \\[default: per method]", show_default=False)
    ] = None,
    local_weight: Annotated[Optional[float], typer.Option(help="AdaAttN local feature loss weight.", show_default=False)] = None,
    style_layers: Annotated[
        Optional[str],
        typer.Option(
            help="Layers of the global style loss, e.g. 1,2,3,4,5 (relu1_1..relu5_1); LAYER:WEIGHT weights one "
            "(1:3,2:2,3,4,5). \\[default: per method]",
            metavar="LIST",
            show_default=False,
        ),
    ] = None,
    content_weight: Annotated[Optional[float], typer.Option(help="Content loss weight.", show_default=False)] = None,
    identity_weights: Annotated[
        Optional[str],
        typer.Option(
            help="SANet identity loss weights, pixels,features (e.g. 50,1). \\[default: per method]", metavar="W1,W2", show_default=False
        ),
    ] = None,
    similarity_weight: Annotated[Optional[float], typer.Option(help="Video image-similarity loss weight.", show_default=False)] = None,
    colour_weight: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help="Weight of the palette loss: MSE of the output's mean RGB against the style image's ([0, 1] pixels). \\[default: 0]",
            show_default=False,
        ),
    ] = None,
    warp_weight: Annotated[
        Optional[float], typer.Option(help="Video warp-consistency loss weight (synthetic motion).", show_default=False)
    ] = None,
    teacher: Annotated[
        Optional[str],
        typer.Option(
            help="Model file or name whose outputs the trained model's coarse colours (1/8 resolution) should match, "
            "e.g. the image model for a video model.",
            metavar="FILE|NAME",
            show_default=False,
        ),
    ] = None,
    teacher_weight: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help="Weight of the --teacher colour loss (mean abs difference, [0, 1] pixels). "
            f"\\[default: {TEACHER_WEIGHT:.0e} with --teacher]",
            show_default=False,
        ),
    ] = None,
    teacher_set: Annotated[
        Optional[Path],
        typer.Option(
            help="Folder of refined pictures of training pairs (python tools/teacher_set.py) the model's outputs are pulled "
            "toward; the run then trains on its triples.",
            metavar="DIR",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    distill_weight: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help="Weight of the --teacher-set pixel term (mean abs difference, [0, 1] pixels). "
            f"\\[default: {DISTILL_WEIGHT:.0e} with --teacher-set]",
            show_default=False,
        ),
    ] = None,
    distill_feature_weight: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help="Weight of the --teacher-set feature term (MSE of relu1_1..relu3_1). "
            f"\\[default: {DISTILL_FEATURE_WEIGHT:g} with --teacher-set]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from WORKDIR/checkpoint.pt exactly where it stopped.")] = False,
    init: Annotated[
        Optional[str],
        typer.Option(help="Start from the weights of this model file or name (fine-tuning).", metavar="FILE|NAME", show_default=False),
    ] = None,
) -> None:
    """Train a style-transfer model on folders of photos and artworks.

    [bold]Examples[/bold]

      adaattn train --content coco/ --style wikiart/
      adaattn train -c coco/ -s wikiart/ --method adain --max-steps 160000 --workdir runs/adain
      adaattn train -c coco/ -s wikiart/ --workdir runs/adaattn --resume
      torchrun --nproc-per-node 4 -m adaattn_cli train -c coco/ -s wikiart/ --batch-size 32   # 4 GPUs, 8 each

    Ctrl-C saves a checkpoint; run the same command with --resume to go on (with any number of processes).
    """
    from ..losses import LossConfig
    from ..training import Interrupted, Trainer

    losses = LossConfig.for_method(method.value)
    for name, value in (
        ("style", style_weight),
        ("local", local_weight),
        ("content", content_weight),
        ("similarity", similarity_weight),
        ("warp", warp_weight),
        ("colour", colour_weight),
    ):
        if value is not None:
            setattr(losses, name, value)
    if teacher_weight is not None and teacher is None:
        raise BadInputError("--teacher-weight needs --teacher MODEL")
    if teacher is not None:
        losses.teacher = TEACHER_WEIGHT if teacher_weight is None else teacher_weight
    if (distill_weight is not None or distill_feature_weight is not None) and teacher_set is None:
        raise BadInputError("--distill-weight and --distill-feature-weight need --teacher-set DIR")
    if teacher_set is not None:
        losses.distill = DISTILL_WEIGHT if distill_weight is None else distill_weight
        losses.distill_features = DISTILL_FEATURE_WEIGHT if distill_feature_weight is None else distill_feature_weight
    if style_layers is not None:
        losses.style_layers, losses.style_layer_weights = _layers(style_layers)
    if identity_weights is not None:
        losses.identity_pixels, losses.identity_features = _identity_weights(identity_weights)
    config = TrainConfig(
        method=method.value,
        content=str(content),
        style=str(style),
        output=str(output or workdir / f"{method.value}.safetensors"),
        workdir=str(workdir),
        max_steps=max_steps,
        batch_size=batch_size,
        crop_size=crop_size,
        load_size=load_size,
        lr=lr,
        schedule=schedule,
        precision=precision,
        device=device,
        seed=seed,
        workers=workers,
        holdout=holdout,
        checkpoint_every=checkpoint_every,
        sample_every=sample_every,
        log_every=log_every,
        losses=losses,
        init=init,
        teacher=teacher,
        teacher_set=None if teacher_set is None else str(teacher_set),
    )
    trainer = Trainer(config, resume=resume)
    processes = trainer.world.size
    where = str(trainer.device) if processes == 1 else f"{trainer.device} in {processes} processes ({batch_size // processes} images each)"
    info(
        f"training {method.value}: {len(trainer.content)} content / {len(trainer.style)} style images"
        f" ({trainer.skipped} unreadable skipped), step {trainer.step} of {max_steps} on {where}, {trainer.precision}"
    )
    if trainer.resumed_from_processes not in (None, processes):
        info(
            f"resuming a run of {_processes(trainer.resumed_from_processes)} with {_processes(processes)}: the batch stays {batch_size} "
            "images per step, so the run goes on as it would have"
        )
    try:
        with step_progress(max_steps, start=trainer.step) as advance:
            path = trainer.run(progress=lambda step, total, values: advance(step, values))
    except Interrupted as stop:
        info(str(stop))
        raise typer.Exit(code=130) from None
    info(f"wrote {path}")


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _identity_weights(text: str) -> tuple[float, float]:
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 2 or any(w < 0 for w in weights):
        raise BadInputError(f"--identity-weights {text!r}: expected two non-negative numbers, pixels,features (e.g. 50,1)")
    return weights


def _layers(text: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """ "1:3,2,3" -> ((1, 2, 3), (3.0, 1.0, 1.0)): relu indices 1..5, each with an optional weight (default 1);
    the weights come back empty when none was given."""
    try:
        pairs = [(int(layer), float(weight or 1)) for layer, _, weight in (part.partition(":") for part in text.split(","))]
    except ValueError:
        pairs = []
    layers = tuple(layer for layer, _ in pairs)
    if not pairs or any(not 1 <= layer <= 5 for layer in layers) or len(set(layers)) != len(layers) or any(w < 0 for _, w in pairs):
        raise BadInputError(
            f"--style-layers: expected distinct relu indices 1..5 separated by commas, each optionally LAYER:WEIGHT "
            f"(e.g. 1,2,3,4,5 or 1:3,2:2,3,4,5), got {text!r}"
        )
    return layers, (tuple(weight for _, weight in pairs) if ":" in text else ())
