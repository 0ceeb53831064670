"""Read the downloader's image shards (``NNNNN.tar``) in list-line order.

Each stored sample is two tar members, ``<key>.jpg`` then ``<key>.json`` (the contract is
`mlimages.records.image_shard_format`). Samples are stored in download
order, which varies from run to run, so every shard is indexed first (member offsets, sorted by
``line``, kept as a small integer array) and the shards are then merged by ``line``. Output order
therefore depends only on the list.

A sample carries where its image lies (`StoredImage`), not the bytes: whoever transcodes it reads
them, a thread here or a Ray task on another node through the shared file system, so the ordered
stream of samples stays small and no image is copied between machines.
"""

from __future__ import annotations

import heapq
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mlimages.errors import InputError
from mlimages.records.image_shard_format import IMAGE_SUFFIX, META_SUFFIX, is_shard_stem

# Columns of a shard's index array.
LINE, JPG_OFFSET, JPG_SIZE, JSON_OFFSET, JSON_SIZE = range(5)


@dataclass(frozen=True)
class StoredImage:
    """Where one image's bytes lie: `size` bytes at `offset` of the file at `path` (absolute, so that
    a worker running in another folder finds it), and the sha256 they must have (empty: unchecked)."""

    path: str
    offset: int = 0
    size: int = -1  # -1: to the end of the file
    sha256: str = ""

    def read(self) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.size)


@dataclass(frozen=True)
class ImageSample:
    """One stored image and its labels; `where` (``00003.tar:<key>``) names it in reports."""

    where: str
    line: int
    source: str
    image: StoredImage
    labels: tuple[int, ...]
    confidences: tuple[float, ...]
    key: str = ""  # the downloader's storage key (empty for images read from a folder)


@dataclass(frozen=True)
class BadSample:
    """A sample that could not be used, with a short `reason` class and a `detail` for people."""

    where: str
    reason: str
    detail: str
    line: int | None = None
    source: str = ""


def list_image_shards(folder) -> list[Path]:
    """The ``NNNNN.tar`` shards of a split folder, by number (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("image shard folder not found", str(folder))
    return sorted(p for p in folder.glob("*.tar") if is_shard_stem(p.stem))


def index_shard(path: Path) -> tuple[np.ndarray, list[BadSample]]:
    """Offsets of every complete sample of one shard, sorted by line, and the incomplete ones.

    Returns:
        An int64 array of shape (samples, 5) with columns LINE..JSON_SIZE, and the bad samples
        (an image without metadata, metadata without image, unreadable metadata).
    """
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                stem, _, suffix = member.name.rpartition(".")
                if member.isfile() and suffix in (IMAGE_SUFFIX, META_SUFFIX):
                    members.setdefault(stem, {})[suffix] = member
            lines, bad = _read_lines(tar, path.name, members)
    except (tarfile.TarError, OSError) as error:
        raise InputError(f"not a readable tar archive ({error})", str(path)) from None
    rows = [(lines[stem], m[IMAGE_SUFFIX].offset_data, m[IMAGE_SUFFIX].size, m[META_SUFFIX].offset_data,
             m[META_SUFFIX].size)
            for stem, m in members.items() if stem in lines]
    index = np.array(sorted(rows), dtype=np.int64).reshape(-1, 5)
    return index, bad


def _read_lines(tar: tarfile.TarFile, name: str, members: dict) -> tuple[dict[str, int], list[BadSample]]:
    lines, bad = {}, []
    for stem, pair in members.items():
        where = f"{name}:{stem}"
        if META_SUFFIX not in pair:
            bad.append(BadSample(where, "missing_metadata", "image member without its .json"))
            continue
        try:
            meta = json.loads(tar.extractfile(pair[META_SUFFIX]).read().decode("utf-8"))
            line = int(meta["line"])
        except (ValueError, KeyError, TypeError) as error:
            bad.append(BadSample(where, "bad_metadata", f"{type(error).__name__}: {error}"))
            continue
        if IMAGE_SUFFIX not in pair:
            bad.append(BadSample(where, "missing_image", ".json member without its image", line, meta.get("source", "")))
            continue
        lines[stem] = line
    return lines, bad


def iter_samples(shards: list[Path], indexes: list[np.ndarray], num_classes: int) -> Iterator[ImageSample | BadSample]:
    """Samples of all shards merged by line; `indexes[i]` is `index_shard(shards[i])[0]`.

    Only the metadata is read here. A sample whose labels are malformed comes out as a `BadSample`;
    a label outside ``[0, num_classes)`` is an `InputError` (wrong hierarchy file).
    """
    paths = [str(shard.absolute()) for shard in shards]
    streams = [_keys(number, index) for number, index in enumerate(indexes)]
    handle, open_number = None, -1
    try:
        for _, number, position in heapq.merge(*streams):
            if number != open_number:  # shards usually hold disjoint line ranges: few reopens
                if handle is not None:
                    handle.close()
                handle, open_number = shards[number].open("rb"), number
            yield _read_sample(handle, paths[number], indexes[number][position], num_classes)
    finally:
        if handle is not None:
            handle.close()


def _keys(number: int, index: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(line, shard number, row) for each row of one shard's index: the merge key."""
    for position, line in enumerate(index[:, LINE].tolist()):
        yield line, number, position


def _read_sample(handle, path: str, row: np.ndarray, num_classes: int) -> ImageSample | BadSample:
    handle.seek(int(row[JSON_OFFSET]))
    meta = json.loads(handle.read(int(row[JSON_SIZE])).decode("utf-8"))
    name = Path(path).name
    where, line, source = f"{name}:{meta.get('key', '?')}", int(row[LINE]), str(meta.get("source", ""))
    try:
        labels = tuple(int(v) for v in meta["labels"])
        confidences = tuple(float(v) for v in meta.get("confidences", [1.0] * len(labels)))
    except (KeyError, TypeError, ValueError) as error:
        return BadSample(where, "bad_metadata", f"labels: {type(error).__name__}: {error}", line, source)
    if len(confidences) != len(labels):
        return BadSample(where, "bad_metadata", f"{len(labels)} labels but {len(confidences)} confidences", line, source)
    outside = [label for label in labels if not 0 <= label < num_classes]
    if outside:
        raise InputError(f"label {outside[0]} outside the hierarchy's {num_classes} classes "
                         f"(is --hierarchy the file the lists were made with?)", f"{name}:{meta.get('key')}")
    image = StoredImage(path, int(row[JPG_OFFSET]), int(row[JPG_SIZE]), str(meta.get("sha256") or ""))
    return ImageSample(where, line, source, image, labels, confidences, str(meta.get("key", "")))
