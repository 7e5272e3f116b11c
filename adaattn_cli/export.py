"""ONNX export: a model as one graph from images to the stylised image, for apps and other runtimes.

    from adaattn_cli.export import export_onnx
    export_onnx("adaattn", "adaattn.onnx")                          # inputs content, style
    export_onnx("adaattn", "wheat.onnx", style=style_image)          # input content; the style baked in

The graph is the plain formulation of the model (models.use_plain_ops): every attention block computes its whole
n_content x n_style logits matrix at once (no chunks). With a style input the graph attends to every style position
(no sampling, so it is deterministic): at relu3_1 that is (H/4 * W/4) x (h/4 * w/4) fp32 logits, 1 GiB for a 512²
content with a 512² style, 256 MiB with a 256² one. A baked style keeps the positions `adaattn stylize` samples
(at most 4,096 per block by default, seeded), so its graph needs a quarter of that at 512². Inputs are RGB float32
[1, 3, H, W] in [0, 1], any height and width (at least 32 px); the padding to the model's size multiple and the crop
back happen inside the graph, and the output is clamped to [0, 1], as `adaattn stylize` does. Alpha is baked in
(see export_onnx). Needs the `onnx` extra.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import secrets
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from . import functional as fn
from .api import check_image
from .attention import StyleMemory
from .config import ONNX_OPSET
from .errors import BadInputError
from .files import check_target, publish
from .methods import get_method
from .models import StyleTransferModel, use_plain_ops
from .pictures import PictureLike, style_picture
from .weights import encoder_sha256, load_model

log = logging.getLogger(__name__)

INSTALL_HINT = "ONNX export needs the onnx extra: pip install 'adaattn[onnx]' (onnx, onnxruntime, onnxscript)"
# Example inputs to trace with; every side is dynamic in the graph. Not multiples of 16, so the padding is traced.
_EXAMPLE_CONTENT, _EXAMPLE_STYLE = (72, 88), (64, 72)


def check_installed() -> None:
    """Raise BadInputError with the install line when the exporter's packages are missing."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise BadInputError(f"{INSTALL_HINT}; missing: {', '.join(missing)}")
    if not hasattr(torch.export.Dim, "DYNAMIC"):
        raise BadInputError(f"ONNX export needs torch >= 2.6 (torch.export's dynamic sizes); this is torch {torch.__version__}")


class _Graph(nn.Module):
    """What both graphs share: pad to the size multiple, encode, transfer (alpha baked in), decode, crop, clamp, and
    the style's mean colour (api.Stylizer's match_color)."""

    def __init__(self, model: StyleTransferModel, alpha: float, match_color: bool = True):
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise BadInputError(f"alpha must be in (0, 1] for export (0 would ignore the style), got {alpha}")
        self.model = model
        self.alpha = float(alpha)
        self.match_color = match_color

    def stylize(self, content: torch.Tensor, memory: list[StyleMemory], style_colour: torch.Tensor) -> torch.Tensor:
        multiple = self.model.size_multiple
        height, width = content.shape[-2:]
        padded = F.pad(content, (0, (-width) % multiple, 0, (-height) % multiple), mode="reflect")  # as api.pad_to_multiple
        encoded = self.model.encode(padded)
        terms = [(memory, self.alpha)]
        if self.alpha < 1.0:  # the content as its own style (api.Stylizer's alpha): attends to all content positions
            terms.append((self.model.memorize(encoded), 1.0 - self.alpha))
        output = self.model.decode(self.model.transfer_mixed(encoded, terms))
        output = output[..., :height, :width].clamp(0.0, 1.0)
        return fn.match_mean_colour(output, [(style_colour, self.alpha)]) if self.match_color else output


class StyleInputGraph(_Graph):
    """forward(content [1, 3, H, W], style [1, 3, h, w]) -> stylised [1, 3, H, W]."""

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.stylize(content, self.model.memorize(self.model.encode(style)), fn.mean_colour(style[0]))


