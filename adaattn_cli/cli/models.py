"""`adaattn models`: the model and encoder files on the weights search path."""

from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table


def models() -> None:
    """List model files and encoders found on the weights search path.

    Search order: $ADAATTN_WEIGHTS, the bundled weights, the user folder; --model NAME loads the first match.

    [bold]Examples[/bold]

      adaattn models
      ADAATTN_WEIGHTS=~/my-models adaattn models
    """
    from ..encoders import ENCODERS
    from ..errors import WeightsError
    from ..weights import find_weights, read_model_header, weights_search_path

    table = Table("name", "method", "encoder", "size MB", "provenance", Column("path", overflow="fold"), title="Models")
    for folder in weights_search_path():
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                header = read_model_header(path)
            except WeightsError:
                continue  # an encoder file or something else
            table.add_row(escape(path.stem), header["method"], header["encoder"], f"{path.stat().st_size / 1e6:.1f}",
                          escape(_provenance(header.get("provenance") or {})), escape(str(path)))
    encoders = Table("encoder", "description", Column("file", overflow="fold"), title="Encoders")
    for name, spec in ENCODERS.items():
        path = find_weights(f"{name}.safetensors")
        encoders.add_row(name, spec.description, escape(str(path)) if path else "[yellow]not found[/]")
    console = Console()
    console.print(table if table.row_count else "No model files in: " + ", ".join(map(str, weights_search_path())))
    console.print(encoders)


def _provenance(provenance: dict) -> str:
    """A short summary: training steps if known, else the source."""
    if "steps" in provenance:
        return f"{provenance['steps']} steps"
    return str(provenance.get("source", ""))
