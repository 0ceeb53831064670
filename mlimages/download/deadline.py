"""A total deadline for one fetch attempt: DNS, connect, TLS, headers, every redirect hop, body.

Socket timeouts bound each single `recv`, not their sum: a server that sends one header byte a
second, or a chain of redirects that each answer just inside the read timeout, never trips them.
So every attempt gets an `AttemptClock`, and one reaper thread per process shuts down every socket
the attempt uses once its deadline passes. Why this holds whatever the server does:

- `shutdown(2)` acts on the socket, not on a descriptor: the clock keeps a duplicate descriptor
  of each socket it watches, and shutting that down wakes every call blocked on the original at
  once (a `recv` returns end-of-stream), whether the original is still the plain socket, the TLS
  socket that took over its descriptor mid-handshake, or a connection reused from the pool;
- connecting is bounded by the connect timeout cut to the time left (a socket that is not yet
  connected cannot be shut down), and name resolution runs on a small resolver pool whose answer
  is awaited only for the time left: `getaddrinfo` itself cannot be interrupted;
- the caller checks `expired` when a call fails, so a shut-down socket is reported as a timeout.

The reaper sleeps until the earliest deadline, so the cost is one heap push per attempt.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time

RESOLVER_THREADS = 8


class AttemptClock:
    """The deadline of one attempt and the sockets it has used so far.

    Args:
        seconds: the time the whole attempt may take.
    """

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.expired = False
        self._watched: list[socket.socket] = []
        self._closed = False
        self._lock = threading.Lock()
        REAPER.schedule(self)

    def left_s(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline (immediately if it has already passed)."""
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            if not self._closed and not self.expired:
                self._watched.append(duplicate)
                return
            if self.expired:
                _shut(duplicate)
        duplicate.close()

    def expire(self) -> None:
        """Called by the reaper at the deadline: end every blocked call of the attempt."""
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for duplicate in self._watched:
                _shut(duplicate)

    def close(self) -> None:
        """The attempt is over: drop the duplicates (the sockets themselves stay usable)."""
        with self._lock:
            self._closed = True
            watched, self._watched = self._watched, []
        for duplicate in watched:
            duplicate.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected yet, or already closed by the peer: nothing is blocked on it
        pass


class Reaper:
    """One daemon thread per process that expires clocks at their deadlines, earliest first."""

    def __init__(self):
        self._heap: list[tuple[float, int, AttemptClock]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, clock: AttemptClock) -> None:
        with self._condition:
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="download-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (clock.deadline, next(self._order), clock))
            if self._heap[0][2] is clock:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._condition.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, clock = heapq.heappop(self._heap)
            clock.expire()


REAPER = Reaper()
_LOCAL = threading.local()
_RESOLVER: list[concurrent.futures.ThreadPoolExecutor] = []
_RESOLVER_LOCK = threading.Lock()


def set_current(clock: AttemptClock | None) -> None:
    """Make `clock` the deadline of whatever this thread's connections do next."""
    _LOCAL.clock = clock


def current() -> AttemptClock | None:
    return getattr(_LOCAL, "clock", None)


def resolve(host: str, port: int, timeout_s: float) -> list[tuple]:
    """`getaddrinfo` awaited at most `timeout_s` (it cannot be interrupted, so it runs on the resolver pool).

    Raises:
        TimeoutError: no answer in time (the lookup finishes in the background).
        socket.gaierror: the name does not resolve.
    """
    if is_address(host):  # nothing to look up: no thread hand-off
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    with _RESOLVER_LOCK:
        if not _RESOLVER:
            _RESOLVER.append(concurrent.futures.ThreadPoolExecutor(RESOLVER_THREADS, "download-dns"))
        pool = _RESOLVER[0]
    future = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"name resolution of {host} took over {timeout_s:.1f} s") from None


def is_address(host: str) -> bool:
    """True for an IP literal (no name to resolve)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
