"""The project's exceptions: library code raises these, the CLI turns them into one-line messages."""


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


class WeightsError(AdaattnError):
    """A weights or model file is missing, corrupt, unsafe, or does not fit the model."""