class FixedStyleGraph(_Graph):
    """forward(content [1, 3, H, W]) -> stylised [1, 3, H, W], the style's memory held as constants."""

    def __init__(
        self,
        model: StyleTransferModel,
        alpha: float,
        style: torch.Tensor,
        *,
        style_positions: int = 0,
        seed: int = 0,
        match_color: bool = True,
    ):
        super().__init__(model, alpha, match_color)
        self.style_colour: torch.Tensor
        self.register_buffer("style_colour", fn.mean_colour(style))
        caps = [(block, block.max_style_positions) for block in model.transfer_blocks() if block.attends_to_positions]
        for block, _ in caps:  # the positions api.Stylizer.encode_style(style, seed=seed) draws with this cap
            block.max_style_positions = style_positions or None
        try:
            with torch.no_grad():
                encoded = model.encode(check_image(style, "style image"))
                memory = model.memorize(encoded, generator=torch.Generator().manual_seed(seed))
        finally:
            for block, cap in caps:
                block.max_style_positions = cap
        # (block index, field) of each stored tensor; StyleMemory fields that are None are left out
        self._fields: list[tuple[int, str]] = []
        for index, block_memory in enumerate(memory):
            for field in ("key", "value", "logit_bias"):
                tensor = getattr(block_memory, field)
                if tensor is not None:
                    self.register_buffer(f"memory_{index}_{field}", tensor.detach().clone())
                    self._fields.append((index, field))
        self._blocks = len(memory)

    def memory(self) -> list[StyleMemory]:
        fields: list[dict[str, torch.Tensor]] = [{} for _ in range(self._blocks)]
        for index, field in self._fields:
            fields[index][field] = getattr(self, f"memory_{index}_{field}")
        return [StyleMemory(**block_fields) for block_fields in fields]

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.stylize(content, self.memory(), self.style_colour)


def plain_copy(model: StyleTransferModel) -> StyleTransferModel:
    """A copy of `model` for export: fp32, CPU, contiguous, every style position, standard operators only.

    The caller's model is left as it is (a Stylizer may have moved it to bf16 or channels_last)."""
    # torch's stubs leave memory_format out of Module.to's (device, dtype) overload; it takes it (torch.nn.Module.to)
    plain = copy.deepcopy(model).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    plain.header = getattr(model, "header", None)
    plain.configure_inference(matmul_dtype=torch.float32, style_positions=0)  # deterministic: every style position
    return use_plain_ops(plain)


def build_graph(
    model: StyleTransferModel,
    *,
    alpha: float = 1.0,
    style: torch.Tensor | None = None,
    style_positions: int = 0,
    seed: int = 0,
    match_color: bool = True,
) -> _Graph:
    """The module that export_onnx exports (eval mode; fp32 on CPU), for running or checking it in PyTorch.

    style: an image [3, h, w] in [0, 1] to bake in (FixedStyleGraph), or None for a style input (StyleInputGraph).
    style_positions, seed: for a baked style, the cap and seed of the style positions kept, drawn as
    `adaattn stylize --style-positions N --seed S` draws them (0: all). A style input always keeps all.
    match_color: the style's mean colour, as `adaattn stylize` by default (--no-match-color: False)."""
    plain = plain_copy(model)
    if style is None:
        return StyleInputGraph(plain, alpha, match_color).eval()
    return FixedStyleGraph(plain, alpha, style.float().cpu(), style_positions=style_positions, seed=seed, match_color=match_color).eval()


def graph_metadata(
    model: StyleTransferModel,
    *,
    alpha: float,
    style_name: str | None,
    opset: int,
    style_positions: int = 0,
    seed: int = 0,
    match_color: bool = True,
) -> dict[str, str]:
    """The ONNX metadata_props: the model file's header (method, encoder, provenance, ...) and the export's choices."""
    header = getattr(model, "header", None) or {}
    metadata = {
        "method": model.method,
        "encoder": model.encoder.name,
        "encoder_sha256": header.get("encoder_sha256") or encoder_sha256(model.encoder),
        "weights_sha256": header.get("weights_sha256", ""),
        "config": json.dumps(header.get("config", model.config)),
        "provenance": json.dumps(header.get("provenance", {})),
        "adaattn_version": __version__,
        "alpha": repr(float(alpha)),
        "match_color": "yes" if match_color else "no",
        "style": style_name if style_name is not None else "input",
        "style_positions": f"at most {style_positions}, seed {seed}" if style_name is not None and style_positions else "all",
        "size_multiple": str(model.size_multiple),
        "inputs": "content" + ("" if style_name is not None else ", style") + ": RGB float32 [1, 3, H, W] in [0, 1], "
        "sides >= 32 px (padded to the size multiple inside the graph)",
        "outputs": "stylized: RGB float32 [1, 3, H, W] in [0, 1]",
        "opset": str(opset),
    }
    return {key: value for key, value in metadata.items() if value != ""}


