"""What a changed list makes stale in an output folder: stop, or with `--force` discard just that.

A kept shard must never carry a source or labels the list no longer has, and downloaded images may
be irreplaceable, so a mismatch stops the run with a one-line error unless `--force` is given; then
only the stale shards are deleted (with a warning naming them and why) and their lines fetched again.
Two cases:

- a shard whose recorded lines differ from the list's lines in its range (another source or other
  labels on a line, or a recorded line now blank or past the end of the list): `check_shard`, run
  on each shard before any of its lines is planned;
- shards that start after the last line of a list that got shorter: `remove_shards_past_end`, run
  once before the download starts.

Only this worker's shards (index % num_shards == shard_index) are ever looked at or touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlimages.download.listfile import ShardLines
from mlimages.download.shards import Shard, index_of_file, shard_files
from mlimages.errors import InputError

log = logging.getLogger(__name__)


def check_shard(shard: Shard, listed: ShardLines, list_path: Path, force: bool) -> None:
    """Compare a shard's records with its lines of the list; discard the shard with `force`.

    Raises:
        InputError: the shard records a line the list no longer has, and `force` is off. Shards
            finished earlier in the run stay finished, so nothing done is lost.
    """
    change = find_list_change(shard.statuses, listed)
    if change is None:
        return
    line, what = change
    if not force:
        raise InputError(
            f"the list changed since {shard.status_path} was written: line {line} {what}; rerun with --force "
            "to fetch this shard again (shards that still match are kept)",
            f"{list_path}:{line}",
        )
    names = shard.discard()
    log.warning("--force: discarding shard %s (%s) because %s:%d %s",
                shard.tar_path.stem, ", ".join(names), list_path, line, what)


def find_list_change(statuses: dict[int, dict], listed: ShardLines) -> tuple[int, str] | None:
    """The first recorded line the list disagrees with, as `(line, what changed)`; None if all agree.

    Lines the list has but the shard has not recorded yet are not a change: they are still to fetch.
    """
    wanted = {line: (annotation.source, annotation.labels) for line, annotation, _ in listed.lines}
    for line in sorted(statuses):
        record = statuses[line]
        if line not in wanted:
            return line, f"is blank or past the end of the list now, but was {record['source'][:80]!r}"
        source, labels = wanted[line]
        recorded_labels = tuple(tuple(pair) for pair in record.get("labels", labels))
        if record["source"] != source:
            return line, f"is {source[:80]!r} now, but was {record['source'][:80]!r}"
        if recorded_labels != labels:
            return line, f"has labels {format_labels(labels)} now, but had {format_labels(recorded_labels)}"
    return None


def format_labels(labels: tuple[tuple[int, float], ...]) -> str:
    """Labels as the list writes them, e.g. `1:1 9:0.5`, cut to stay on one short line."""
    text = " ".join(f"{index}:{confidence:g}" for index, confidence in labels)
    return text if len(text) <= 60 else text[:57] + "..."


def remove_shards_past_end(
    out: Path, list_path: Path, line_count: int, samples_per_shard: int, shard_index: int, num_shards: int, force: bool
) -> None:
    """Deal with this worker's shards that start after the list's last line (the list got shorter).

    Raises:
        InputError: there are such shards and `force` is off (checked before anything is fetched).
    """
    first_past_end = -(-line_count // samples_per_shard)  # the number of shards the list fills
    stale = sorted(
        path for path in shard_files(out)
        if index_of_file(path) >= first_past_end and index_of_file(path) % num_shards == shard_index
    )
    if not stale:
        return
    if not force:
        raise InputError(
            f"the list ends at line {line_count}, but {out} holds shards past it ({len(stale)} files, the first "
            f"{stale[0].name}); rerun with --force to discard them",
            f"{list_path}:{line_count}",
        )
    log.warning("--force: discarding %d shard files past line %d, the end of %s: %s",
                len(stale), line_count, list_path, ", ".join(path.name for path in stale))
    for path in stale:
        path.unlink()
