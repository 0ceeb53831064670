"""Fencing of shard tasks: every attempt writes in a folder of its own; only the driver commits one.

On a cluster a shard task can be retried while its first attempt still runs (its node lost contact,
not its process), so two writers of one shard must never share a file. Each attempt therefore runs
the unchanged shard code (`task.run_tasks`, over the few shards the task carries) in
`out/.attempts/TOKEN/`, its private output folder, and the driver, which alone knows which attempt
it is waiting for, moves each complete shard of that folder into `out` with `os.replace` (the
status file first, then the archive, as the local engine's commit does). A lost attempt that keeps
running writes only into its own folder, which is never committed: its work is wasted, never mixed.

Resume per sample still holds across attempts: a new attempt starts each of its shards from the
most advanced state of that shard (`seed_attempt`), in this order: the latest earlier attempt's
folder that holds the shard (it began from the committed shard and went on), then partial files
the local engine left in `out`, then the committed shard. Files another attempt may still be
appending to are copied, never linked (the shard task truncates a torn tail in place); committed
files are hard-linked where the file system allows (they are only ever replaced, never changed).
Earlier attempts' files of an adopted shard are deleted, and their folders once empty: a lost
attempt that is still running then fails on its next new file instead of working on. Tokens sort
in the order the driver made them (`attempt_token`), so an attempt only ever adopts and deletes
files of earlier attempts, never of a later one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mlimages.records.image_shard_format import shard_name

ATTEMPTS = ".attempts"
COMPLETE = (".tar", ".jsonl")
PARTIAL = (".tar.partial", ".jsonl.partial")


def attempt_token(run_started_ms: int, attempt: int) -> str:
    """A name that sorts after every attempt of earlier runs and earlier attempts of this run."""
    return f"{run_started_ms:014d}-{attempt:06d}"


def attempt_folder(out: Path, token: str) -> Path:
    return out / ATTEMPTS / token


def earlier_attempts(out: Path, token: str) -> list[Path]:
    """Folders of the attempts made before `token`, oldest first."""
    folder = out / ATTEMPTS
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name < token), key=lambda p: p.name)


def seed_attempt(out: Path, indexes: list[int], token: str) -> Path:
    """Make this attempt's folder, holding the most advanced state of each of its shards; returns the folder."""
    target = attempt_folder(out, token)
    target.mkdir(parents=True, exist_ok=True)
    earlier, adopted = earlier_attempts(out, token), set()
    for index in indexes:
        holders = [p for p in earlier if _has_shard(p, index)]
        _seed_shard((holders[-1:] or [out])[0], target, shard_name(index))
        for folder in holders:
            for suffix in COMPLETE + PARTIAL:
                (folder / (shard_name(index) + suffix)).unlink(missing_ok=True)
        adopted.update(holders)
    for folder in adopted:  # emptied of shards: a lost attempt still writing there fails at its next new file
        if not any(p.name.endswith(COMPLETE + PARTIAL) for p in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    return target


def _seed_shard(source: Path, target: Path, base: str) -> None:
    if (source / (base + PARTIAL[0])).exists():
        for suffix in PARTIAL:
            if (source / (base + suffix)).exists():
                shutil.copyfile(source / (base + suffix), target / (base + suffix))
    elif all((source / (base + suffix)).exists() for suffix in COMPLETE):
        for suffix in COMPLETE:
            _link_or_copy(source / (base + suffix), target / (base + suffix))


def _has_shard(folder: Path, index: int) -> bool:
    base = shard_name(index)
    return (folder / (base + PARTIAL[0])).exists() or all((folder / (base + s)).exists() for s in COMPLETE)


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)


def commit(out: Path, index: int, folder: Path) -> bool:
    """Move the attempt's complete shard `index` into `out`; False when the folder holds no complete one.

    Partial files an earlier local run left in `out` are deleted: the attempt started from them.
    """
    base = shard_name(index)
    if not all((folder / (base + suffix)).exists() for suffix in COMPLETE):
        return False
    for suffix in COMPLETE[::-1]:  # the status file first, then the archive
        os.replace(folder / (base + suffix), out / (base + suffix))
    for suffix in PARTIAL:
        (out / (base + suffix)).unlink(missing_ok=True)
    return True


def remove_attempts_folder(out: Path) -> None:
    """After a run that committed every shard: the empty `.attempts` folder goes (lost attempts' leftovers too)."""
    shutil.rmtree(out / ATTEMPTS, ignore_errors=True)


def run_started_ms() -> int:
    """The run's start in milliseconds since the epoch: the first part of its attempt tokens."""
    return time.time_ns() // 1_000_000
