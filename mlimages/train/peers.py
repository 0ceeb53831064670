"""A watchdog over the other workers, armed for the whole time a multi-worker run waits on them.

Why. Under MultiWorkerMirroredStrategy a worker waits on its peers in many places, not only in the
training step: the first collectives (variables are broadcast from the chief when they are made),
each step's all-reduce, the chief's validation (the other workers wait in the next all-reduce),
checkpoint saving on a slow shared disk, the end of training. TensorFlow's coordination service
aborts the collectives in flight when a peer stops sending heartbeats, but a worker busy with local
work (the chief validating or writing a checkpoint) does not notice until its next collective,
which may be much later. So one watchdog covers every phase: from the moment the strategy is up
until every worker has finished training, a thread probes each peer's TensorFlow server (the probe
MultiWorkerMirroredStrategy itself uses when the coordination service is off). A peer that has not
answered for `timeout_s` is lost: the watchdog aborts the collectives (a main thread waiting in one
stops at once with `WorkerLost`, and the run ends as usual: MLflow run marked failed, checkpoints
kept) and, should the main thread still be busy `2 * timeout_s` after the peer's last answer, prints
the one line itself, runs what was registered with `before_hard_stop` (the chief marks its MLflow run
failed, as the usual way out does) and ends the process with `EXIT_WORKER_LOST`. A checkpoint being
written then is not recorded as the latest, so the last complete one is what the same command resumes from.

A collective timeout (``CommunicationOptions(timeout_seconds=...)``) is not used: it would bound the
length of a validation or a checkpoint save as well, not only a peer's silence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import tensorflow as tf

from mlimages.train.distribute import describe_lost_worker, format_lost_line, is_chief, make_strategy

EXIT_WORKER_LOST = 4  # the same command resumes on every host
PROBES_PER_TIMEOUT = 5  # a probe's own timeout and the pause between rounds are timeout_s / this
HARD_STOP_ACTION_S = 5.0  # the most each `before_hard_stop` action may delay the hard stop (a server may be away)
# what a collective raises when a peer is gone, or when this watchdog or the coordination service aborted it
LOST_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
               tf.errors.CancelledError)

_log = logging.getLogger(__name__)
_said = threading.Lock()  # the line is said once per process, by the main thread or the watchdog


class WorkerLost(RuntimeError):
    """A multi-worker run lost a worker; the checkpoints are kept and the same commands resume."""


def say_once(line: str) -> bool:
    """Print ``error: line`` to stderr unless a line was said already; True when this call said it."""
    if not _said.acquire(blocking=False):
        return False
    print(f"error: {line}", file=sys.stderr, flush=True)
    return True


class PeerWatch:
    """What the run is doing (`phase`, for the line) and, once armed, the watchdog thread.

    Args:
        timeout_s: a peer silent this long is lost (the config's ``worker_timeout_s``).
    """

    def __init__(self, timeout_s: float):
        self.phase = "start-up"
        self.timeout_s = float(timeout_s)
        self.cluster: tf.train.ClusterSpec | None = None  # known once the strategy is up
        self.peers: list[str] = []
        self.checkpoints: Path | None = None
        self.lost_line: str | None = None  # set once the watchdog has declared a peer lost
        self._before_exit: list[Callable[[], object]] = []
        self._up, self._disarmed = threading.Event(), threading.Event()

    def arm(self) -> None:
        threading.Thread(target=self._watch, name="peer-watch", daemon=True).start()

    def attach(self, strategy: tf.distribute.Strategy, checkpoints: Path | None) -> None:
        """The strategy is up: probe its other tasks from now on; `checkpoints` is the chief's folder (else None)."""
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is not None and resolver.task_type:
            self.cluster, self.checkpoints = resolver.cluster_spec(), checkpoints
            me = f"/job:{resolver.task_type}/replica:0/task:{resolver.task_id}"
            self.peers = [f"/job:{job}/replica:0/task:{task}" for job in self.cluster.jobs
                          for task in range(self.cluster.num_tasks(job))]
            self.peers.remove(me)
        self._up.set()

    def disarm(self) -> None:
        """Stop watching (a peer declared lost before still gets its hard stop)."""
        self._disarmed.set()
        self._up.set()  # a thread still waiting for the start-up ends too

    def before_hard_stop(self, action: Callable[[], object]) -> None:
        """Run `action` before the watchdog ends the process (each waited for `HARD_STOP_ACTION_S` at most)."""
        self._before_exit.append(action)

    def latest_checkpoint(self) -> str | None:
        return tf.train.latest_checkpoint(str(self.checkpoints)) if self.checkpoints else None

    def describe(self, error: tf.errors.OpError) -> str:
        """The line for `error` raised in the main thread: the watchdog's finding first, else TF's message."""
        cluster = self.cluster or tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
        return self.lost_line or describe_lost_worker(error, self.phase, cluster, self.latest_checkpoint())

    def _watch(self) -> None:
        self._up.wait()  # the start-up is TensorFlow's to bound (see `make_strategy`): it holds the GIL meanwhile
        probe_s = self.timeout_s / PROBES_PER_TIMEOUT
        last_answer = {peer: time.monotonic() for peer in self.peers}
        while not self._disarmed.wait(probe_s):
            for peer in self.peers:
                if self._answers(peer, probe_s):
                    last_answer[peer] = time.monotonic()
                elif time.monotonic() - last_answer[peer] >= self.timeout_s and not self._disarmed.is_set():
                    return self._stop(peer, last_answer[peer])

    def _answers(self, peer: str, probe_s: float) -> bool:
        from tensorflow.python.eager import context

        try:
            context.context().check_collective_ops_peer_health(peer, timeout_in_ms=max(1, int(probe_s * 1000)))
            return True
        except tf.errors.OpError as error:
            _log.warning("%s did not answer (%s)", peer, type(error).__name__)
            return False

    def _stop(self, peer: str, last_answer: float) -> None:
        """Declare `peer` lost: abort the collectives, and end the process if the run has not ended by then."""
        from tensorflow.python.eager import context

        silent_s = time.monotonic() - last_answer
        self.lost_line = format_lost_line(peer, self.phase, f"no answer for {silent_s:.0f} s",
                                          self.latest_checkpoint())
        _log.error("%s did not answer for %.1f s: aborting the collectives", peer, silent_s)
        context.context().abort_collective_ops(tf.errors.UNAVAILABLE, f"{peer} is lost: {self.lost_line}")
        time.sleep(max(0.0, last_answer + 2 * self.timeout_s - time.monotonic()))
        self._end(self.lost_line)

    def _end(self, line: str) -> None:
        """Say `line` (unless the main thread said its own), run the registered actions and end the process,
        whatever it is doing."""
        say_once(line)
        for action in self._before_exit:
            acting = threading.Thread(target=action, name="before-hard-stop", daemon=True)
            acting.start()
            acting.join(HARD_STOP_ACTION_S)
        logging.shutdown()
        os._exit(EXIT_WORKER_LOST)


@contextlib.contextmanager
def watch_peers(strategy: str, timeout_s: float) -> Iterator[PeerWatch]:
    """A `PeerWatch`, armed for the block under ``multi_worker``; a lost-peer error in it becomes `WorkerLost`.

    Enter it before making the strategy: the strategy's start-up waits for every worker to join.
    """
    watch = PeerWatch(timeout_s)
    if strategy == "multi_worker":
        watch.arm()
    try:
        yield watch
    except LOST_ERRORS as error:
        if strategy != "multi_worker":
            raise
        raise WorkerLost(watch.describe(error)) from None
    finally:
        watch.disarm()


@contextlib.contextmanager
def watched_strategy(config, checkpoints: Path) -> Iterator[tuple[tf.distribute.Strategy, PeerWatch]]:
    """Make the config's strategy under a `PeerWatch` and keep it armed for the block.

    `checkpoints` is the chief's checkpoint folder (named in the line on the chief). Call it before
    any other TF op (see `make_strategy`).
    """
    with watch_peers(config.strategy, config.worker_timeout_s) as watch:
        strategy = make_strategy(config.strategy, config.worker_timeout_s, config.worker_start_timeout_s)
        watch.attach(strategy, checkpoints if is_chief(strategy) else None)
        yield strategy, watch


def finish_together(watch: PeerWatch, strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker has trained its last step, then stop watching.

    After this no worker waits on another (the chief's final save and registration are its own), so a
    worker that finishes and exits first is not taken for a lost one.
    """
    if watch.cluster is not None:
        watch.phase = "the end of training"

        @tf.function
        def all_workers() -> tf.Tensor:
            ones = strategy.run(lambda: tf.constant(1.0))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

        all_workers()
    watch.disarm()
