"""Run pipelines/pretrain.py and SIGKILL it right before or right after one checkpoint save.

    python killed_run.py WHEN STEP PRETRAIN_ARGS...

WHEN ``before`` or ``after`` the `tf.train.CheckpointManager.save` of checkpoint STEP: the two moments
a kill may meet the tracking of that checkpoint half done. Executed as a subprocess by test_resume.py.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path

import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]


def kill_at(when: str, step: int) -> None:
    save = tf.train.CheckpointManager.save

    def killed_save(manager, *args, checkpoint_number=None, **kwargs):
        if checkpoint_number == step and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        path = save(manager, *args, checkpoint_number=checkpoint_number, **kwargs)
        if checkpoint_number == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    tf.train.CheckpointManager.save = killed_save


if __name__ == "__main__":
    kill_at(sys.argv[1], int(sys.argv[2]))
    sys.argv = [str(REPO / "pipelines" / "pretrain.py"), *sys.argv[3:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
