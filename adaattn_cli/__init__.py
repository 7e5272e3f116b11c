"""adaattn: arbitrary neural style transfer (AdaAttN, AdaIN, SANet) for images and video.

    from adaattn_cli import Stylizer
    stylizer = Stylizer.load("adaattn")
    stylizer.stylize("photo.jpg", "monet.jpg").save("photo_monet.png")

The library's reference is docs/api.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Where each public name lives. They are imported on first use, not here: the `adaattn` command imports this
# package, and `adaattn --help` must not wait for torch. Type checkers and IDEs read the imports below instead.
_HOMES = {
    "Stylizer": "api",
    "Style": "api",
    "RefineSettings": "refine",
    "stylize_video": "video",
    "export_onnx": "export",
    "list_models": "weights",
    "load_model": "weights",
    "save_model": "weights",
    "load_encoder": "weights",
    "build_model": "models",
    "Method": "methods",
    "register_method": "methods",
    "get_method": "methods",
    "list_methods": "methods",
    "AdaattnError": "errors",
    "BadInputError": "errors",
}
__all__ = [*_HOMES, "__version__"]

if TYPE_CHECKING:  # `X as X`: a re-export (PEP 484)
    from .api import Style as Style
    from .api import Stylizer as Stylizer
    from .errors import AdaattnError as AdaattnError
    from .errors import BadInputError as BadInputError
    from .export import export_onnx as export_onnx
    from .methods import Method as Method
    from .methods import get_method as get_method
    from .methods import list_methods as list_methods
    from .methods import register_method as register_method
    from .models import build_model as build_model
    from .refine import RefineSettings as RefineSettings
    from .video import stylize_video as stylize_video
    from .weights import list_models as list_models
    from .weights import load_encoder as load_encoder
    from .weights import load_model as load_model
    from .weights import save_model as save_model


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'adaattn_cli' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
