"""List lines: an image source followed by `class:confidence` tokens.

    https://farm2.staticflickr.com/2034/1557324960_1ae893fed8_o.jpg  4097:1  4089:1  2:1
    n04310904/n04310904_8388.JPEG  4767:0.9  4765:0.9

The source is a URL (`http://`, `https://`, `file://`, or a relative `file:` URL such as
`file:data/demo/images/train/00001.jpg`) or an ImageNet id (`wnid/wnid_N.JPEG`).
Tokens are separated by any whitespace (tabs in the paper, spaces in some files). Our own prepared
lists use the same format with tabs, so there is one parser for everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from mlimages.errors import InputError

URL_SCHEMES = ("http://", "https://", "file:")
IMAGENET_ID = re.compile(r"^n\d{8}/n\d{8}_\d+\.(JPEG|jpeg|jpg|JPG)$")

OnBadLine = Literal["error", "skip"]


@dataclass(frozen=True)
class Annotation:
    """One image and its labels, sorted by class index, each with a confidence in [0, 1]."""

    source: str
    labels: tuple[tuple[int, float], ...]

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self.labels)

    @property
    def confidences(self) -> tuple[float, ...]:
        return tuple(confidence for _, confidence in self.labels)

    def as_dict(self) -> dict[int, float]:
        return dict(self.labels)


def source_kind(source: str) -> Literal["url", "file", "imagenet"]:
    """How to fetch a source: over HTTP, from a local file URL, or from a local ImageNet root."""
    if source.startswith(("http://", "https://")):
        return "url"
    if source.startswith("file:"):  # file:///abs/path, or file:rel/path (see download/sources.py)
        return "file"
    if IMAGENET_ID.match(source):
        return "imagenet"
    raise ValueError(f"not a URL or an ImageNet id: {source!r}")


def parse_line(line: str, where: str, is_class: Callable[[int], bool]) -> Annotation | None:
    """Parse one list line; `None` for a blank line, `InputError` (naming `where`) for a bad one.

    Args:
        line: the text of the line.
        where: ``"file:line"`` for error messages.
        is_class: tells whether a class index exists (e.g. ``hierarchy.__contains__``).
    """
    tokens = line.split()
    if not tokens:
        return None
    source = tokens[0]
    try:
        source_kind(source)
    except ValueError:
        raise InputError(
            f"first token must be a URL (http://, https://, file:) or an ImageNet id, got '{source[:80]}'", where
        ) from None
    labels: dict[int, float] = {}
    for token in tokens[1:]:
        index, confidence = _parse_token(token, where)
        if not is_class(index):
            raise InputError(f"unknown class index {index}", where)
        labels[index] = max(confidence, labels.get(index, 0.0))
    return Annotation(source, tuple(sorted(labels.items())))


def _parse_token(token: str, where: str) -> tuple[int, float]:
    index_text, sep, confidence_text = token.partition(":")
    try:
        if not sep:
            raise ValueError
        index, confidence = int(index_text), float(confidence_text)
    except ValueError:
        raise InputError(f"malformed label token '{token[:40]}', expected class:confidence", where) from None
    if not 0.0 <= confidence <= 1.0:
        raise InputError(f"confidence {confidence_text} of class {index} is outside [0, 1]", where)
    return index, confidence


def format_line(annotation: Annotation) -> str:
    """The tab-separated list line of `annotation` (inverse of `parse_line`)."""
    tokens = [annotation.source] + [f"{index}:{confidence:.6g}" for index, confidence in annotation.labels]
    return "\t".join(tokens)


def read_annotations(
    path: str | Path,
    is_class: Callable[[int], bool],
    on_bad_line: OnBadLine = "error",
    bad_lines: list[str] | None = None,
) -> Iterator[Annotation]:
    """Stream the annotations of a list file.

    Args:
        path: the list file.
        is_class: tells whether a class index exists.
        on_bad_line: ``"error"`` raises on the first bad line; ``"skip"`` leaves it out.
        bad_lines: when given, each skipped line's one-line message is appended here.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("list file not found", str(path))
    with path.open(encoding="utf-8", errors="strict") as handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                try:
                    annotation = parse_line(line, f"{path}:{number}", is_class)
                except InputError as error:
                    if on_bad_line == "error":
                        raise
                    if bad_lines is not None:
                        bad_lines.append(str(error))
                    continue
                if annotation is not None:
                    yield annotation
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", f"{path}:{number + 1}") from None
