"""Which source serves a line: its original URL, or Open Images' mirror of the same image.

Many Open Images URLs of the lists are Flickr URLs that died years later, while Open Images keeps
every image on its own storage by image ID. With `mirror_metadata_csv` set, a line is fetched from
up to two sources ("legs"), one after the other:

- by default the original URL first; when it fails for good in a way that says the image is gone
  there (`FALLBACK_REASONS`: 404, 410, a placeholder redirect or image), the mirror;
- with `prefer_mirror`, the mirror first (when the URL is listed); on any final failure of the
  mirror, the original URL.

The mirror's bytes must have the CSV's ``OriginalMD5``, or the leg fails as ``md5_mismatch``: the
mirror then served something other than the image the list's labels were made for. Each leg has
its own attempts, retries and back-off, and goes through the same per-host gate as any URL, so
the mirror host gets the same politeness. A line that tried the mirror keeps every leg in its
status record (`legs`), so one failure record names both attempts.

A line an earlier run found dead at its URL, before the mirror was on, goes straight to the mirror
(`resume_at_mirror`): the dead URL is not asked again, and its earlier failure is the first leg.

The index is opened once per process (`open_mirror`): read-only SQLite, shared by the process's
workers. The run builds it before any fetch (`prepare_mirror`), so a bad CSV stops the run first.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mlimages.download.config import DownloadConfig
from mlimages.download.mirror import MirrorIndex, md5_matches
from mlimages.download.outcome import MIRROR, ORIGIN, FetchError, Result
from mlimages.errors import InputError

# Final failures that say the original URL no longer has the image; others (timeouts, 5xx after
# every retry, a bad image) may pass on a later run, and the mirror is not asked for those.
FALLBACK_REASONS = frozenset({"not_found", "gone"})


def index_path_of(csv_path: Path) -> Path:
    """The SQLite index beside the CSV (`image_ids.csv` -> `image_ids.csv.sqlite`), shared by all splits."""
    return csv_path.with_name(csv_path.name + ".sqlite")


def prepare_mirror(config: DownloadConfig) -> None:
    """Check the CSV and build or refresh its index, before any fetching; nothing when the mirror is off.

    Raises:
        InputError: the CSV is missing, lacks a needed column or has a broken row (names file and line).
    """
    if config.mirror_metadata_csv:
        csv_path = _csv_path(config)
        MirrorIndex(csv_path, index_path_of(csv_path), config.mirror_url_template).close()


def open_mirror(config: DownloadConfig) -> MirrorIndex | None:
    """This process's index of the configured CSV (opened once, reused by later tasks); None when off.

    A shard task run on its own (`task.download_shard`) builds the index here if no run prepared it.
    """
    if not config.mirror_metadata_csv:
        return None
    csv_path = _csv_path(config).resolve()
    stat = csv_path.stat()
    return _open_index(csv_path, config.mirror_url_template, stat.st_size, stat.st_mtime_ns)


def _csv_path(config: DownloadConfig) -> Path:
    csv_path = Path(config.mirror_metadata_csv)
    if not csv_path.is_file():
        raise InputError(f"metadata CSV not found: {csv_path}", "params.yaml: download.mirror_metadata_csv")
    return csv_path


@functools.lru_cache(maxsize=4)
def _open_index(csv_path: Path, template: str, size: int, mtime_ns: int) -> MirrorIndex:
    """Cached on the CSV's size and time too: a changed CSV gets a fresh index, never a stale handle."""
    return MirrorIndex(csv_path, index_path_of(csv_path), template)


def start_line(result: Result, mirror: MirrorIndex | None, prefer_mirror: bool) -> None:
    """Choose the first leg of a line: the mirror when preferred and listed, else the original URL."""
    if result.url:  # chosen when the line was planned (`resume_at_mirror`)
        return
    result.via, result.url, result.md5 = ORIGIN, result.source, ""
    if mirror is not None and prefer_mirror:
        _use_mirror(result, mirror)


def _use_mirror(result: Result, mirror: MirrorIndex) -> bool:
    """Point the line at the mirror when its original URL is listed; True if it is."""
    result.mirror_checked = True
    entry = mirror.lookup(result.source)
    if entry is None:
        return False
    result.via, result.url, result.md5 = MIRROR, entry.mirror_url, entry.md5
    return True


def resume_at_mirror(result: Result, record: dict, mirror: MirrorIndex) -> bool:
    """A line an earlier run found dead at its URL before the mirror was on: to the mirror, not the URL again.

    The earlier failure becomes the line's first leg. Returns False when the mirror does not list the
    URL: `result` then holds the earlier failure again, marked as asked about, to record as is.
    """
    earlier = {"via": ORIGIN, "url": result.source, "status": record["status"], "http_status": record["http_status"],
               "attempts": record["attempts"], "error": record["error"]}
    if _use_mirror(result, mirror):
        result.legs.append(earlier)
        return True
    result.status, result.error, result.http_status = record["status"], record["error"], record["http_status"]
    result.attempts, result.elapsed_s = record["attempts"], record["elapsed_s"]
    return False


def next_leg(result: Result, error: FetchError, mirror: MirrorIndex | None) -> bool:
    """After a final failure of the current leg (already in `result`'s status fields), move the line to
    its other source; False when none is left. The failed leg is kept in `result.legs`.
    """
    if mirror is None or len(result.legs) >= 1:
        return False
    if result.via == ORIGIN and (error.reason not in FALLBACK_REASONS or result.mirror_checked):
        return False
    failed = result.leg()
    if result.via == MIRROR:
        result.via, result.url, result.md5 = ORIGIN, result.source, ""
    elif not _use_mirror(result, mirror):
        return False
    result.legs.append(failed)
    result.leg_attempts = 0
    return True


def check_md5(result: Result, data: bytes | bytearray) -> None:
    """The mirror's bytes must be the original's (the CSV's ``OriginalMD5``)."""
    if result.via == MIRROR and not md5_matches(data, result.md5):
        raise FetchError("md5_mismatch", f"mirror bytes do not have OriginalMD5 {result.md5}")
