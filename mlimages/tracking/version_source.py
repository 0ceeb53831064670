"""What a registered version was built from, read from its serving LoggedModel's tags.

A version carries no link tags: its source is its serving LoggedModel (``models:/m-ID``), whose
tags name the checkpoint, step and task. Kept apart from `versions` because it needs no MLflow
import: `mlimages registry list` reads the same tags over REST (`rest_registry`).
"""

from __future__ import annotations

import dataclasses

from mlimages.tasks import FINETUNE
from mlimages.tracking.names import CHECKPOINT_TAG, STEP_TAG, TASK_TAG


@dataclasses.dataclass(frozen=True)
class VersionSource:
    """What a registered version was built from.

    Attributes:
        model_id: the serving LoggedModel (the version's source), or "?" when the source is another URI.
        checkpoint: the checkpoint LoggedModel it was built from, ``file:NAME`` for a registered file, or "?".
        task: ``"pretrain"`` or ``"finetune"``.
        step: the checkpoint's global step, or None when unknown.
    """

    model_id: str
    checkpoint: str
    task: str
    step: int | None


def serving_model_id(version) -> str | None:
    """The serving LoggedModel a version was created from (the SQL registry keeps it only as the source)."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def source_from_tags(model_id: str | None, model_tags: dict[str, str], version_tags: dict[str, str]) -> VersionSource:
    """A `VersionSource` from the serving model's tags; versions registered before the links moved
    there carried the same keys themselves, so those are read as a fallback."""

    def pick(key: str) -> str | None:
        return model_tags.get(key) or version_tags.get(key)

    step = pick(STEP_TAG)
    return VersionSource(model_id or "?", pick(CHECKPOINT_TAG) or "?", pick(TASK_TAG) or FINETUNE,
                         int(step) if step else None)
