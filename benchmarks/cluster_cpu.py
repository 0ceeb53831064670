"""CPU seconds a contender spends in one phase: its own process and every process below it.

Below the contender's process are, on the local engine, its worker processes and the coordinator;
on the Ray engine, the test cluster's daemons (GCS, raylets, agents), its workers and the run's
coordinator. A process that ended in the phase is counted through its parent's reaped-children times
(`cutime`, `cstime` of /proc/PID/stat), so a coordinator shut down and workers joined are not lost. On this
shared 2-core machine the engines' times follow their CPU, so the phase's CPU says where a
difference in time comes from.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.cluster_nodes import descendants

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int | None = None) -> float:
    """User + system seconds of `root` (this process) and its descendants, with their reaped children."""
    total = 0
    for pid in descendants({root or os.getpid()}):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # ended since it was listed: its parent's reaped-children times hold it
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS
