"""`mlimages registry list` on a sqlite or file store (MLflow's client) reads every page of the registry."""

from __future__ import annotations

import mlflow

from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.results_table import matching_names

from tests.mlflow_state import use_store


def test_more_registered_models_than_one_page_are_all_listed(tmp_path):
    config = RegistryConfig(pretrained_name="net{depth}-ml", finetuned_name="net{depth}-imagenet",
                            pretrained_metric="map_all", finetuned_metric="top1_224", serving_size=224,
                            stored_shorter_side=256, top_k=5, tag_threshold=0.5, max_image_pixels=1000000)
    with use_store(tmp_path):
        client = mlflow.MlflowClient()
        wanted = [f"net{depth}-{kind}" for depth in range(60) for kind in ("ml", "imagenet")]  # 120 > 100 a page
        for name in [*wanted, "someone-elses-model"]:
            client.create_registered_model(name)
        assert len(client.search_registered_models()) == 100  # one page of MLflow's client
        assert matching_names(client, config) == sorted(wanted)
