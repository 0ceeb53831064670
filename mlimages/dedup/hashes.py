"""The hashes of one set of images, as columns: from image shards or an ImageNet-layout folder.

A sample's `.json` may already carry its pHash (``"phash"``: 16 hex digits, written by the
downloader when it validates an image); a folder made before hashing existed has none, and its
hashes are backfilled here by decoding the stored image, never by fetching it again. Columns
are numpy arrays (about 70 bytes per image) so 17.6M images fit in memory; each row also keeps
where its image and metadata are, to read them again for the few rows a report shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mlimages.dedup.phash import parse_phash, phash_of_bytes
from mlimages.errors import InputError
from mlimages.records.image_shards import (JPG_OFFSET, JPG_SIZE, JSON_OFFSET, JSON_SIZE, LINE, index_shard,
                                           list_image_shards)
from mlimages.records.imagenet_layout import list_classes, list_val
from mlimages.records.ordered_map import map_ordered

log = logging.getLogger(__name__)

# Columns of `HashTable.locations`.
FILE, IMAGE_OFFSET, IMAGE_SIZE, META_OFFSET, META_SIZE = range(5)


@dataclass
class HashTable:
    """One image set. Row order is list-line order (shards) or sorted path order (folders).

    Attributes:
        names: (n,) bytes: the sample key, or the ImageNet id (``n01440764/x.JPEG``) of a folder image.
        phashes: (n,) uint64 perceptual hashes.
        digests: (n,) uint64: the first 64 bits of each image's sha256 (exact-copy test).
        locations: (n, 5) int64: file number, image offset and size, metadata offset and size (-1: none).
        files: the files `locations` numbers.
        backfilled: hashes computed here by decoding, rather than read from the metadata.
        undecodable: names of images that could not be decoded (left out of the table).
    """

    names: np.ndarray
    phashes: np.ndarray
    digests: np.ndarray
    locations: np.ndarray
    files: list[Path]
    backfilled: int = 0
    undecodable: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.phashes)

    def name(self, row: int) -> str:
        return self.names[row].decode("ascii")

    def record_filename(self, row: int) -> str:
        """The `image/filename` its record gets: the sample's source URL, or the folder image's ImageNet id."""
        return str(self.read_meta(row).get("source") or self.name(row))

    def read_image(self, row: int) -> bytes:
        return _read(self.files[self.locations[row, FILE]], *self.locations[row, IMAGE_OFFSET:IMAGE_SIZE + 1])

    def read_meta(self, row: int) -> dict:
        """The sample's `.json` (an empty dict for a folder image)."""
        offset, size = self.locations[row, META_OFFSET:META_SIZE + 1]
        if offset < 0:
            return {}
        return json.loads(_read(self.files[self.locations[row, FILE]], offset, size))


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(int(offset))
        return handle.read(int(size))


def _digest64(hex_digest: str) -> int:
    return int(hex_digest[:16], 16)


def _hash_one(item: tuple) -> tuple:
    """(name, phash, digest) of one sample; phash None when the image cannot be decoded."""
    name, phash, digest, data = item
    if phash is None:
        try:
            phash = phash_of_bytes(data)
        except Exception:  # noqa: BLE001 - Pillow raises assorted types on hostile files
            phash = None
    if digest is None:
        digest = _digest64(hashlib.sha256(data).hexdigest())
    return name, phash, digest


def _shard_items(path: Path, index: np.ndarray):
    """(name, phash or None, digest or None, image bytes or None) of each row of one shard."""
    with path.open("rb") as handle:
        for row in index:
            handle.seek(int(row[JSON_OFFSET]))
            meta = json.loads(handle.read(int(row[JSON_SIZE])).decode("utf-8"))
            where = f"{path.name}:{meta.get('key', '?')}"
            try:
                phash = parse_phash(meta["phash"]) if "phash" in meta else None
            except (TypeError, ValueError) as error:
                raise InputError(f"phash: {error}", where) from None
            digest = _digest64(meta["sha256"]) if meta.get("sha256") else None
            data = None
            if phash is None or digest is None:
                handle.seek(int(row[JPG_OFFSET]))
                data = handle.read(int(row[JPG_SIZE]))
            yield str(meta.get("key", "")), phash, digest, data


def hash_image_shards(folder, workers: int = 2) -> HashTable:
    """Hashes of every complete sample of a downloader split folder, in line order.

    Shard i holds lines i*N+1 .. (i+1)*N (`download.shards`), so shards in number order, each
    sorted by line, are in line order.
    """
    shards = list_image_shards(folder)
    if not shards:
        raise InputError("no NNNNN.tar image shards (has the download stage run?)", str(folder))
    indexes = []
    for shard in shards:
        index = index_shard(shard)[0]
        indexes.append(index[np.argsort(index[:, LINE], kind="stable")])
    locations = np.concatenate([np.column_stack([np.full(len(index), number), index[:, [JPG_OFFSET, JPG_SIZE,
                                                 JSON_OFFSET, JSON_SIZE]]]) for number, index in enumerate(indexes)])
    items = (item for shard, index in zip(shards, indexes) for item in _shard_items(shard, index))
    return _collect(items, len(locations), locations.astype(np.int64).reshape(-1, 5), shards, workers,
                    Path(folder).name)


def _collect(items, total: int, locations: np.ndarray, files: list[Path], workers: int, label: str) -> HashTable:
    """Hash the items (decoding only those without a stored hash) into a table; undecodable rows are left out."""
    names, phashes, digests, keep, undecodable, backfilled = [], [], [], [], [], 0
    results = map_ordered(_hash_one, items, workers)
    for row, (item, (name, phash, digest)) in enumerate(tqdm(results, total=total, desc=f"hashes {label}",
                                                             unit="img", disable=None)):
        backfilled += item[1] is None
        if phash is None:
            undecodable.append(name)
            log.warning("%s: %s could not be decoded; left out of the duplicate search", label, name)
            continue
        names.append(name.encode("ascii"))
        phashes.append(phash)
        digests.append(digest)
        keep.append(row)
    return HashTable(np.array(names, dtype=bytes), np.array(phashes, dtype=np.uint64),
                     np.array(digests, dtype=np.uint64), locations[np.array(keep, dtype=np.int64)], files,
                     backfilled - len(undecodable), undecodable)


def hash_imagenet_folder(root, split: str = "val", workers: int = 2) -> HashTable:
    """Hashes of an ILSVRC-2012 layout split (``val`` in either layout, or ``train``), sorted by path."""
    root = Path(root)
    wnids = list_classes(root)
    pairs = list_val(root, wnids) if split == "val" else [(p, 0) for p in sorted((root / split).glob("*/*"))]
    paths = [path for path, _ in pairs]
    items = ((_imagenet_id(root, p), None, None, p.read_bytes()) for p in paths)
    sizes = [p.stat().st_size for p in paths]
    locations = np.array([[i, 0, size, -1, -1] for i, size in enumerate(sizes)], dtype=np.int64).reshape(-1, 5)
    return _collect(items, len(paths), locations, paths, workers, f"{root.name}/{split}")


def _imagenet_id(root: Path, path: Path) -> str:
    """The record filename `build_imagenet` gives this image: its path below the split folder."""
    return path.relative_to(root).as_posix().split("/", 1)[1]