def export_onnx(
    model: StyleTransferModel | str | os.PathLike,
    path: str | os.PathLike,
    *,
    alpha: float = 1.0,
    style: PictureLike | None = None,
    style_name: str | None = None,
    style_positions: int | None = None,
    seed: int = 0,
    match_color: bool = True,
    opset: int = ONNX_OPSET,
    overwrite: bool = False,
) -> Path:
    """Export `model` (a model, or a model name/file as load_model takes) to an ONNX file at `path`, atomically.

    Without `style`: inputs content [1, 3, H, W] and style [1, 3, h, w], attending to every style position (the graph
    is deterministic; memory grows with content x style positions, so give styles of 256-512 px). With `style` (a
    picture, prepared as Stylizer.encode_style prepares it: a path, a PIL image or an array at 512 px on its shorter
    side, a tensor [3, h, w] in [0, 1] as given): input content only, the style's encoded memory held as constants
    (`style_name`, default the file's name, is recorded in the metadata), keeping at most `style_positions` per
    block (None: the method's default, as Stylizer.load; 0: all), drawn with `seed` exactly as
    `adaattn stylize --style-positions N --seed S` draws them.
    match_color: the picture's mean colour moved to the style's, as `adaattn stylize` does by default.
    Alpha is baked in, not an input: at alpha 1 (the default) the graph holds no content-as-its-own-style term,
    whose attention over all content positions would cost n_content^2 logits per block; alpha < 1 adds it.
    The file is written under a temporary name and renamed; an existing file is replaced only with `overwrite`.
    """
    check_installed()
    if opset < 17:
        raise BadInputError(f"opset must be at least 17, got {opset}")
    path = check_output(path, overwrite=overwrite)
    if not isinstance(model, StyleTransferModel):
        model = load_model(model)
    if style_positions is None:
        style_positions = get_method(model.method).style_positions
    if style_positions < 0:
        raise BadInputError(f"style_positions must be 0 (all) or positive, got {style_positions}")
    if isinstance(style, (str, os.PathLike)):
        style_name = style_name or Path(style).name
    style_image = None if style is None else style_picture(style, None)
    graph = build_graph(model, alpha=alpha, style=style_image, style_positions=style_positions, seed=seed, match_color=match_color)
    program = _trace(graph, opset)
    metadata = graph_metadata(
        model,
        alpha=alpha,
        style_name=(style_name or "baked") if style_image is not None else None,
        opset=opset,
        style_positions=style_positions,
        seed=seed,
        match_color=match_color,
    )
    program.model.metadata_props.update(metadata)
    program.model.doc_string = f"adaattn {model.method} style transfer; metadata_props describe inputs and provenance"
    return _save_atomically(program, path, overwrite=overwrite)


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse, before any work, a path that export_onnx must not write: a name without the .onnx extension (a graph
    under an image's name misleads every program that opens it), a folder, an existing file unless `overwrite`, and
    anything that is not a file (files.check_target)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give a .onnx file name")
    if path.suffix.lower() != ".onnx":
        raise BadInputError(f"{path}: an ONNX graph is written to a .onnx file; give a name ending in .onnx")
    check_target(path, overwrite=overwrite)
    return path


def _trace(graph: _Graph, opset: int):
    """torch.onnx.export's dynamo exporter (torch.export + onnxscript) with dynamic heights and widths."""
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, *_EXAMPLE_CONTENT, generator=generator)
    dynamic = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    args: tuple[torch.Tensor, ...]
    shapes: tuple[dict, ...]
    if isinstance(graph, StyleInputGraph):
        args, names, shapes = (content, torch.rand(1, 3, *_EXAMPLE_STYLE, generator=generator)), ["content", "style"], (dynamic, dynamic)
    else:
        args, names, shapes = (content,), ["content"], (dynamic,)
    with torch.no_grad():
        return torch.onnx.export(
            graph,
            args,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=names,
            output_names=["stylized"],
            opset_version=opset,
            optimize=True,
            verbose=False,
        )


def _save_atomically(program, path: Path, *, overwrite: bool) -> Path:
    """ONNXProgram.save to a temporary name in the target's folder, then one rename (never a half-written file; a
    file that appeared meanwhile is replaced only with `overwrite`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInputError(f"{path}: cannot create the output folder ({error.strerror or error}).") from None
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    try:
        program.save(temporary, external_data=False)  # one self-contained file (the weights are far below 2 GB)
        publish(temporary, path, overwrite=overwrite)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise BadInputError(f"{path}: cannot write the ONNX file ({error.strerror or error}).") from None
        raise
    return path
