"""tf.distribute strategies by name, and who is the chief.

``default`` trains on one device; ``mirrored`` replicates over every local GPU (or the logical
CPU devices when there is no GPU); ``multi_worker`` reads the cluster from the ``TF_CONFIG``
environment variable. Only the chief writes MLflow records and the real checkpoint folder.

A lost worker. Across hosts, a worker may vanish without closing its sockets (power, network,
a hung process), and a collective waiting for it would wait forever. Measured with TF 2.21 on CPU:
a killed worker's peers get UNAVAILABLE at once (its kernel resets the connections), while a
silent one (SIGSTOP, cut link) is noticed only by missed heartbeats: the coordination service's
leader (task 0) aborts the collectives of every task after `heartbeat_timeout`, set here from the
config's `worker_timeout_s`. Phases outside a collective (the chief's validation, a checkpoint
save) are bounded by the watchdog of `mlimages.train.peers`, with the same timeout. The shutdown
barrier gets it too, so a survivor does not wait for a lost peer at exit, and the start waits for
every worker at most `worker_start_timeout_s` (a registration barrier).
"""

from __future__ import annotations

import json
import logging
import os
import re

import numpy as np
import tensorflow as tf

from mlimages.errors import InputError

_log = logging.getLogger(__name__)


def make_strategy(name: str, worker_timeout_s: float = 30, worker_start_timeout_s: float = 600
                  ) -> tf.distribute.Strategy:
    """Build the strategy `name` (``default``, ``mirrored``, ``multi_worker``).

    Call it first in a process: MultiWorkerMirroredStrategy must exist before other TF ops run.
    `worker_timeout_s` bounds how long a multi-worker run waits for a silent worker, and
    `worker_start_timeout_s` how long its start waits for every worker to join (then it raises
    DeadlineExceededError naming the missing tasks).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        _log.info("MirroredStrategy over %s", devices)
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise InputError("strategy multi_worker needs the TF_CONFIG environment variable", "strategy")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise InputError(f"TF_CONFIG is not valid JSON ({error.msg})", "TF_CONFIG") from None
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        configure_heartbeats(resolver.cluster_spec(), worker_timeout_s, worker_start_timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise InputError(f"unknown strategy {name!r}", "strategy")


def configure_heartbeats(cluster_spec: tf.train.ClusterSpec, timeout_s: float, start_timeout_s: float) -> None:
    """Set up the coordination service as MultiWorkerMirroredStrategy would, with our timeouts.

    The strategy configures the service itself only when none is configured yet, with TF's default
    heartbeat timeout; there is no public option for it, hence the eager context here. Without a
    registration barrier, task 0 waits for the others (an hour by default) inside a call that holds
    the GIL, where no Python watchdog can run: the barrier makes that wait raise instead.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job))
            for job in ("chief", "worker") if job in cluster_spec.jobs]
    timeout_ms = int(timeout_s * 1000)
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(cluster_spec),
        coordinated_jobs=jobs, heartbeat_timeout_in_ms=timeout_ms, shutdown_barrier_timeout_in_ms=timeout_ms,
        cluster_register_timeout_in_ms=int(start_timeout_s * 1000))
    context.context().coordination_service.cluster_register_with_barrier = True
    _log.info("a worker silent for %.0f s counts as lost", timeout_s)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that logs and writes the real checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """A name for this process in a cluster (``worker-1``), ``chief`` when it is the chief."""
    if is_chief(strategy):
        return "chief"
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}-{resolver.task_id}"


# "/job:worker/replica:0/task:1" in TF's messages; the first one named after "unhealthy" is the lost task
_TASK = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")


def describe_lost_worker(error: tf.errors.OpError, phase: str, cluster_spec: tf.train.ClusterSpec,
                         checkpoint: str | None) -> str:
    """One line for a collective that failed because a worker is gone: which task, and what is kept.

    TF names the lost task after "unhealthy" when the coordination service saw it go silent, after
    "timed out task names" when it did not join at start, or as the remote target of a call whose
    connection broke. A deadline with no task named is this worker's heartbeat to the service (or
    its registration) timing out: the lost task is the service's leader.
    `phase` is what this worker was doing (``step 12``, ``validation at step 10``).
    """
    message = error.message
    task = None
    for marker in ("unhealthy", "timed out task names", "remote target"):
        if marker in message:
            task = _TASK.search(message, message.index(marker))
            break
    if task is None:
        from tensorflow.python.distribute import multi_worker_util

        task = _TASK.search(multi_worker_util.coordination_leader(cluster_spec))
    aborted = re.search(r"aborted by: ([^\n]*)", message)
    reason = aborted[1] if aborted else type(error).__name__
    if "Wait_for_all_tasks_to_register" in message:
        reason = "did not join in time: worker_start_timeout_s"
    return format_lost_line(task[0], phase, reason, checkpoint)


def format_lost_line(task: str, phase: str, reason: str, checkpoint: str | None) -> str:
    """``lost worker 1 during PHASE (REASON); what is kept; how to resume`` for the task ``/job:worker/.../task:1``."""
    job, index = _TASK.search(task).groups()
    kept = f"last checkpoint {checkpoint}" if checkpoint else "the chief's checkpoints are kept"
    return (f"lost {job} {index} during {phase} ({reason[:160]}); {kept}; "
            "run the same command on every host to resume")


def read_replica_weights(model) -> list[list[np.ndarray]]:
    """Every variable's value on every replica, ``[replica][variable]`` (to check they agree)."""
    per_variable = [getattr(v.value, "values", (v.value,)) for v in model.variables]
    replicas = max(len(values) for values in per_variable)
    return [[np.asarray(values[min(r, len(values) - 1)]) for values in per_variable] for r in range(replicas)]
