"""Weights on disk: encoder files, model files (safetensors + JSON metadata), official checkpoint import.

Nothing here unpickles arbitrary objects: model files are safetensors, and the .pth files of the
reference repositories are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

from .encoders import ENCODERS, Encoder, build_encoder, state_from_sequential
from .errors import WeightsError
from .methods import get_method, list_methods
from .models import StyleTransferModel

FORMAT = "adaattn-model/1"
ENCODER_FORMAT = "adaattn-encoder/1"
DEFAULT_ENCODER = "vgg16-hed"
REPO_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
log = logging.getLogger(__name__)


def user_weights_dir() -> Path:
    """Where downloaded or imported weights go: $ADAATTN_HOME/weights, else ~/.cache/adaattn/weights."""
    home = os.environ.get("ADAATTN_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "adaattn"
    return Path(home) / "weights"


def weights_search_path() -> list[Path]:
    """Folders searched for weights by name, first match wins: $ADAATTN_WEIGHTS, the checkout's weights/,
    the installed data folder, the user folder."""
    extra = [Path(p) for p in os.environ.get("ADAATTN_WEIGHTS", "").split(os.pathsep) if p]
    return extra + [REPO_WEIGHTS, Path(sys.prefix) / "share" / "adaattn" / "weights", user_weights_dir()]


_unreadable_reported: set[Path] = set()  # each unreadable folder is reported once, not at every lookup


def readable_weights_folders() -> list[Path]:
    """The folders of the search path that exist and can be listed. One that cannot be read (permissions, a
    file where a folder should be) is skipped with a warning, so the others, e.g. the bundled models, still work."""
    folders = []
    for folder in weights_search_path():
        try:
            with os.scandir(folder):
                pass
        except FileNotFoundError:
            continue
        except OSError as error:
            if folder not in _unreadable_reported:
                _unreadable_reported.add(folder)
                log.warning("skipping %s on the weights search path: %s", folder, error.strerror or error)
            continue
        folders.append(folder)
    return folders


def find_weights(filename: str) -> Path | None:
    for folder in readable_weights_folders():
        try:
            if (folder / filename).is_file():
                return folder / filename
        except OSError:  # listable but not searchable (mode r--): nothing can be opened in it either
            continue
    return None


def installed_models() -> list[tuple[Path, dict]]:
    """The model files on the search path with their headers, folder by folder (`adaattn models`, `adaattn gui`);
    a name found twice is listed twice (--model NAME loads the first)."""
    found = []
    for folder in readable_weights_folders():
        for path in sorted(folder.glob("*.safetensors")):
            try:
                found.append((path, read_model_header(path)))
            except WeightsError:
                continue  # an encoder file or something else
    return found


def list_models() -> list[str]:
    """The names Stylizer.load and --model take: the installed model files, each name once (the first one found
    is the one loaded)."""
    return list(dict.fromkeys(path.stem for path, _ in installed_models()))


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Content hash of named tensors (name, dtype, shape and bytes, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        tensor = tensor.contiguous().flatten()  # flat: 1x1 convs in channels_last keep odd strides
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; any failure becomes one WeightsError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises several types for bad headers and truncation
        raise WeightsError(f"{path}: not a valid safetensors file ({str(error).splitlines()[0][:120]})") from None
    return tensors, metadata


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Atomic write: a temporary file in the same folder, renamed into place."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, temporary, metadata=metadata)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600 files
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def safe_torch_load(path: str | Path) -> dict[str, torch.Tensor]:
    """A .pth state dict of plain tensors; refuses pickles that would construct other objects or run code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: refused to load: not a plain tensor checkpoint ({str(error).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a dict of tensors")
    # DataParallel prefixes
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


# --- encoders -------------------------------------------------------------------------------------


def save_encoder(encoder: Encoder, path: str | Path, *, source: str = "", dtype=torch.float16) -> Path:
    state = {k: (v if k.startswith("input.") else v.to(dtype)) for k, v in encoder.weights_state().items()}
    metadata = {"format": ENCODER_FORMAT, "encoder": encoder.name, "source": source, "width_divisor": str(encoder.width_divisor)}
    return write_safetensors(path, state, metadata)


def load_encoder(name: str = DEFAULT_ENCODER, *, path: str | Path | None = None, device="cpu") -> Encoder:
    """An encoder with its weights: from `path`, else `<name>.safetensors` on the weights search path.

    For `vgg19`, the torchvision checkpoint in the torch hub cache is used too (converted on first use).
    """
    if name not in ENCODERS:
        raise WeightsError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    path = Path(path) if path else find_weights(f"{name}.safetensors")
    if path is None and name == "vgg19":
        path = _vgg19_from_hub_cache()
    if path is None:
        hint = {
            "vgg19": "run `adaattn weights vgg19 --download` (needs internet) or pass the torchvision .pth",
            "vgg19-normalised": "run `adaattn weights import-vgg-normalised vgg_normalised.pth`",
        }.get(name, "reinstall adaattn: the bundled weights/ folder is missing")
        raise WeightsError(f"no weights for encoder {name!r} in {', '.join(map(str, weights_search_path()))}; {hint}")
    tensors, metadata = read_safetensors(path)
    if metadata.get("encoder", name) != name:
        raise WeightsError(f"{path}: holds encoder {metadata.get('encoder')!r}, not {name!r}")
    encoder = build_encoder(name, width_divisor=int(metadata.get("width_divisor", 1)))
    encoder.load_weights_state(tensors)
    encoder.weights_sha256 = tensors_sha256(tensors)
    return encoder.to(device)


def encoder_sha256(encoder: Encoder) -> str:
    """Hash of the encoder's weights as stored in its file (computed from the module if it has no file)."""
    return getattr(encoder, "weights_sha256", None) or tensors_sha256(encoder.weights_state())


def import_vgg_state(name: str, state_dict: dict[str, torch.Tensor], *, source: str, out: str | Path | None = None) -> Path:
    """Convert a Sequential-indexed VGG state dict into `<name>.safetensors` in the user weights folder."""
    encoder = build_encoder(name)
    encoder.load_weights_state(state_from_sequential(state_dict, name))
    return save_encoder(encoder, out or user_weights_dir() / f"{name}.safetensors", source=source)


def _vgg19_from_hub_cache() -> Path | None:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = sorted(hub.glob("vgg19-*.pth")) if hub.is_dir() else []
    if not candidates:
        return None
    return import_vgg_state("vgg19", safe_torch_load(candidates[0]), source=f"torchvision {candidates[0].name}")


def download_vgg19() -> Path:
    """Fetch torchvision's ImageNet VGG-19 (needs internet) and convert it."""
    from torchvision.models import VGG19_Weights

    state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return import_vgg_state("vgg19", state, source=VGG19_Weights.IMAGENET1K_V1.url)


# --- model files ----------------------------------------------------------------------------------


def save_model(model: StyleTransferModel, path: str | Path, *, provenance: dict | None = None, dtype=torch.float16) -> Path:
    """One .safetensors: the trainable weights (fp16 by default) + a JSON header naming method, encoder, config."""
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.trainable_state().items()}
    header = {
        "format": FORMAT,
        "method": model.method,
        "encoder": model.encoder.name,
        "encoder_sha256": encoder_sha256(model.encoder),
        "config": model.config,
        "weights_sha256": tensors_sha256(tensors),
        "provenance": provenance or {},
    }
    return write_safetensors(path, tensors, {"adaattn": json.dumps(header)})


def read_model_header(path: str | Path, metadata: dict[str, str] | None = None) -> dict:
    """The JSON header of a model file (from `metadata` when the file was already read)."""
    from safetensors import safe_open

    try:
        if metadata is None:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        header = json.loads(metadata["adaattn"])
    except Exception:
        raise WeightsError(f"{path}: not an adaattn model file") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the model header is a JSON {type(header).__name__}, not an object")
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: unsupported model file (format {header.get('format')!r}, method {header.get('method')!r})")
    if header.get("method") not in list_methods():
        raise WeightsError(f"{path}: the model header's method is {header.get('method')!r}; expected one of {', '.join(list_methods())}")
    _check_header(path, header)
    return header


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# What a model file's header may say, each with its check. The header is data from a file: a wrong type or a
# zero must fail here, naming the field, not later as a ZeroDivisionError or KeyError inside a constructor.
_HEADER_FIELDS = {
    "encoder": ("a known encoder name", lambda v: v in ENCODERS),
    "encoder_sha256": ("a sha256 hex digest", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)),
    "weights_sha256": ("a sha256 hex digest", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)),
    "config": ("an object", lambda v: isinstance(v, dict)),
}
_CONFIG_FIELDS = {
    "width_divisor": ("an integer from 1 to 64", lambda v: _is_int(v, 1, 64)),
    "max_style_positions": (
        "a list of 1 to 3 positive integers",
        lambda v: isinstance(v, list) and 1 <= len(v) <= 3 and all(_is_int(x, 1, 2**31) for x in v),
    ),
    "levels": ("[4, 5] or [3, 4, 5]", lambda v: v in ([4, 5], [3, 4, 5])),
}


