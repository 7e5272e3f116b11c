"""`adaattn models`: the model and encoder files on the weights search path."""

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts: each model's name, method, encoder, path and provenance.")
]


def models(as_json: JsonOption = False) -> None:
    """List model files and encoders found on the weights search path.

    Search order: $ADAATTN_WEIGHTS, the bundled weights, the user folder; --model NAME loads the first match.

    [bold]Examples[/bold]

      adaattn models
      adaattn models --json
      ADAATTN_WEIGHTS=~/my-models adaattn models
    """
    from ..encoders import ENCODERS
    from ..weights import find_weights, installed_models, weights_search_path

    found = installed_models()
    encoders = [(name, spec.description, find_weights(f"{name}.safetensors")) for name, spec in ENCODERS.items()]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "models": [
                        {
                            "name": path.stem,
                            "method": header["method"],
                            "encoder": header["encoder"],
                            "path": str(path),
                            "size_bytes": path.stat().st_size,
                            "provenance": header.get("provenance") or {},
                        }
                        for path, header in found
                    ],
                    "encoders": [
                        {"name": name, "description": description, "path": str(path) if path else None}
                        for name, description, path in encoders
                    ],
                },
                indent=1,
            )
        )
        return
    # Names, methods and encoders are never cut (a script may look for them); paths and provenance fold instead.
    table = Table(
        Column("name", no_wrap=True),
        Column("method", no_wrap=True),
        Column("encoder", no_wrap=True),
        Column("size MB", no_wrap=True),
        Column("provenance", overflow="fold"),
        Column("path", overflow="fold"),
        title="Models",
    )
    for path, header in found:
        table.add_row(
            escape(path.stem),
            header["method"],
            header["encoder"],
            f"{path.stat().st_size / 1e6:.1f}",
            escape(_provenance(header.get("provenance") or {})),
            escape(str(path)),
        )
    encoder_table = Table(Column("encoder", no_wrap=True), "description", Column("file", overflow="fold"), title="Encoders")
    for name, description, file in encoders:
        encoder_table.add_row(name, description, escape(str(file)) if file else "[yellow]not found[/]")
    console = Console()
    console.size = (max(console.width, _uncut_width(table), _uncut_width(encoder_table)), console.height)
    console.print(table if table.row_count else "No model files in: " + ", ".join(map(str, weights_search_path())))
    console.print(encoder_table)


def _uncut_width(table: Table, folded: int = 12) -> int:
    """The width at which Rich cuts no cell of a no_wrap column (each other column gets `folded` characters):
    in a narrow terminal, or piped at 80 columns, the table then overflows instead of shortening a name."""

    def width(column: Column) -> int:
        return max(len(str(cell)) for cell in [column.header, *column.cells]) if column.no_wrap else folded

    return 1 + sum(3 + width(column) for column in table.columns)


def _provenance(provenance: dict) -> str:
    """A short summary: training steps if known, else the source."""
    if "steps" in provenance:
        return f"{provenance['steps']} steps"
    return str(provenance.get("source", ""))
