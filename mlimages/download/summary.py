"""The numbers of a download run: the DVC metrics file and the one-screen summary.

Counts cover every line of the shards this run was responsible for (including lines finished by
earlier runs), so the metrics describe the output folder, not one attempt; the `run` block says
what this particular run did and how fast.
"""

from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mlimages.download.fingerprint import write_atomic
from mlimages.download.outcome import OK, is_retryable

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

    def add_shard(self, statuses: dict[int, dict]) -> None:
        self.shards += 1
        for record in statuses.values():
            self.by_status[record["status"]] += 1
            self.stored_bytes += record.get("bytes", 0)


def build_report(tally: Tally, elapsed_s: float, shard_index: int, num_shards: int) -> dict:
    """The metrics written to reports/download/{split}.json."""
    lines = sum(tally.by_status.values())
    ok = tally.by_status.get(OK, 0)
    failed = {name: count for name, count in sorted(tally.by_status.items()) if name != OK}
    return {
        "lines": lines,
        "ok": ok,
        "failed": lines - ok,
        "retryable_failures": sum(count for name, count in failed.items() if is_retryable(name)),
        "success_rate": round(ok / lines, 6) if lines else 0.0,
        "bytes": tally.stored_bytes,
        "by_status": failed,
        "shards": tally.shards,
        "shard_index": shard_index,
        "num_shards": num_shards,
        "run": {
            "fetched": tally.fetched,
            "ok": tally.fetched_ok,
            "bytes": tally.fetched_bytes,
            "elapsed_s": round(elapsed_s, 3),
            "urls_per_s": round(tally.fetched / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            "images_per_s": round(tally.fetched_ok / elapsed_s, 3) if elapsed_s > 0 else 0.0,
        },
    }


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")


def log_summary(report: dict, out: Path) -> None:
    """One screen: totals, this run's speed, the failure classes, and what to do next."""
    run = report["run"]
    lines = [
        f"download finished: {out}",
        f"  lines {report['lines']:,}  ok {report['ok']:,} ({100 * report['success_rate']:.1f}%)  "
        f"failed {report['failed']:,}  stored {report['bytes'] / 1e6:,.1f} MB in {report['shards']} shards",
        f"  this run: fetched {run['fetched']:,} in {run['elapsed_s']:.1f} s "
        f"({run['urls_per_s']:.1f} URLs/s, {run['images_per_s']:.1f} images/s)",
    ]
    for name, count in sorted(report["by_status"].items(), key=lambda item: -item[1])[:10]:
        kind = "retryable" if is_retryable(name) else "permanent"
        lines.append(f"  {name:<16} {count:>10,}  {kind}")
    if report["retryable_failures"]:
        lines.append(f"  rerun the same command to retry the {report['retryable_failures']:,} retryable failures")
    log.info("\n".join(lines))
