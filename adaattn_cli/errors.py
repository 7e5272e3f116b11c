"""The project's exceptions: library code raises these, the CLI turns them into one-line messages."""


class AdaattnError(Exception):
    """Base class; the message is a plain sentence meant for the user."""


class BadInputError(AdaattnError, ValueError):
    """A user-supplied file or value is unusable (missing, corrupt, wrong size, out of range)."""


class WeightsError(AdaattnError):
    """A weights or model file is missing, corrupt, unsafe, or does not fit the model."""