def _check_header(path, header: dict) -> None:
    """Types, ranges and required keys of a model header (read_model_header has checked format and method)."""
    for key, (wanted, valid) in _HEADER_FIELDS.items():
        if key not in header:
            raise WeightsError(f"{path}: the model header has no {key!r}")
        if not valid(header[key]):
            raise WeightsError(f"{path}: the model header's {key} is {header[key]!r}; expected {wanted}")
    accepted = inspect.signature(get_method(header["method"]).model_class()).parameters
    for key, value in header["config"].items():
        if key not in _CONFIG_FIELDS or key not in accepted:
            raise WeightsError(f"{path}: the model header's config has {key!r}, which {header['method']} models do not take")
        wanted, valid = _CONFIG_FIELDS[key]
        if not valid(value):
            raise WeightsError(f"{path}: the model header's config.{key} is {value!r}; expected {wanted}")
    if not isinstance(header.get("provenance", {}), dict):
        raise WeightsError(f"{path}: the model header's provenance is {header['provenance']!r}; expected an object")


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A path as given, or a bundled/user model by method name (`adaattn` -> adaattn.safetensors)."""
    path = Path(name_or_path)
    if path.suffix or path.exists():
        if not path.is_file():
            raise WeightsError(f"{path}: no such model file")
        return path
    found = find_weights(f"{os.fspath(name_or_path)}.safetensors")
    if found is None:
        raise WeightsError(f"no model named {os.fspath(name_or_path)!r} in {', '.join(map(str, weights_search_path()))}")
    return found


def load_model(name_or_path: str | os.PathLike[str], *, encoder: Encoder | None = None, device="cpu") -> StyleTransferModel:
    """A ready model (eval mode) from a model file or a model name; the encoder is loaded by id unless given."""
    path = resolve_model_path(name_or_path)
    tensors, metadata = read_safetensors(path)
    header = read_model_header(path, metadata)  # the file is opened once
    if tensors_sha256(tensors) != header.get("weights_sha256"):
        raise WeightsError(f"{path}: weights do not match their recorded hash (file corrupt or edited)")
    encoder = encoder or load_encoder(header["encoder"], device="cpu")
    if encoder.name != header["encoder"] or encoder_sha256(encoder) != header["encoder_sha256"]:
        raise WeightsError(
            f"{path}: was trained with encoder {header['encoder']!r} weights {header['encoder_sha256'][:12]}, "
            "which are not the ones available"
        )
    try:
        model = get_method(header["method"]).model_class()(encoder, **header["config"])
    except (TypeError, ValueError) as error:  # a combination _check_header lets through but the model refuses
        raise WeightsError(
            f"{path}: the model header's config {header['config']} does not make a {header['method']} model ({error})"
        ) from None
    expected = model.trainable_state()
    if set(expected) != set(tensors) or any(expected[k].shape != tensors[k].shape for k in expected):
        raise WeightsError(f"{path}: tensors do not fit a {header['method']} model with config {header['config']}")
    model.load_state_dict({**tensors, **{f"encoder.{k}": v for k, v in encoder.state_dict().items()}})
    model.header = header
    return model.to(device).eval()


# --- official AdaAttN checkpoints (the latest_net_*.pth files of the Huage001/AdaAttN release) -------

OFFICIAL_PROJECTIONS = {"f": "query", "g": "key", "h": "value"}


def _ordered_convs(state: dict[str, torch.Tensor], prefixes: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Conv (weight, bias) pairs under each prefix, in prefix order then Sequential index order."""
    convs = []
    for prefix in prefixes:
        indices = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)\.weight", k)))
        convs += [(state[f"{prefix}.{i}.weight"], state[f"{prefix}.{i}.bias"]) for i in indices]
    return convs


