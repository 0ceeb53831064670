"""Run a tiny pretraining under a tf.distribute strategy and save every replica's weights.

    python distributed_run.py STRATEGY PARAMS TRAIN VAL OUT WEIGHTS.npz

``mirrored`` splits the CPU into two logical devices first; ``multi_worker`` reads TF_CONFIG.
Executed as a subprocess by test_distributed.py (device setup must precede any other TF work).
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf


def main(strategy: str, params: str, train_dir: str, val_dir: str, out: str, weights: str) -> None:
    if strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mlimages.config import load_params
    from mlimages.tracking.runs import configure_tracking
    from mlimages.train.distribute import read_replica_weights
    from mlimages.train.fit import fit
    from mlimages.train.config import PretrainConfig

    configure_tracking()
    cfg = load_params("pretrain", PretrainConfig, params, {"strategy": strategy})
    result = fit(cfg, train_dir, val_dir, out)
    replicas = read_replica_weights(result.model)
    np.savez(weights, **{f"r{r}_{i}": w for r, values in enumerate(replicas) for i, w in enumerate(values)},
             replicas=len(replicas), step=result.step)


if __name__ == "__main__":
    main(*sys.argv[1:])
