"""The input list, streamed one shard's worth of lines at a time.

Shard `i` covers lines `i * samples_per_shard + 1 ... (i + 1) * samples_per_shard`. Reading a shard's
lines together lets the run compare them with what that shard recorded before any of them is
planned, so a kept shard never carries a source or labels the list no longer has. Memory holds at
most `samples_per_shard` parsed lines, whatever the list length.

Lines end at `\\n` only (a lone `\\r` does not end a line), so line numbers agree with `count_lines`,
with the shard boundaries and with `sed -n Np`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

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


def read_shards(path: Path, config: DownloadConfig, indexes: list[int]) -> Iterator[ShardLines]:
    """The given shards of the list, in the given order, each read from its first byte (`shard_offsets`).

    A worker process (or a cluster task) reads only its own shards, however long the list.
    """
    offsets = shard_offsets(path, config.samples_per_shard)
    size = config.samples_per_shard
    with path.open("rb") as handle:
        for index in indexes:
            shard = ShardLines(index)
            if index < len(offsets):
                handle.seek(offsets[index])
                for number in range(index * size + 1, (index + 1) * size + 1):
                    raw = handle.readline()
                    if not raw:
                        break
                    where = f"{path}:{number}"
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise InputError("not UTF-8 text", where) from None
                    annotation = parse_checked_line(text, where, config)
                    if annotation is not None:
                        shard.lines.append((number, annotation, where))
            yield shard


def shard_offsets(path: Path, samples_per_shard: int) -> list[int]:
    """The byte offset of each shard's first line (one vectorised pass over the file; cached per file version)."""
    if not path.is_file():
        raise InputError("list file not found", str(path))
    stat = path.stat()
    return _shard_offsets(str(path), stat.st_size, stat.st_mtime_ns, samples_per_shard)


@functools.lru_cache(maxsize=8)
def _shard_offsets(path: str, size: int, mtime_ns: int, samples_per_shard: int) -> list[int]:
    offsets, lines, position = [0], 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)  # "\n" positions in the chunk
            first = (samples_per_shard - 1 - lines) % samples_per_shard  # index in `ends` of the next shard end
            offsets += [position + int(end) + 1 for end in ends[first::samples_per_shard]]
            lines += len(ends)
            position += len(chunk)
    if offsets[-1] >= size:
        offsets.pop()  # the last shard ended exactly at the end of the file
    return offsets


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