def official_adaattn_state(decoder: dict, transformer: dict, adaattn_3: dict) -> dict[str, torch.Tensor]:
    """Map the released `latest_net_*.pth` state dicts to our AdaAttNModel keys."""
    state = {}
    sources = [(adaattn_3, ""), (transformer, "attn_adain_4_1."), (transformer, "attn_adain_5_1.")]
    for block, (source, prefix) in enumerate(sources):
        for official, ours in OFFICIAL_PROJECTIONS.items():
            for kind in ("weight", "bias"):
                key = f"{prefix}{official}.{kind}"
                if key not in source:
                    raise WeightsError(f"official checkpoint lacks {key!r}")
                state[f"blocks.{block}.{ours}.{kind}"] = source[key]
    state["merge.weight"], state["merge.bias"] = transformer["merge_conv.weight"], transformer["merge_conv.bias"]
    for index, (weight, bias) in enumerate(_ordered_convs(decoder, ["decoder_layer_1", "decoder_layer_2"])):
        state[f"decoder.convs.{index}.weight"], state[f"decoder.convs.{index}.bias"] = weight, bias
    return state


def import_official_adaattn(folder: str | Path, out: str | Path) -> Path:
    """Convert `latest_net_{decoder,transformer,adaattn_3}.pth` + `vgg_normalised.pth` into adaattn files.

    Writes the encoder to the user weights folder (vgg19-normalised.safetensors) and the model to `out`.
    """
    folder = Path(folder)
    vgg_path = next((p for p in (folder / "vgg_normalised.pth", folder.parent / "vgg_normalised.pth") if p.is_file()), None)
    if vgg_path is None:
        raise WeightsError(f"{folder}: vgg_normalised.pth not found here or one folder up")
    encoder_path = import_vgg_state("vgg19-normalised", safe_torch_load(vgg_path), source=str(vgg_path))
    encoder = load_encoder("vgg19-normalised", path=encoder_path)
    parts = {name: safe_torch_load(folder / f"latest_net_{name}.pth") for name in ("decoder", "transformer", "adaattn_3")}
    model = get_method("adaattn").model_class()(encoder)
    state = official_adaattn_state(**parts)
    expected = model.trainable_state()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise WeightsError(f"{folder}: official checkpoint does not match the layout of the AdaAttN release")
    model.load_state_dict({**state, **{f"encoder.{k}": v for k, v in encoder.state_dict().items()}})
    provenance = {"source": "official AdaAttN release (Huage001/AdaAttN)", "imported_from": str(folder)}
    return save_model(model, out, provenance=provenance)
