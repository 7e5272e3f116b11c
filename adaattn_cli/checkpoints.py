"""Training checkpoints: written atomically, read back as tensors and plain data only.

A checkpoint may come from anyone: nothing else is unpickled, and every field is checked before any is used."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .errors import BadInputError

# What a checkpoint holds (training.Trainer.save_checkpoint), checked before any of it is used.
_FIELDS = {"step": int, "model": dict, "optimizer": dict, "scheduler": dict, "rng": torch.Tensor, "config": str}


def write_checkpoint(state: dict, path: Path) -> Path:
    """torch.save to a temporary file, then an atomic rename: a run killed while saving keeps the last checkpoint."""
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, its config parsed; a missing, truncated, foreign or malicious file is one
    BadInputError. Only tensors and plain data are unpickled (weights_only)."""
    if not path.is_file():
        raise BadInputError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # torch's weights-only unpickler names the global it blocked
            raise BadInputError(
                f"{path}: refused: it would construct Python objects other than tensors and plain data "
                "(an adaattn checkpoint never does); nothing was changed"
            ) from None
        raise BadInputError(f"{path}: not a readable checkpoint (corrupt or not made by torch.save); nothing was changed") from None
    except Exception as error:  # truncated or not a torch file: torch raises RuntimeError, EOFError, ...
        raise BadInputError(f"{path}: not a readable checkpoint ({first_line(error)}); nothing was changed") from None
    wrong = [key for key, kind in _FIELDS.items() if not isinstance(state, dict) or not isinstance(state.get(key), kind)]
    if wrong:
        raise BadInputError(f"{path}: not an adaattn checkpoint (no valid {', '.join(wrong)}); nothing was changed")
    try:
        state["config"] = json.loads(state["config"])
    except ValueError:
        state["config"] = None
    if not isinstance(state["config"], dict):
        raise BadInputError(f"{path}: not an adaattn checkpoint (its config is not a JSON object); nothing was changed")
    return state


def first_line(error: BaseException, limit: int = 120) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
