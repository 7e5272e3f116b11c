"""adaattn: arbitrary neural style transfer (AdaAttN, AdaIN, SANet) for images and video."""

__version__ = "0.1.0"

__all__ = ["Stylizer", "Style", "load_model", "save_model", "build_model", "load_encoder", "AdaattnError", "__version__"]


def __getattr__(name):  # lazy: `adaattn --version` must not import torch
    if name in ("Stylizer", "Style"):
        from . import api

        return getattr(api, name)
    if name in ("load_model", "save_model", "load_encoder"):
        from . import weights

        return getattr(weights, name)
    if name == "build_model":
        from .models import build_model

        return build_model
    if name == "AdaattnError":
        from .errors import AdaattnError

        return AdaattnError
    raise AttributeError(name)
