"""tf.distribute strategies by name, and who is the chief.

``default`` trains on one device; ``mirrored`` replicates over every local GPU (or the logical
CPU devices when there is no GPU); ``multi_worker`` reads the cluster from the ``TF_CONFIG``
environment variable. Only the chief writes MLflow records and the real checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from mlimages.errors import InputError

_log = logging.getLogger(__name__)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Build the strategy `name` (``default``, ``mirrored``, ``multi_worker``).

    Call it first in a process: MultiWorkerMirroredStrategy must exist before other TF ops run.
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
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InputError(f"unknown strategy {name!r}", "strategy")


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
