"""A node's memory counted once: the sum of Pss over its processes, sampled while a run goes on.

Resident memory (RSS, VmHWM) counts a shared library page in every process that maps it, so
adding up the RSS of a node's processes counts Python, numpy or Ray's core library once per
process. Pss (proportional set size, /proc/PID/smaps_rollup) splits each shared page between the
processes that map it: the Pss of all processes of a machine adds up to what they hold together.
`NodeSampler` adds up the Pss of a node's processes every `every_s`, by role (driver, worker,
raylet, agents), and keeps the peak of the sum, the peak of each role's sum, and the largest
VmHWM of a worker process (its own peak, read while it still runs) and when in the run it was
last raised. The anonymous memory (RssAnon)
and the threads of the driver and the workers at the last sample show what stays behind after the
run: what grew with the number of lines or shards would be there.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path

from benchmarks.cluster_memory import children_of, status_mb

ROLES = (  # what a process's command line says it is, first match wins
    ("raylet", "raylet"), ("ray::DashboardAgent", "dashboard agent"), ("ray::RuntimeEnvAgent", "runtime-env agent"),
    ("log_monitor", "log monitor"), ("gcs_server", "head daemons"), ("dashboard.py", "head daemons"),
    ("monitor.py", "head daemons"), ("ray::", "worker"),
    ("default_worker.py", "worker"), ("resource_tracker", "other"),
)


def pss_mb(pid: int) -> float:
    """The Pss of a process in MB (0 when it is gone)."""
    try:
        for text in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if text.startswith("Pss:"):
                return int(text.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def descendants(roots: set[int]) -> set[int]:
    """`roots` and every process below them."""
    found, level = set(roots), set(roots)
    while level:
        level = children_of(level) - found
        found |= level
    return found


def role_of(pid: int, driver: int | None) -> str:
    if pid == driver:
        return "driver"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    return next((name for pattern, name in ROLES if pattern in command), "worker" if driver else "other")


def local_node_pids() -> set[int]:
    """This machine's part of a local run: this (driver) process and everything it started."""
    return descendants({os.getpid()})


def ray_node_pids(node) -> set[int]:
    """One Ray node of a `ray.cluster_utils.Cluster`: the processes it started and the raylet's descendants."""
    pids = {info.process.pid for infos in node.all_processes.values() for info in infos}
    return descendants(pids)


class NodeSampler:
    """Samples the summed Pss of `pids()` in a thread until `stop()`; `driver` is named apart (local runs)."""

    def __init__(self, pids, driver: int | None = None, every_s: float = 0.25):
        self.pids, self.driver, self.every_s = pids, driver, every_s
        self.peak_total, self.peak_by_role = 0.0, collections.Counter()
        self.worker_hwm, self.samples, self.last_anon, self.last_threads = 0.0, 0, {}, {}
        self.started, self.hwm_at_s = time.monotonic(), 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.done.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        by_role, anon, threads = collections.Counter(), collections.Counter(), collections.Counter()
        for pid in self.pids():
            role = role_of(pid, self.driver)
            by_role[role] += pss_mb(pid)
            if role in ("worker", "driver"):
                status = status_mb(pid)
                anon[role] += status.get("RssAnon", 0.0)
                threads[role] += status.get("Threads", 0)
                if role == "worker" and status.get("VmHWM", 0.0) > self.worker_hwm:
                    self.worker_hwm, self.hwm_at_s = status["VmHWM"], time.monotonic() - self.started
        self.last_anon, self.last_threads = dict(anon), dict(threads)
        by_role.pop("gone", None)
        self.samples += 1
        self.peak_total = max(self.peak_total, sum(by_role.values()))
        for role, value in by_role.items():
            self.peak_by_role[role] = max(self.peak_by_role[role], value)

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        self.sample()
        return {"node_pss_mb": self.peak_total, "roles_pss_mb": dict(self.peak_by_role),
                "worker_hwm_mb": self.worker_hwm, "samples": self.samples, "end_anon_mb": self.last_anon,
                "end_threads": self.last_threads,
                "hwm_at_s": self.hwm_at_s, "run_s": time.monotonic() - self.started}
