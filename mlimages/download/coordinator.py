"""The run's host budget in a process of its own, so per-host caps and pauses hold across worker processes.

Shards mix hosts, so the worker processes (each fetching whole shards) all talk to the same hosts;
splitting a host's cap between them would starve a busy host in one process while another idles,
and a 503 seen by one process must pause the host for all. So one small coordinator process holds
the `HostBudget` and every worker thread asks it through a `multiprocessing` manager proxy: a
slot costs two local round trips (take, give back), about a tenth of a millisecond each, next to
a network round trip of tens of milliseconds. Each calling thread gets its own connection, served
by its own thread in the coordinator, so a worker waiting for a busy host blocks only itself.

The Ray engine runs the same coordinator on the driver's machine, listening on a TCP port with a
key made for the run (`CoordinatorAddress`): the nodes' shard tasks take their slots from it as
local worker processes do, so the whole cluster shares one budget, and post their progress to its
`Inbox`, which the driver drains.

A worker process that dies holding slots would leak them: the engine calls `forget_owner` with its
process id, which frees them and refuses that process any slot it was still waiting for. The other
way round, the coordinator and the workers must not outlive a parent that was killed (they would
keep writing shards under a rerun): `die_with_parent` asks the kernel to kill them with it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Listener
from multiprocessing.managers import BaseManager, Server

from mlimages.download.hosts import HostBudget

BACKLOG = 1024  # connections the coordinator's socket queues before accepting them


class Inbox:
    """Messages from processes on other machines, taken by the driver in batches."""

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list = []

    def put(self, message) -> None:
        with self._lock:
            self._messages.append(message)

    def drain(self) -> list:
        with self._lock:
            messages, self._messages = self._messages, []
        return messages


_budget: HostBudget | None = None  # the coordinator process's state, made when it starts (`_serve`)
_inbox: Inbox | None = None


def _the_budget() -> HostBudget:
    return _budget


def _the_inbox() -> Inbox:
    return _inbox


class CoordinatorServer(Server):
    """The manager's server, listening with a backlog for a cluster.

    CPython before 3.13 listens with a backlog of 16. The fetch threads of a cluster's tasks connect
    at once when their attempts start, and over TCP a connection beyond the backlog can be
    dropped by the server after the client already counts it open: the client then waits for
    ever for the handshake (seen on the benchmark's two nodes).
    """

    def __init__(self, registry, address, authkey, serializer):
        super().__init__(registry, address, authkey, serializer)
        self.listener.close()
        self.listener = Listener(address=self.address, backlog=BACKLOG)
        self.address = self.listener.address


class CoordinatorManager(BaseManager):
    """Serves the run's `HostBudget` and `Inbox` from the coordinator process; connects to them from any other."""

    _Server = CoordinatorServer  # BaseManager's hook for the server class


CoordinatorManager.register(
    "budget", callable=_the_budget,
    exposed=("acquire", "release", "release_many", "forget_owner", "back_off", "pause_s", "cap"),
)
CoordinatorManager.register("inbox", callable=_the_inbox, exposed=("put", "drain"))


def start_coordinator(start: int, floor: int, ceiling: int, address: tuple[str, int] | None = None,
                      authkey: bytes | None = None) -> tuple[CoordinatorManager, HostBudget]:
    """Start the coordinator process; returns it (call `.shutdown()` at the end) and a proxy of its budget.

    The proxy can be passed to worker processes as an argument: each reconnects on its own. With an
    `address` (host, port; port 0: any free one) and an `authkey`, other machines can connect too.
    """
    manager = CoordinatorManager(address=address, authkey=authkey, ctx=multiprocessing.get_context("spawn"))
    manager.start(_serve, (os.getpid(), start, floor, ceiling))
    return manager, manager.budget()


def _serve(parent_pid: int, start: int, floor: int, ceiling: int) -> None:
    global _budget, _inbox
    die_with_parent(parent_pid)
    _budget, _inbox = HostBudget(start, floor, ceiling), Inbox()


@dataclass(frozen=True)
class CoordinatorAddress:
    """Where a process on another machine reaches the run's coordinator: its TCP address and key."""

    address: tuple[str, int]
    authkey: bytes

    def connect(self) -> CoordinatorManager:
        """The coordinator: `budget()` and `inbox()` give proxies (each calling thread opens its own connection)."""
        manager = CoordinatorManager(address=self.address, authkey=self.authkey)
        manager.connect()
        return manager


PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15


def die_with_parent(parent_pid: int, name: str = "mlimages-coord") -> None:
    """Make this process end when `parent_pid` does, even by SIGKILL; name it `name` in `ps` (Linux).

    Linux's `PR_SET_PDEATHSIG` has the kernel send SIGKILL at the parent's death; where it is
    missing, a thread checks every half second whether the process was orphaned.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:15])
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)
