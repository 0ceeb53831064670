"""Input files of the image commands: checked before a model loads, skipped ones named at the end.

`classify` and `features` finish every image they can. A missing file is reported at once,
before the (slow) model load; an unreadable one when it is reached. At the end every skipped
file is named again in one line and the command exits with status 1, so a script notices.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlimages.errors import InputError


def check_image_files(paths: list[str], source: str) -> tuple[list[str], list[str]]:
    """Split `paths` into readable files and missing ones (each reported now on stderr).

    Raises:
        InputError: there is no image at all, or none of them exists.
    """
    if not paths:
        raise InputError("no image paths given", source)
    readable, missing = [], []
    for path in paths:
        if Path(path).is_file():
            readable.append(path)
        else:
            missing.append(path)
            print(f"skipped {path}: {'not a file' if Path(path).exists() else 'no such file'}", file=sys.stderr)
    if not readable:
        raise InputError(f"none of the {len(paths)} image(s) exists", source)
    return readable, missing


def describe_image_error(error: Exception) -> str:
    """A short reason for an image that could not be read or decoded."""
    return getattr(error, "strerror", None) or str(error)


def report_skipped(skipped: list[str], total: int) -> int:
    """Exit status of a finished command: 0, or 1 after one line naming every skipped file."""
    if not skipped:
        return 0
    print(f"error: skipped {len(skipped)} of {total} image(s): {', '.join(skipped)}", file=sys.stderr)
    return 1
