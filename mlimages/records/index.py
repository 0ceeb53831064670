"""The contract of a record folder: `index.json`, its shards and `classes.tsv`.

A split folder (``data/tfrecords/ml-images/train``) holds ``part-NNNNN-of-MMMMM.tfrecord`` shards
and an ``index.json``: the format name, ``label_kind`` (``multi`` or ``single``), ``num_classes``,
the record count and, per shard, its file, count, bytes and sha256. Class names live in
``classes.tsv`` (``index<TAB>wnid<TAB>name``) inside the split (ML-Images) or beside the splits
(ImageNet). The writer, training, evaluation, statistics, serving and the CLI all read folders
through this module, so the checks and the error messages are the same everywhere.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Callable, Iterable

from mlimages.errors import InputError

FORMAT = "mlimages-tfrecord-v1"
INDEX_FILE = "index.json"
CLASSES_FILE = "classes.tsv"
FRAME_BYTES = 16  # a TFRecord frame around each record: 8-byte length, 4-byte length CRC, 4-byte data CRC


def read_index(folder: str | Path) -> dict:
    """The index.json of a split folder, checked for our format.

    Raises:
        InputError: the folder or its index is missing, not JSON or of another format.
    """
    folder = Path(folder)
    path = folder / INDEX_FILE
    if not folder.is_dir():
        raise InputError("record folder not found", str(folder))
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no index.json: not a records folder (or not finished)", str(folder)) from None
    except json.JSONDecodeError as error:
        raise InputError(f"index.json is not valid JSON ({error.msg})", f"{path}:{error.lineno}") from None
    if index.get("format") != FORMAT:
        raise InputError(f"unknown format {index.get('format')!r}, expected {FORMAT!r}", str(path))
    return index


def list_shards(folder: str | Path) -> list[Path]:
    """Shard paths of a split folder, in index order (an empty folder gives none)."""
    return [Path(folder) / shard["file"] for shard in read_index(folder)["shards"]]


def list_record_files(folder: str | Path, num_classes: int | None = None) -> list[str]:
    """The shard files a model reads: the folder must hold records, all present, of its classes.

    Args:
        folder: e.g. ``data/tfrecords/ml-images/train``.
        num_classes: the model's class count; another ``num_classes`` in index.json is an error.

    Returns:
        Shard paths as strings, in index order.
    """
    index = read_index(folder)
    where = str(Path(folder) / INDEX_FILE)
    if not index.get("count") or not index.get("shards"):
        raise InputError("the record folder holds no records", where)
    if num_classes is not None and index.get("num_classes") != num_classes:
        raise InputError(f"records have num_classes={index.get('num_classes')} but the model has {num_classes} "
                         "classes", where)
    files = [Path(folder) / shard["file"] for shard in index["shards"]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{len(missing)} shard(s) listed in index.json are missing, e.g. {missing[0]}", str(folder))
    return [str(f) for f in files]


def verify_folder(folder: str | Path, find_bad_record: Callable[[Path], str | None] | None = None) -> list[str]:
    """Check every shard against index.json (exists, size, sha256, record count), reading no record
    of a shard whose bytes already disagree with the index.

    Args:
        find_bad_record: names the first record of a shard that fails its CRC (it needs a TFRecord
            reader, which this module does not import); called only for a shard whose sha256 differs.

    Returns:
        One line per problem; empty when the folder is intact.
    """
    problems = []
    for shard in read_index(folder)["shards"]:
        path = Path(folder) / shard["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, index says {shard['bytes']}")
        elif hash_file(path) != shard["sha256"]:
            detail = find_bad_record(path) if find_bad_record else None
            problems.append(f"{path}: sha256 differs from index" + (f"; {detail}" if detail else ""))
        elif (count := count_frames(path)) != shard["count"]:
            problems.append(f"{path}: {count} records, index says {shard['count']}")
    return problems


def count_frames(path: Path) -> int:
    """Records in a TFRecord file, counted from the frame lengths (no decoding, no TensorFlow)."""
    count = 0
    with path.open("rb") as handle:
        while header := handle.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            handle.seek(length + 4, 1)
            count += 1
    return count


def hash_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def find_classes_file(folder: str | Path) -> Path | None:
    """The classes.tsv of a split folder: inside it (ML-Images splits) or beside it (ImageNet)."""
    for candidate in (Path(folder) / CLASSES_FILE, Path(folder).parent / CLASSES_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_class_names(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Names from a classes.tsv, in index order; a class without a row is named by its index.

    Args:
        path: the classes.tsv (``index<TAB>wnid<TAB>name``; a two-column row is ``index<TAB>name``).
        num_classes: the length of the list; default: the highest index + 1.

    Raises:
        InputError: a row without an integer index, or an index outside `num_classes`.
    """
    names: dict[int, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2 or not columns[0].strip().isdigit():
            raise InputError("expected index<TAB>wnid<TAB>name", f"{path}:{number}")
        index = int(columns[0])
        if num_classes is not None and index >= num_classes:
            raise InputError(f"class index {index} outside the {num_classes} classes", f"{path}:{number}")
        names[index] = (columns[2] if len(columns) > 2 else columns[1]).strip()
    size = num_classes if num_classes is not None else max(names, default=-1) + 1
    return [names.get(i, str(i)) for i in range(size)]


def write_classes(path: Path, rows: Iterable[tuple[int, str, str]]) -> None:
    """Write classes.tsv (``index<TAB>wnid<TAB>name``) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text("".join(f"{index}\t{wnid}\t{name}\n" for index, wnid, name in rows), encoding="utf-8")
    temp.replace(path)
