"""The method registry: one record per method; models, losses, training and --method are built from it.

    list_methods()                     # ['adaattn', 'adaattn-video', 'adain', 'sanet']
    get_method("adain").model_class()  # AdaINModel (imported on first use)
    register_method(Method(...))       # a new method: one record and its modules

Torch-free (the model class is named, not imported), so `adaattn --help` can list the choices fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_STYLE_POSITIONS, VIDEO_STYLE_POSITIONS
from .errors import BadInputError

if TYPE_CHECKING:
    from .models import StyleTransferModel


@dataclass(frozen=True)
class Method:
    """What adaattn knows of one method.

    model: "module:Class" of its StyleTransferModel subclass; losses: its training losses and their default weights
    (losses.LossConfig fields); schedule: the learning-rate schedule its reference code trains with (training.py);
    content_target: "normalised" (the output's normalised features against the content's) or "transferred" (AdaIN's:
    the output must re-encode to the transferred features); video: trained on pairs of views with temporal terms;
    style_positions: the default cap on the style positions each attention block attends to at inference
    (api.Stylizer; 0: all)."""

    name: str
    model: str
    summary: str
    losses: dict[str, Any] = field(default_factory=dict)
    schedule: str = "step"
    content_target: str = "normalised"
    video: bool = False
    style_positions: int = DEFAULT_STYLE_POSITIONS

    def model_class(self) -> type[StyleTransferModel]:
        module, _, name = self.model.partition(":")
        return getattr(import_module(module), name)


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add a method; a name that is taken is refused (ValueError), as torchvision's model registry does."""
    if method.name in _METHODS:
        raise ValueError(f"a method named {method.name!r} is registered already")
    _METHODS[method.name] = method
    return method


def list_methods() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise BadInputError(f"unknown method {name!r}; choose one of: {', '.join(_METHODS)}")
    return _METHODS[name]


register_method(
    Method(
        "adaattn",
        "adaattn_cli.models:AdaAttNModel",
        "AdaAttN (Liu et al. 2021): attention-weighted mean and std at relu3_1..relu5_1",
        # the authors' code (Huage001/AdaAttN, train_adaattn.sh): 10 global + 3 local, no content
        losses={"style": 10.0, "local": 3.0},
    )
)
register_method(
    Method(
        "adaattn-video",
        "adaattn_cli.models:AdaAttNVideoModel",
        "AdaAttN's video variant: one relu3_1 block with cosine attention",
        # The recipe of an unofficial AdaAttN video re-implementation (global + local + image similarity over
        # relu2_1..relu4_1), the similarity rescaled: its x100 is ~0.3 % of the total at our loss scale and
        # measurably changed nothing; x2e4 is ~20 %. warp (train --warp-weight) is opt-in: it steadies frames and
        # costs style the longer it trains (the bundled model's recipe, with a stronger style term, is in
        # weights/README.md).
        losses={"style": 10.0, "local": 3.0, "similarity": 2e4, "local_layers": (2, 3, 4)},
        video=True,
        style_positions=VIDEO_STYLE_POSITIONS,
    )
)
register_method(
    Method(
        "adain",
        "adaattn_cli.models:AdaINModel",
        "AdaIN (Huang & Belongie 2017): the content's relu4_1 with the style's mean and std",
        # naoto0804/pytorch-AdaIN: content 1 (relu4_1, target = AdaIN features), style 10 over relu1_1..4_1
        losses={"style": 10.0, "content": 1.0, "style_layers": (1, 2, 3, 4)},
        schedule="inverse",
        content_target="transferred",
    )
)
register_method(
    Method(
        "sanet",
        "adaattn_cli.models:SANetModel",
        "SANet (Park & Lee 2019): style-attentional blocks",
        # GlebSBrykin/SANET's Train.ipynb (SANet has no official code): content 1, style 3, identity 50 / 1
        losses={"style": 3.0, "content": 1.0, "identity_pixels": 50.0, "identity_features": 1.0, "style_layers": (1, 2, 3, 4, 5)},
        schedule="inverse",
    )
)
