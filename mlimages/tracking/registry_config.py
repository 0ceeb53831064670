"""The `registry:` section of params.yaml, apart from the registry code.

It is plain data with no MLflow in it, so `mlimages registry list` reads the registered names
without importing MLflow (`mlimages.tracking.rest_registry`); `mlimages.tracking.registry`
re-exports it for its older importers.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mlimages.tasks import LABEL_KIND, PRETRAIN

if TYPE_CHECKING:
    from mlimages.tracking.serving import ServingConfig


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """The `registry:` section of params.yaml.

    Attributes:
        pretrained_name / finetuned_name: registered model names; ``{depth}`` is the ResNet depth.
        pretrained_metric / finetuned_metric: evaluation metric (higher is better) that decides
            whether a newly evaluated version becomes `champion`.
        serving_size: crop side of the served model.
        stored_shorter_side: served photos are first shrunk to this shorter side, like records.
        top_k: classes returned by default.
        tag_threshold: probability from which the multi-label model returns a tag.
        max_image_pixels: larger uploads are refused with HTTP 400 before decoding.
    """

    pretrained_name: str
    finetuned_name: str
    pretrained_metric: str
    finetuned_metric: str
    serving_size: int
    stored_shorter_side: int
    top_k: int
    tag_threshold: float
    max_image_pixels: int

    def model_name(self, task: str, depth: int) -> str:
        """The registered model for a ``"pretrain"`` or ``"finetune"`` checkpoint of `depth`."""
        return (self.pretrained_name if task == PRETRAIN else self.finetuned_name).format(depth=depth)

    def champion_metric(self, task: str) -> str:
        return self.pretrained_metric if task == PRETRAIN else self.finetuned_metric

    def serving(self, task: str, crop_fraction: float) -> ServingConfig:
        from mlimages.tracking.serving import ServingConfig  # imports MLflow: only where a model is built

        return ServingConfig(
            task=LABEL_KIND[task], image_size=self.serving_size,
            crop_fraction=crop_fraction, stored_shorter_side=self.stored_shorter_side, top_k=self.top_k,
            threshold=self.tag_threshold, max_image_pixels=self.max_image_pixels,
        )
