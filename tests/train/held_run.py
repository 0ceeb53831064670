"""Run pipelines/pretrain.py with one phase of the chief held at one step, longer than any bound.

    python held_run.py PHASE CALL MARKER PRETRAIN_ARGS...

PHASE ``validation``: at its CALL-th validation (counted from 1) the chief (task 0) touches MARKER
and validates again and again, as a validation set far larger than the tiny one would. PHASE
``save``: at its CALL-th checkpoint save the chief touches MARKER and the save never gets to write,
as on a hung shared disk. The other workers,
and the other steps, run unchanged. Executed as a subprocess by test_multihost.py.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
from pathlib import Path

import tensorflow as tf

import mlimages.train.fit as fit_module

REPO = Path(__file__).resolve().parents[2]


def hold(phase: str, call: int, marker: Path) -> None:
    """Hold the chief's `call`-th validation or checkpoint save (counted from 1)."""
    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] != 0:
        return
    calls = [0]

    def reached() -> bool:
        calls[0] += 1
        if calls[0] == call:
            marker.touch()
        return calls[0] == call

    if phase == "save":
        save = tf.train.CheckpointManager.save

        def held_save(manager, *args, **kwargs):
            if reached():
                threading.Event().wait()
            return save(manager, *args, **kwargs)

        tf.train.CheckpointManager.save = held_save
    else:
        validate = fit_module.validate

        def held_validate(*args):
            if reached():
                while True:  # a validation far longer than the bound
                    validate(*args)
            return validate(*args)

        fit_module.validate = held_validate


if __name__ == "__main__":
    phase, call, marker = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    hold(phase, call, marker)
    sys.argv = [str(REPO / "pipelines" / "pretrain.py"), *sys.argv[4:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
