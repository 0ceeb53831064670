"""One shard of the output: a fixed range of input lines, its tar archive and its status file.

Shard `i` covers input lines `i * samples_per_shard + 1 ... (i + 1) * samples_per_shard`, so the
split of work (`--shard-index/--num-shards`) and resuming are both decided by line numbers alone.

Files in the output folder, for shard 7:
    00007.tar / 00007.jsonl                   complete shard (both renamed into place at the end)
    00007.tar.partial / 00007.jsonl.partial   in progress: samples and status lines appended as
                                              they finish, flushed, so a kill loses at most one
A complete shard that still has failures to retry is copied back to `.partial` files and renamed
over the old archive when done: readers only ever see complete archives. A shard the list no
longer matches is deleted whole (`Shard.discard`, see `staleness`) and fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mlimages.annotations import Annotation
from mlimages.download.fallback import FALLBACK_REASONS
from mlimages.download.outcome import MIRROR, OK, ORIGIN, Result, is_retryable
from mlimages.download.tarstream import END_OF_ARCHIVE, scan_samples, write_sample
from mlimages.records.image_shard_format import SHARD_DIGITS, shard_name

FETCH, SKIP, DUPLICATE, RECOVER = "fetch", "skip", "duplicate", "recover"
SHARD_SUFFIXES = (".tar", ".jsonl", ".partial", ".tmp")


def shard_of_line(line: int, samples_per_shard: int) -> int:
    """The shard holding 1-based input line `line`."""
    return (line - 1) // samples_per_shard


def shard_files(out: Path) -> list[Path]:
    """Every shard archive, status file and partial file in `out`."""
    return [p for p in out.iterdir() if p.name[:SHARD_DIGITS].isdigit() and p.name.endswith(SHARD_SUFFIXES)]


def index_of_file(path: Path) -> int:
    """The shard a file of `shard_files` belongs to (`00007.tar.partial` -> 7)."""
    return int(path.name.split(".")[0])


class Shard:
    """The state of one shard while the run passes over its lines.

    Args:
        out: the output folder.
        index: the shard number.
        retry_failures: also fetch lines whose earlier failure was permanent.
        mirror_on: Open Images' mirror is configured: a line whose URL was found dead before the mirror
            was asked about it is planned `RECOVER`, so turning the mirror on recovers what it can.
    """

    def __init__(self, out: Path, index: int, retry_failures: bool, mirror_on: bool = False):
        self.index = index
        self.retry_failures = retry_failures
        self.mirror_on = mirror_on
        base = out / shard_name(index)
        self.tar_path, self.jsonl_path = base.with_suffix(".tar"), base.with_suffix(".jsonl")
        self.tar_partial = base.with_name(base.name + ".tar.partial")
        self.log_partial = base.with_name(base.name + ".jsonl.partial")
        self.statuses: dict[int, dict] = {}
        self.first_line_of_key: dict[str, int] = {}
        self._tar = self._log = None
        self.changed = False
        self._load()

    def _load(self) -> None:
        """Read what earlier runs left: a partial shard wins over a complete one."""
        if self.tar_partial.exists():
            self._recover_partial()
        elif self.tar_path.exists() and self.jsonl_path.exists():
            self.statuses = {r["line"]: r for r in read_status_lines(self.jsonl_path)}
            self.log_partial.unlink(missing_ok=True)  # left by a kill just after the final rename
        for line in sorted(self.statuses):
            self.first_line_of_key.setdefault(self.statuses[line]["key"], line)

    def _recover_partial(self) -> None:
        with self.tar_partial.open("r+b") as handle:
            samples, end = scan_samples(handle)
            handle.truncate(end)  # cut a torn last sample
        stored = {meta["line"]: meta for meta in samples}
        logged = {r["line"]: r for r in read_status_lines(self.log_partial)} if self.log_partial.exists() else {}
        for line, record in logged.items():
            if record["status"] != OK or line in stored:
                self.statuses[line] = record
        for line, meta in stored.items():
            self.statuses.setdefault(line, recovered_status(meta))
        self._write_log_partial()  # rewritten whole: appending after a torn last line would corrupt it
        self.changed = True

    def _write_log_partial(self) -> None:
        temporary = self.log_partial.with_name(self.log_partial.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as log:
            for line in sorted(self.statuses):
                log.write(json.dumps(self.statuses[line], sort_keys=True) + "\n")
        os.replace(temporary, self.log_partial)

    @property
    def status_path(self) -> Path:
        """The status file this shard's records came from (the partial one while in progress)."""
        return self.log_partial if self.log_partial.exists() else self.jsonl_path

    def discard(self) -> list[str]:
        """Delete this shard's files, complete and partial, and forget its records; returns the names.

        Used when the list no longer matches the shard: its lines are then fetched again.
        """
        self.close()
        names = []
        for path in sorted(self.tar_path.parent.glob(self.tar_path.stem + ".*")):
            if path.name.endswith(SHARD_SUFFIXES):
                path.unlink()
                names.append(path.name)
        self.statuses.clear()
        self.first_line_of_key.clear()
        self.changed = False
        return names

    def plan(self, line: int, key: str, annotation: Annotation) -> str:
        """Decide what to do with one input line: `FETCH`, `SKIP` (done earlier), `DUPLICATE` (recorded now),
        or `RECOVER` (dead at its URL before the mirror was on: try the mirror, not the URL again).

        The run has already checked this shard's records against the list (`staleness.check_shard`),
        so a recorded line here has the list's source and labels.
        """
        record = self.statuses.get(line)
        first = self.first_line_of_key.setdefault(key, line)
        if first != line:
            if record is None or record["status"] != "duplicate":
                self.record(duplicate_result(line, key, annotation, first))
                return DUPLICATE
            return SKIP
        if record is None or is_retryable(record["status"]):
            return FETCH
        if record["status"] != OK and self.retry_failures:
            return FETCH
        if self.mirror_on and record["status"] in FALLBACK_REASONS and not record.get("mirror_checked"):
            return RECOVER
        return SKIP

    def record(self, result: Result) -> None:
        """Store one finished line: its sample (when ok) first, then its status line."""
        self._open_for_writing()
        if result.jpeg is not None:
            write_sample(self._tar, result.key, result.jpeg, sample_meta(result))
        record = result.status_record()
        self._log.write(json.dumps(record, sort_keys=True) + "\n")
        self._log.flush()
        self.statuses[result.line] = record

    def _open_for_writing(self) -> None:
        if self._tar is not None:
            return
        if not self.tar_partial.exists():
            self._reopen_complete()
        self._tar = self.tar_partial.open("ab")
        self._log = self.log_partial.open("a", encoding="utf-8")
        self.changed = True

    def _reopen_complete(self) -> None:
        """Start partial files, from the complete shard when there is one (its old files stay visible).

        The archive copy is renamed into place last: a kill during the copy leaves no partial archive,
        so the next run starts again from the complete shard instead of refetching what the copy lost.
        """
        self._write_log_partial()
        temporary = self.tar_partial.with_name(self.tar_partial.name + ".tmp")
        with temporary.open("wb") as target:
            if self.tar_path.exists():
                with self.tar_path.open("rb") as source:
                    _, end = scan_samples(source)
                    source.seek(0)
                    copy_bytes(source, target, end)
        os.replace(temporary, self.tar_partial)

    def close(self) -> None:
        """Close the partial files without finishing the shard (the next run resumes from them)."""
        for handle in (self._tar, self._log):
            if handle is not None:
                handle.close()
        self._tar = self._log = None

    def finish(self) -> None:
        """Make the shard visible: end the archive, write the sorted status file, rename both."""
        if not self.changed:
            return
        self._open_for_writing()
        self._tar.write(END_OF_ARCHIVE)
        for handle in (self._tar, self._log):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        self._tar = self._log = None
        temporary = self.jsonl_path.with_name(self.jsonl_path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for line in sorted(self.statuses):
                handle.write(json.dumps(self.statuses[line], sort_keys=True) + "\n")
        os.replace(temporary, self.jsonl_path)
        os.replace(self.tar_partial, self.tar_path)
        self.log_partial.unlink()
        self.changed = False


def sample_meta(result: Result) -> dict:
    """The `<key>.json` member: the contract read by the record builder (and `phash` by the dedup stage).

    `served_by` says which source the bytes came from (`origin`, or `mirror` with the mirror's URL;
    the mirror's bytes always matched the original's MD5, else they were not stored).
    """
    meta = {
        "key": result.key,
        "line": result.line,
        "source": result.source,
        "labels": [index for index, _ in result.labels],
        "confidences": [confidence for _, confidence in result.labels],
        "width": result.width,
        "height": result.height,
        "sha256": hashlib.sha256(result.jpeg).hexdigest(),
        "phash": result.phash,
        "served_by": result.via,
    }
    if result.via == MIRROR:
        meta.update(mirror_url=result.url, md5_matched=True)
    return meta


def recovered_status(meta: dict) -> dict:
    """A status line for a sample found in a partial archive whose status line was lost in a kill."""
    labels = tuple(zip(meta["labels"], meta["confidences"]))
    result = Result(meta["line"], meta["key"], meta["source"], labels, OK, error="recovered after interruption",
                    phash=meta.get("phash", ""), via=meta.get("served_by", ORIGIN))
    return result.status_record()


def duplicate_result(line: int, key: str, annotation: Annotation, first: int) -> Result:
    return Result(line, key, annotation.source, annotation.labels, "duplicate", error=f"same source as line {first}")


def read_status_lines(path: Path) -> list[dict]:
    """Status records of a jsonl file; a torn last line (from a kill) is ignored."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            try:
                records.append(json.loads(text))
            except json.JSONDecodeError:
                break
    return records


def copy_bytes(source, target, count: int) -> None:
    """Copy the first `count` bytes of `source` to `target` in 1 MiB pieces (bounded memory)."""
    remaining = count
    while remaining > 0:
        chunk = source.read(min(remaining, 1 << 20))
        if not chunk:
            break
        target.write(chunk)
        remaining -= len(chunk)
