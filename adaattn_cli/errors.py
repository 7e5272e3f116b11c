"""The project's exceptions: library code raises these, the CLI turns them into one-line messages."""

import re
from typing import Callable


class AdaattnError(Exception):
    """Base class; the message is a plain sentence meant for the user."""


class BadInputError(AdaattnError, ValueError):
    """A user-supplied file or value is unusable (missing, corrupt, wrong size, out of range)."""


class OutputExistsError(BadInputError):
    """An output exists and replacing it was not asked for. The message names the library's argument; the CLI
    names its flag instead (cli/console.py)."""

    def __init__(self, path, *, appeared: bool = False):
        self.path = path
        self.detail = " (it appeared while this run was working)" if appeared else ""
        super().__init__(f"{path} exists{self.detail}; pass overwrite=True to replace it")


class SettingError(BadInputError):
    """A setting's value, or a combination of settings, is unusable. The message template names each setting as
    {name} (its library name, e.g. {crop_size}): the library says `crop_size`, the CLI its flag `--crop-size`
    (cli/console.py); a few settings have other library spellings (LIBRARY_WORDING)."""

    LIBRARY_WORDING = {"max_pixels": "image_io.set_pixel_limit()"}

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.render(lambda name: self.LIBRARY_WORDING.get(name, name)))

    def render(self, wording: Callable[[str], str]) -> str:
        """The message with every {setting} spelled by `wording`."""
        return re.sub(r"\{([a-z][a-z0-9_]*)\}", lambda match: wording(match.group(1)), self.template)


class WeightsError(AdaattnError):
    """A weights or model file is missing, corrupt, unsafe, or does not fit the model."""
