"""Open Images' mirror: for an original (often dead) Flickr URL, the mirror URL and the expected MD5.

Open Images publishes an image metadata CSV (``ImageID``, ``OriginalURL``, ``OriginalMD5``, ...,
about 9 million rows) and serves every image from its own storage by image ID. The CSV is
streamed once into an on-disk SQLite table with an index on the URL, and looked up one URL at a
time while downloading; nothing of it is held in memory.

Why SQLite rather than an external sort-merge join: the downloader needs one URL at a time, in
list order, and only for URLs that fail (or all of them with ``prefer_mirror``); a B-tree on disk
answers that in a few page reads with a bounded page cache, while a sort-merge would need the list
sorted by URL and a second pass to put results back in list order. SQLite is in the standard
library, builds the index with its own external sort (bounded memory, temp files), and the index
file is reused until the CSV changes (its size and mtime are stored beside the rows).

``OriginalMD5`` is the base64 of the MD5 digest (as in Open Images' files); `md5_matches` also
accepts 32 hex digits.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mlimages.errors import InputError

REQUIRED_COLUMNS = ("ImageID", "OriginalURL", "OriginalMD5")
BATCH_ROWS = 10_000
CACHE_KIB = 32 * 1024  # SQLite page cache while building and reading: bounds memory whatever the row count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorEntry:
    """Where the mirror serves an image and what its bytes should hash to."""

    image_id: str
    mirror_url: str
    md5: str


def check_template(template: str) -> str:
    """A mirror URL template must contain ``{image_id}`` and no other field."""
    try:
        template.format(image_id="x")
    except (KeyError, IndexError, ValueError) as error:
        raise InputError(f"mirror URL template may only use {{image_id}} ({error!r})", template) from None
    if "{image_id}" not in template:
        raise InputError("mirror URL template has no {image_id}", template)
    return template


def iter_metadata_rows(path: Path) -> Iterator[tuple[str, str, str]]:
    """(OriginalURL, ImageID, OriginalMD5) of each CSV row, streamed; bad input names file and line."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)  # a stray quote is an error, not a merged field
        try:
            header = next(reader, None)
            if header is None:
                raise InputError("empty metadata CSV (expected a header line)", f"{path}:1")
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                raise InputError(f"missing column(s) {', '.join(missing)}; header has {', '.join(header)[:200]}",
                                 f"{path}:1")
            positions = [header.index(name) for name in REQUIRED_COLUMNS]
            for fields in reader:
                if len(fields) != len(header):
                    raise InputError(f"expected {len(header)} fields, got {len(fields)}", f"{path}:{reader.line_num}")
                image_id, url, md5 = (fields[i] for i in positions)
                if not image_id or not url.startswith(("http://", "https://")):
                    raise InputError(f"expected an ImageID and an http(s) OriginalURL, got {fields[:3]!r}"[:200],
                                     f"{path}:{reader.line_num}")
                yield url, image_id, md5
        except (csv.Error, UnicodeDecodeError) as error:
            raise InputError(f"not a readable CSV row ({error})", f"{path}:{max(1, reader.line_num)}") from None


def _csv_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def build_mirror_index(csv_path, index_path) -> int:
    """Stream the metadata CSV into a new SQLite index file (written beside, then renamed); returns rows."""
    csv_path, index_path = Path(csv_path), Path(index_path)
    if not csv_path.is_file():
        raise InputError("metadata CSV not found", str(csv_path))
    index_path.parent.mkdir(parents=True, exist_ok=True)
    # Per process: two downloads (the train and val splits) may build the same index at once.
    temporary = index_path.with_name(f"{index_path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    rows = 0
    with sqlite3.connect(temporary) as db:
        db.executescript(f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
                         f"PRAGMA cache_size=-{CACHE_KIB};"
                         "CREATE TABLE images (url TEXT NOT NULL, image_id TEXT NOT NULL, md5 TEXT NOT NULL);"
                         "CREATE TABLE meta (csv_stamp TEXT NOT NULL);")
        batch = []
        for row in iter_metadata_rows(csv_path):
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                db.executemany("INSERT INTO images VALUES (?, ?, ?)", batch)
                rows, batch = rows + len(batch), []
        db.executemany("INSERT INTO images VALUES (?, ?, ?)", batch)
        rows += len(batch)
        db.execute("CREATE INDEX by_url ON images (url)")  # one external sort, after the load
        db.execute("INSERT INTO meta VALUES (?)", (_csv_stamp(csv_path),))
    db.close()
    os.replace(temporary, index_path)
    log.info("mirror index: %d rows from %s", rows, csv_path)
    return rows


class MirrorIndex:
    """Look up original URLs in an index made by `build_mirror_index` (rebuilt when the CSV changed).

    Args:
        csv_path: Open Images' image metadata CSV.
        index_path: the SQLite file to use or make (e.g. beside the download's output).
        url_template: mirror URL with ``{image_id}``, e.g.
            ``https://open-images-dataset.s3.amazonaws.com/train/{image_id}.jpg``.
    """

    def __init__(self, csv_path, index_path, url_template: str):
        self.url_template = check_template(url_template)
        csv_path, index_path = Path(csv_path), Path(index_path)
        if not csv_path.is_file():
            raise InputError("metadata CSV not found", str(csv_path))
        if not index_path.is_file() or self._stamp(index_path) != _csv_stamp(csv_path):
            build_mirror_index(csv_path, index_path)
        # One read-only connection shared by the download's worker threads, one query at a time.
        self._db = sqlite3.connect(f"file:{index_path}?mode=ro", uri=True, check_same_thread=False)
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(index_path: Path) -> str | None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT csv_stamp FROM meta").fetchone()
            return row[0] if row else None
        except sqlite3.Error:  # a torn or foreign file: built again
            return None

    def lookup(self, url: str) -> MirrorEntry | None:
        """The mirror entry of an original URL (the first CSV row with it), or None when not listed."""
        with self._lock:
            row = self._db.execute("SELECT image_id, md5 FROM images WHERE url = ? ORDER BY rowid LIMIT 1",
                                   (url,)).fetchone()
        if row is None:
            return None
        return MirrorEntry(row[0], self.url_template.format(image_id=row[0]), row[1])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "MirrorIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def md5_matches(data: bytes, expected: str) -> bool:
    """Whether `data` has the MD5 given as base64 (Open Images' form) or as 32 hex digits."""
    digest = hashlib.md5(data).digest()
    if len(expected) == 32:
        return digest.hex() == expected.lower()
    return base64.b64encode(digest).decode("ascii") == expected
