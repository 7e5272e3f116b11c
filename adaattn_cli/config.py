"""Settings with their defaults, one definition each, for the library and the CLI alike.

Nothing here imports torch, at the top or through another module: the CLI's options take their defaults from
here, and `adaattn --help` must stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import BadInputError, SettingError

if TYPE_CHECKING:
    from .losses import LossConfig

# Default cap on the style positions each attention block attends to. The released AdaAttN caps relu3_1 at
# 64x64 = 4096; using the same cap at every block keeps the time linear in the content's pixels whatever the
# style's size (a 512x512 style has exactly 4096 relu4_1 positions, so nothing is sampled there).
DEFAULT_STYLE_POSITIONS = 4096
# Style images are resized so that their shorter side has this many pixels (the CLI's --style-size; 0 keeps them).
STYLE_SIZE = 512
# The video model attends to fewer style positions by default (methods.py: each method's default): its cosine
# attention spreads its weight over all positions, so 1,024 of them estimate its mean/std maps well, and attention
# then costs little next to the convolutions (bench/video_speed.py). 0 (--style-positions 0) uses them all.
VIDEO_STYLE_POSITIONS = 1024
# The video hold's threshold (video_filters.StaticHold, `adaattn video --hold`): ~4 of 255 levels, about the noise
# of a compressed clip. Measured at 256 px on the three test clips (docs/video.md, "The hold's shape"): higher
# thresholds also hold back slow movement and average stylisations (less style).
HOLD_THRESHOLD = 0.015

# Video encoder quality (adaattn video --crf): the codec's constant rate factor, lower = better and bigger; 18 is
# x264's "visually lossless" setting.
VIDEO_CRF = 18
# ONNX opset of exported graphs (adaattn export): >= 17 (LayerNormalization era); 18 runs on onnxruntime >= 1.14 and
# most other runtimes.
ONNX_OPSET = 18
# Weight of the colour-distillation term of `adaattn train --teacher MODEL` (the video model's recipe, weights/README.md).
TEACHER_WEIGHT = 1e5
# Weights of the teacher-set distillation terms (`adaattn train --teacher-set`), pixels (L1) and relu1_1..relu3_1
# features (MSE); chosen so that each is a sizeable share of AdaAttN's loss (docs/training.md, "Distillation").
DISTILL_WEIGHT = 1e5
DISTILL_FEATURE_WEIGHT = 4.0


@dataclass
class TrainConfig:
    """Every setting of a training run (training.Trainer), with its default: `adaattn train` takes the defaults of
    its options from these fields."""

    method: str
    content: str
    style: str
    output: str
    workdir: str
    max_steps: int = 52000
    batch_size: int = 8
    crop_size: int = 256
    load_size: int = 512
    lr: float = 1e-4
    betas: tuple = (0.9, 0.999)
    schedule: str = "auto"  # step (AdaAttN recipe), inverse (AdaIN/SANet), constant
    precision: str = "auto"  # fp32 | bf16 | auto (bf16 where it is measured faster: CUDA, CPUs with avx512_bf16/amx)
    device: str = "auto"
    seed: int = 0
    workers: int = 2
    holdout: int = -1  # images held out of each folder for validation; -1 = min(40, 10 %)
    checkpoint_every: int = 500
    sample_every: int = 1000
    log_every: int = 10
    encoder: str | None = None  # None: weights.DEFAULT_ENCODER
    width_divisor: int = 1  # > 1 only for tests
    init: str | None = None  # model file to start from (fine-tuning, or continuing a run without its checkpoint)
    teacher: str | None = None  # model file whose outputs the losses' `teacher` term distils (frozen, same encoder)
    teacher_set: str | None = None  # folder of refined pictures (teacher_set.py) the losses' `distill` terms pull toward
    teacher_set_size: int = 0  # triples of it used: 0 = every finished one when the run starts (then fixed for --resume)
    losses: LossConfig | None = None
    model_config: dict = field(default_factory=dict)

    def __post_init__(self):
        from .losses import LossConfig  # here, not at the top: they import torch
        from .methods import get_method
        from .weights import DEFAULT_ENCODER

        if self.encoder is None:
            self.encoder = DEFAULT_ENCODER
        method = get_method(self.method)  # an unknown one: BadInputError naming the choices
        if self.losses is None:
            self.losses = LossConfig.for_method(self.method)
        elif isinstance(self.losses, dict):
            self.losses = LossConfig.from_dict(self.losses)
        if self.schedule == "auto":
            self.schedule = method.schedule
        if bool(self.teacher) != bool(self.losses.teacher):
            raise BadInputError("a teacher model and a teacher loss weight go together: give both or neither")
        if bool(self.teacher_set) != bool(self.losses.distill or self.losses.distill_features):
            raise BadInputError("a teacher set and a distillation weight go together: give both or neither")
        if self.crop_size % 16 or self.crop_size < 32:
            raise SettingError(f"{{crop_size}} must be a multiple of 16 and at least 32, got {self.crop_size}")
