"""The two training tasks, named once.

A task is what a model is trained for: ``pretrain`` (multi-label tags over the ML-Images
hierarchy, sigmoid per class) or ``finetune`` (one label of the finetune task, softmax). Training,
the registry, evaluation and the model card speak of tasks. Record folders and the served model
describe their labels instead (``label_kind``: ``multi`` or ``single``, stored in index.json and
in the serving config); `LABEL_KIND` is the one mapping between the two words.
"""

from __future__ import annotations

from typing import Literal

PRETRAIN = "pretrain"
FINETUNE = "finetune"
Task = Literal["pretrain", "finetune"]
LABEL_KIND = {PRETRAIN: "multi", FINETUNE: "single"}


def is_multi_label(task: str) -> bool:
    """True for the task whose model answers with independent per-class probabilities."""
    return LABEL_KIND[task] == "multi"
