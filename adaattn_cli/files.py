"""Publishing finished outputs: a temporary in the target's folder becomes the target in one step."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BadInputError, OutputExistsError


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that exists, unless `overwrite`; and even then anything but a file or a folder (a device
    such as /dev/null, a pipe, a socket): renaming a finished output over it would put a file in its place.
    Whether a folder may be replaced is the caller's to judge. Also refuses a target inside something that is not a
    folder (`/dev/null/x.png`). Cheap: call it before the work; publish calls it again."""
    container = next((folder for folder in target.parents if folder.exists()), None)
    if container is not None and not container.is_dir():
        raise BadInputError(f"{target}: {container} is not a folder")
    if not target.exists():
        return
    if not overwrite:
        raise OutputExistsError(target)
    if not (target.is_file() or target.is_dir()):
        raise BadInputError(f"{target} is not a regular file (a device, a pipe or a socket); only files are replaced")


def publish(temporary: Path, target: Path, *, overwrite: bool) -> None:
    """Give the finished `temporary` (a file or a folder, in the target's folder) its final name.

    Without `overwrite`, an existing target is never replaced, even one that appeared while we were working
    (two runs on one output, another program): that is a BadInputError saying it exists, and the temporary
    is left for the caller to delete. A check beforehand cannot promise this; only the final step can.
    """
    if overwrite:
        check_target(target, overwrite=True)
        os.replace(temporary, target)
        return
    if temporary.is_dir():
        _claim(target, folder=True)  # rename() would replace an empty folder: claim the name first
        os.replace(temporary, target)  # replaces only our own empty placeholder
        return
    try:
        os.link(temporary, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise _exists(target) from None
    except OSError:  # a filesystem without hard links: claim the name with an exclusive create, then fill it
        _claim(target, folder=False)
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def _claim(target: Path, *, folder: bool) -> None:
    try:
        if folder:
            os.mkdir(target)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise _exists(target) from None


def _exists(target: Path) -> OutputExistsError:
    return OutputExistsError(target, appeared=True)
