"""The input list, streamed one shard's worth of lines at a time.

Shard `i` covers lines `i * samples_per_shard + 1 ... (i + 1) * samples_per_shard`. Reading a shard's
lines together lets the run compare them with what that shard recorded before any of them is
planned, so a kept shard never carries a source or labels the list no longer has. Memory holds at
most `samples_per_shard` parsed lines, whatever the list length.

Lines end at `\\n` only (a lone `\\r` does not end a line), so line numbers agree with `count_lines`,
with the shard boundaries and with `sed -n Np`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mlimages.annotations import Annotation, parse_line, source_kind
from mlimages.download.config import DownloadConfig
from mlimages.download.shards import shard_of_line
from mlimages.errors import InputError


@dataclass
class ShardLines:
    """The non-blank lines of one shard: `(line number, annotation, "file:line")` in list order."""

    index: int
    lines: list[tuple[int, Annotation, str]] = field(default_factory=list)


def read_shard_lines(path: Path, config: DownloadConfig, shard_index: int, num_shards: int) -> Iterator[ShardLines]:
    """Stream this worker's shards of the list (shard % num_shards == shard_index), one at a time.

    Lines of other workers' shards are not even parsed; blank lines are left out (they carry no image).
    """
    if not path.is_file():
        raise InputError("list file not found", str(path))
    current = None
    with path.open(encoding="utf-8", newline="\n") as handle:
        number = 0
        try:
            for number, text in enumerate(handle, start=1):
                index = shard_of_line(number, config.samples_per_shard)
                if index % num_shards != shard_index:
                    continue
                if current is None or current.index != index:
                    if current is not None:
                        yield current
                    current = ShardLines(index)
                where = f"{path}:{number}"
                annotation = parse_checked_line(text, where, config)
                if annotation is not None:
                    current.lines.append((number, annotation, where))
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", f"{path}:{number + 1}") from None
    if current is not None:
        yield current


def parse_checked_line(text: str, where: str, config: DownloadConfig) -> Annotation | None:
    """Parse one line; an ImageNet id needs `imagenet21k_root` to be fetchable at all."""
    annotation = parse_line(text, where, is_class=lambda index: index >= 0)
    if annotation is not None and not config.imagenet21k_root and source_kind(annotation.source) == "imagenet":
        raise InputError("ImageNet id, but params.yaml download.imagenet21k_root is empty; set it to "
                         "the folder holding wnid/wnid_N.JPEG files", where)
    return annotation


def count_lines(path: Path) -> int:
    """Lines of the list (blank ones included), from a fast byte count."""
    if not path.is_file():
        raise InputError("list file not found", str(path))
    lines, tail = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            lines += chunk.count(b"\n")
            tail = chunk[-1:]
    return lines + (tail != b"\n")


def count_wanted_lines(line_count: int, samples_per_shard: int, shard_index: int, num_shards: int) -> int:
    """Lines of a `line_count`-line list in this worker's shards (for the progress bar)."""
    return sum(
        min(samples_per_shard, line_count - shard * samples_per_shard)
        for shard in range(shard_index, -(-line_count // samples_per_shard), num_shards)
    )
