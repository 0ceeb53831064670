"""Engines run shard tasks; the local one on this machine's cores.

`run_local(tasks, progress)` runs the tasks on `processes` worker processes (default: one per
core), each with its own fetch and decode threads. Each process gets whole shards (every P-th task,
so the processes move through the list side by side) and shares nothing with the others but the
host budget, which lives in the coordinator process (`coordinator`): per-sample resume, atomic
shard commit and status files are the shard task's own, whichever process runs it. The parent
keeps the run's one progress bar (fed by the workers' batches), merges their counts into one
report, and shows their log records through its own handlers.

A cluster engine is the same loop with a different way to start `task.run_tasks` / `download_shard`
(e.g. one remote task per few shards) and the coordinator reachable over the network.

One process (`processes: 1`, or a single task) runs in the calling process, with no coordinator.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import multiprocessing
import os
import queue
import sys
import time
import traceback

from mlimages.download.coordinator import die_with_parent, start_coordinator
from mlimages.download.hosts import HostGate
from mlimages.download.progress import ProgressSender, apply_progress
from mlimages.download.summary import Tally
from mlimages.download.task import Services, ShardTask, StopLine, local_services, run_tasks
from mlimages.errors import InputError

log = logging.getLogger(__name__)
POLL_S = 0.2
BURY_AFTER_S = 2.0


class WorkerDied(Exception):
    """A worker process ended without finishing its shards (killed, out of memory, a crash)."""


def run_local(tasks: list[ShardTask], progress) -> Tally:
    """Run `tasks` on this machine; returns the merged counts.

    Raises:
        InputError: a task found a bad line or a stale shard (no process starts a later shard).
        WorkerDied: a worker process died; what it committed is kept and a rerun resumes the rest.
    """
    if not tasks:
        return Tally()
    config = tasks[0].settings.config
    processes = min(config.process_count, len(tasks))
    limit_malloc_arenas()
    if processes == 1:
        return run_tasks(tasks, local_services(config, progress))
    manager, budget = start_coordinator(
        config.per_host_concurrency, config.per_host_concurrency_min, config.per_host_concurrency_max
    )
    context = multiprocessing.get_context("spawn")
    events, stop = context.Queue(), context.Value("q", sys.maxsize)
    workers = [
        context.Process(target=work_in_process, args=(tasks[i::processes], budget, events, stop, os.getpid()),
                        name=f"download-{i}", daemon=True)
        for i in range(processes)
    ]
    try:
        for worker in workers:
            worker.start()
        return collect(workers, budget, events, progress)
    finally:
        for worker in workers:
            worker.join(timeout=5)
        manager.shutdown()


def collect(workers: list, budget, events, progress) -> Tally:
    """Apply the workers' messages until every one has ended; then raise the first failure, if any."""
    tally, running, exited, failures = Tally(), {worker.pid: worker for worker in workers}, {}, []
    while running:
        bury_dead(running, exited, budget, failures)
        try:
            message = events.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if isinstance(message, logging.LogRecord):
            logging.getLogger(message.name).handle(message)
        elif message[0] == "progress":
            apply_progress(progress, message[1], message[2])
        else:
            kind, pid, payload = message
            running.pop(pid, None)
            if kind == "done":
                tally.merge(payload)
            else:
                failures.append((kind, payload))
    for kind, payload in failures:
        if kind == "input":
            raise InputError(*payload)
    if failures:
        raise WorkerDied("; ".join(str(payload) for _, payload in failures))
    return tally


def bury_dead(running: dict, exited: dict, budget, failures: list) -> None:
    """Workers that ended without a last message: free their host slots (the others finish their shards).

    A worker is buried `BURY_AFTER_S` after it ended: its last message, sent before it exited, may
    still be queued behind the others' progress.
    """
    now = time.monotonic()
    for pid, worker in list(running.items()):
        if worker.exitcode is None:
            continue
        if now - exited.setdefault(pid, now) < BURY_AFTER_S:
            continue
        running.pop(pid)
        freed = budget.forget_owner(pid)
        failures.append(("died", f"worker process {pid} ended with exit code {worker.exitcode} "
                                 f"({freed} host slots freed); rerun the same command to resume its shards"))
        log.error("%s", failures[-1][1])


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas for this process (as `MALLOC_ARENA_MAX=2` would at start-up).

    glibc gives threads that allocate at once arenas of their own, up to 8 per core, and each keeps
    its freed memory: with a hundred fetch threads holding image bodies, about a fifth of peak
    memory was arenas (peak RSS 340 MB, 265 MB with two arenas, at equal speed). A value the user
    set in the environment wins; elsewhere than glibc this does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass


def work_in_process(tasks: list[ShardTask], budget, events, stop, parent_pid: int) -> None:
    """A worker process: run its shard tasks with the shared budget; report progress, logs, the end."""
    die_with_parent(parent_pid, "mlimages-dl")
    limit_malloc_arenas()
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(events)]
    root.setLevel(logging.INFO)
    config = tasks[0].settings.config
    sender = ProgressSender(events)
    gate = HostGate(config.per_host_concurrency, total=config.concurrency, budget=budget, batch_releases=True)
    try:
        tally = run_tasks(tasks, Services(gate, sender, StopLine(stop)))
        gate.close()
        sender.flush()
        events.put(("done", os.getpid(), tally))
    except InputError as error:
        sender.flush()
        events.put(("input", os.getpid(), (error.message, error.where)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the run with it
        sender.flush()
        events.put(("crash", os.getpid(), traceback.format_exc(limit=8)))
