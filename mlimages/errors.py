"""One error type for bad user input, and the one place that turns it into a one-line message.

Library code raises `InputError` naming the file, line or field at fault; entry points
(the `mlimages` console script and every `pipelines/*.py` stage) wrap their `main` with
`exit_on_input_error`, so a user sees `error: FILE:LINE: what is wrong` and exit status 2,
never a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable


class InputError(Exception):
    """Bad input from the user: a file, a line of it, a params field, a URI.

    Args:
        message: what is wrong, in one line.
        where: the place, for example ``"lists.txt:12"`` or ``"params.yaml: pretrain.depth"``.
    """

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def exit_on_input_error(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap an entry point so an `InputError` prints one line to stderr and exits with status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
