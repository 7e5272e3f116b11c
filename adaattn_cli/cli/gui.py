"""`adaattn gui`: the local web app (gui_app.py), for people who would rather look than type."""

import importlib.util
from typing import Annotated, Optional

import typer

from ..errors import BadInputError
from .console import info
from .options import DeviceOption, MaxPixelsOption

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

PortOption = Annotated[
    Optional[int],
    typer.Option(min=1, max=65535, metavar="N", show_default=False, help="Port to serve on. \\[default: the first free one from 7860]"),
]
HostOption = Annotated[
    str, typer.Option(metavar="ADDRESS", help="Address to serve on; anything but this computer's own makes the app reachable by others.")
]
NoBrowserOption = Annotated[bool, typer.Option("--no-browser", help="Do not open a browser tab; only print the address.")]


def gui(
    port: PortOption = None,
    host: HostOption = "127.0.0.1",
    no_browser: NoBrowserOption = False,
    device: DeviceOption = "auto",
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Start the local web app and open it in the browser: stylise a photo, compare, blend, make a video.

    Everything the app does runs here, on the bundled models, with no analytics and nothing fetched from the
    internet; uploads and results are temporary files removed when it stops (Ctrl-C). Needs Gradio:
    pip install -e ".\\[gui]".

    [bold]Examples[/bold]

      adaattn gui
      adaattn gui --port 8080 --no-browser
      adaattn gui --host 0.0.0.0          # reachable from other computers on the network
    """
    if importlib.util.find_spec("gradio") is None:
        raise BadInputError('adaattn gui needs Gradio: pip install -e ".[gui]" (in a checkout), or pip install gradio')
    from ..image_io import set_pixel_limit
    from .gui_app import serve

    if max_pixels is not None:
        set_pixel_limit(max_pixels)
    if host not in LOCAL_HOSTS:
        info(f"warning: serving on {host}: anyone who can reach this computer can use the app and see what it makes")
    info("starting the app...")
    serve(host=host, port=port, open_browser=not no_browser, device=device)
