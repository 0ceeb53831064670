"""The numbers of a download run: the DVC metrics file and the one-screen summary.

Counts cover every line of the shards this run was responsible for (including lines finished by
earlier runs), so the metrics describe the output folder, not one attempt; the `run` block says
what this particular run did and how fast. Lines fall in three groups (`outcome.group_of`):
stored, skipped by policy, failed; the success rate leaves the policy skips out. The `mirror`
block counts the lines Open Images' mirror took part in (`mirror_kind`). `ok` repeats
`stored` for readers of reports written before the groups existed.
"""

from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mlimages.download.fingerprint import write_atomic
from mlimages.download.outcome import FAILED, MIRROR, OK, SKIPPED, STORED, group_of, is_retryable, success_rate

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Counts collected as shards close and results arrive."""

    by_status: collections.Counter = field(default_factory=collections.Counter)
    stored_bytes: int = 0
    shards: int = 0
    fetched: int = 0
    fetched_ok: int = 0
    fetched_bytes: int = 0
    mirror: collections.Counter = field(default_factory=collections.Counter)  # see `mirror_kind`
    # What ran the shards, as a cluster engine knows it (Ray: processes, nodes, attempts, retries),
    # for the report's `run` block; empty for the local engine, whose process count the run knows.
    engine_run: dict = field(default_factory=dict)

    def merge(self, other: "Tally") -> None:
        """Add the counts of another process's (or task's) tally."""
        self.by_status.update(other.by_status)
        self.stored_bytes += other.stored_bytes
        self.shards += other.shards
        self.fetched += other.fetched
        self.fetched_ok += other.fetched_ok
        self.fetched_bytes += other.fetched_bytes
        self.mirror.update(other.mirror)

    def add_shard(self, statuses: dict[int, dict]) -> None:
        self.shards += 1
        for record in statuses.values():
            self.by_status[record["status"]] += 1
            self.stored_bytes += record.get("bytes", 0)
            kind = mirror_kind(record)
            if kind:
                self.mirror[kind] += 1


MIRROR_KINDS = ("recovered", "first", "origin_after_mirror", "both_failed")


def mirror_kind(record: dict) -> str | None:
    """How Open Images' mirror took part in a line (None: it did not).

    ``recovered``: the original URL failed for good and the mirror served the image; ``first``:
    served by the mirror, tried first (`prefer_mirror`); ``origin_after_mirror``: the mirror failed
    and the original URL served it; ``both_failed``: both were tried and failed.
    """
    served_by, legs = record.get("served_by"), record.get("legs") or []
    if record["status"] != OK:
        return "both_failed" if legs else None
    if served_by == MIRROR:
        return "recovered" if legs else "first"
    return "origin_after_mirror" if legs else None


def build_report(tally: Tally, elapsed_s: float, shard_index: int, num_shards: int, processes: int = 1) -> dict:
    """The metrics written to reports/download/{split}.json."""
    groups = collections.Counter()
    for name, count in tally.by_status.items():
        groups[group_of(name)] += count
    not_ok = {name: count for name, count in sorted(tally.by_status.items()) if name != OK}
    return {
        "lines": sum(tally.by_status.values()),
        STORED: groups[STORED],
        SKIPPED: groups[SKIPPED],
        FAILED: groups[FAILED],
        "ok": groups[STORED],
        "retryable_failures": sum(count for name, count in not_ok.items() if is_retryable(name)),
        "success_rate": round(success_rate(groups[STORED], groups[FAILED]), 6),
        "bytes": tally.stored_bytes,
        "by_status": not_ok,
        "shards": tally.shards,
        "shard_index": shard_index,
        "num_shards": num_shards,
        "mirror": {kind: tally.mirror[kind] for kind in MIRROR_KINDS},
        "run": {
            "fetched": tally.fetched,
            "stored": tally.fetched_ok,
            "bytes": tally.fetched_bytes,
            "elapsed_s": round(elapsed_s, 3),
            "processes": processes,
            "urls_per_s": round(tally.fetched / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            "images_per_s": round(tally.fetched_ok / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            **tally.engine_run,
        },
    }


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")


def on_nodes(run: dict) -> str:
    """`` on 2 Ray nodes (9 shard attempts, 1 retried)`` when a cluster engine ran the shards."""
    if "nodes" not in run:
        return ""
    return (f" on {run['nodes']} {run['engine'].capitalize()} nodes ({run['attempts']} shard attempts, "
            f"{run['retries']} retried)")


def log_summary(report: dict, out: Path) -> None:
    """One screen: totals, this run's speed, the failure classes, and what to do next."""
    run = report["run"]
    lines = [
        f"download finished: {out}",
        f"  lines {report['lines']:,}  stored {report['stored']:,}  skipped by policy {report['skipped']:,}  "
        f"failed {report['failed']:,}  success rate {100 * report['success_rate']:.1f}% (stored / (stored + failed))",
        f"  {report['bytes'] / 1e6:,.1f} MB in {report['shards']} shards; this run: fetched {run['fetched']:,} "
        f"in {run['elapsed_s']:.1f} s with {run['processes']} processes{on_nodes(run)} "
        f"({run['urls_per_s']:.1f} URLs/s, {run['images_per_s']:.1f} images/s)",
    ]
    mirror = report["mirror"]
    if any(mirror.values()):
        lines.append(f"  mirror: recovered {mirror['recovered']:,} (original URL dead), fetched first "
                     f"{mirror['first']:,}, original after a mirror failure {mirror['origin_after_mirror']:,}, "
                     f"both failed {mirror['both_failed']:,}")
    for name, count in sorted(report["by_status"].items(), key=lambda item: -item[1])[:10]:
        kind = "skipped" if group_of(name) == SKIPPED else "retryable" if is_retryable(name) else "permanent"
        lines.append(f"  {name:<16} {count:>10,}  {kind}")
    if report["retryable_failures"]:
        lines.append(f"  rerun the same command to retry the {report['retryable_failures']:,} retryable failures")
    log.info("\n".join(lines))
