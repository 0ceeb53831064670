"""The run's coordinator over TCP, as the Ray engine's nodes reach it: a burst of connections, the key, the inbox."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from mlimages.download.coordinator import CoordinatorAddress, start_coordinator

THREADS = 400  # a cluster's fetch threads connecting at once when their attempts start


@pytest.fixture()
def coordinator():
    key = os.urandom(32)
    manager, _ = start_coordinator(2, 1, 4, ("127.0.0.1", 0), key)
    yield CoordinatorAddress(manager.address, key)
    manager.shutdown()


@pytest.mark.parametrize("burst", range(3))
def test_a_burst_of_connections_is_answered(coordinator, burst):
    """Each calling thread opens its own connection: with CPython's backlog of 16, under load, some of them
    were dropped after the client counted them open, and those clients waited for ever."""
    budget, answers = coordinator.connect().budget(), []
    threads = [threading.Thread(target=lambda: answers.append(budget.cap("h")), daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert answers == [2] * THREADS


def test_a_peer_without_the_runs_key_is_refused(coordinator):
    stranger = CoordinatorAddress(coordinator.address, os.urandom(32))
    with pytest.raises(multiprocessing.AuthenticationError):
        stranger.connect()


def test_the_inbox_hands_every_message_to_the_driver_once(coordinator):
    inbox, drained = coordinator.connect().inbox(), []
    senders = [threading.Thread(target=lambda n=n: [inbox.put((n, i)) for i in range(50)]) for n in range(8)]
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders):
        drained += inbox.drain()
    drained += inbox.drain()
    assert sorted(drained) == [(n, i) for n in range(8) for i in range(50)]
