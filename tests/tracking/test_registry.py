"""Registry: versions, the candidate alias and the champion rule, against a temporary SQLite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.tracking import registry
from mlimages.tracking.champion import record_evaluation
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.version_source import source_from_tags
from mlimages.tracking.versions import read_version_source, resolve_versions

from tests.tracking_fixtures import build_tiny_classifier


PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
REGISTRY = load_params("registry", RegistryConfig, PARAMS)
LINEAGE = ["mlimages.training_data", "git_commit", "mlimages.data_version"]  # a version's tags before evaluation


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    build_tiny_classifier(3, seed=5).save(path)
    return path


def aliases(name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in mlflow.MlflowClient().get_registered_model(name).aliases.items()}


def test_champion_moves_only_when_beaten(tracking_store, keras_file, single_records):
    name = "tiny-champion-imagenet"
    classes = single_records.parent / "classes.tsv"
    v1 = registry.register_keras_model(keras_file, name, config=REGISTRY, classes_file=classes)
    assert aliases(name) == {"candidate": str(v1.version)}
    assert record_evaluation(name, v1.version, {"top1_224": 0.50}, "test protocol", "top1_224")
    v2 = registry.register_keras_model(keras_file, name, config=REGISTRY, classes_file=classes)
    assert aliases(name) == {"candidate": str(v2.version), "champion": str(v1.version)}
    assert not record_evaluation(name, v2.version, {"top1_224": 0.40}, "test protocol", "top1_224")
    assert not record_evaluation(name, v2.version, {"top1_224": 0.50}, "test protocol", "top1_224")  # tie
    assert aliases(name)["champion"] == str(v1.version)
    assert record_evaluation(name, v2.version, {"top1_224": 0.55}, "test protocol", "top1_224")
    assert aliases(name) == {"candidate": str(v2.version), "champion": str(v2.version)}
    # Re-evaluating the champion itself keeps it champion even if its number drops.
    assert record_evaluation(name, v2.version, {"top1_224": 0.45}, "test protocol", "top1_224")
    version = mlflow.MlflowClient().get_model_version(name, v2.version)
    assert version.tags["eval.top1_224"] == "0.45" and version.tags["eval.protocol"] == "test protocol"
    assert "| top1_224 | 0.45 |" in version.description and "Protocol: test protocol" in version.description
    assert version.current_stage in (None, "None")  # stages are never used


def test_missing_champion_metric_is_a_params_error(tracking_store, keras_file):
    version = registry.register_keras_model(keras_file, "tiny-metric-imagenet", config=REGISTRY)
    with pytest.raises(InputError, match="registry"):
        record_evaluation("tiny-metric-imagenet", version.version, {"top1_299": 0.5}, "p", "top1_224")


def test_register_keras_model_names_default_to_indices_and_task_from_name(tracking_store, keras_file):
    version = registry.register_keras_model(keras_file, "tiny-resnet50-ml", config=REGISTRY)
    source = read_version_source(mlflow.MlflowClient(), version)
    assert (source.task, source.checkpoint, source.step) == ("pretrain", "file:tiny.keras", 0)
    assert version.source == f"models:/{source.model_id}" and version.run_id
    assert list(version.tags) == LINEAGE and version.tags["mlimages.training_data"] == "imported"
    assert "multi-label" in version.description and "Not evaluated yet" in version.description
    model = mlflow.pyfunc.load_model(f"models:/tiny-resnet50-ml/{version.version}")
    assert model.unwrap_python_model().config.task == "multi"


def test_names_come_from_params_with_depth():
    config = REGISTRY
    assert config.model_name("pretrain", 101) == "mlimages-resnet101-ml"
    assert config.model_name("finetune", 50) == "mlimages-resnet50-imagenet"
    assert config.champion_metric("pretrain") == "map_all"


def test_resolve_versions_rejects_unknown_uris_and_registers_nothing(tracking_store):
    with pytest.raises(InputError, match="no such"):
        resolve_versions("models:/does-not-exist/1")
    with pytest.raises(InputError, match="expected models:/"):
        resolve_versions("runs:/0123456789abcdef0123456789abcdef")
    with pytest.raises(InputError, match="no such run"):
        registry.register_checkpoints("runs:/0123456789abcdef0123456789abcdef", REGISTRY)


def test_registry_list_prints_versions_side_by_side(tracking_store, keras_file, single_records, capsys):
    from mlimages.cli import main

    name = "mlimages-resnet18-imagenet"
    version = registry.register_keras_model(keras_file, name, config=REGISTRY,
                                            classes_file=single_records.parent / "classes.tsv")
    record_evaluation(name, version.version, {"top1_224": 0.7812, "top5_224": 0.9451, "top1_299": 0.8073},
                               "p", "top1_224")
    assert main(["registry", "list", "--params", str(PARAMS)]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["model", "version", "checkpoint"]
    assert "top1_224" in header and "top5_299" in header and "map_all" in header and header.endswith("aliases")
    row = next(r for r in rows if r.startswith(name))
    assert "78.12" in row and "94.51" in row and "80.73" in row and row.endswith("candidate,champion")
    assert not any(r.startswith("tiny-") for r in rows)  # only names matching the params templates


def test_version_tags_are_the_headline_metrics_first_then_the_lineage(tracking_store, keras_file):
    name, client = "tiny-order-imagenet", mlflow.MlflowClient()
    version = registry.register_keras_model(keras_file, name, config=REGISTRY).version
    metrics = {"top5_299": 0.9, "top1_299": 0.8, "top5_224": 0.85, "top1_224": 0.7, "cf1_all": 0.1,
               "top1_224_clean": 0.7, "top5_224_clean": 0.85, "leaked_left_out": 0}
    record_evaluation(name, version, metrics, "p", "top1_224")
    shown = ["eval.top1_224", "eval.top5_224", "eval.top1_299", "eval.top5_299", "eval.protocol"]
    assert list(client.get_model_version(name, version).tags) == shown + LINEAGE  # nothing left out: no *_clean
    (found,) = client.search_model_versions(f"name = '{name}'")
    assert list(found.tags) == shown + LINEAGE
    # Re-evaluated with images left out: the clean twins join the metrics, still before the lineage.
    record_evaluation(name, version, {**metrics, "top1_224_clean": 0.6, "leaked_left_out": 3}, "q", "top1_224")
    tags = client.get_model_version(name, version).tags
    clean = ["eval.top1_224_clean", "eval.top5_224_clean", "eval.leaked_left_out"]
    assert list(tags) == shown + clean + LINEAGE and tags["eval.leaked_left_out"] == "3"
    assert read_version_source(client, client.get_model_version(name, version)).checkpoint == "file:tiny.keras"


@pytest.mark.slow  # starts `mlflow ui`
def test_rest_api_returns_the_metric_tags_first(tracking_store, served_model):
    """The UI lists a version's tags in the order of the REST response: read them as it does."""
    import json
    import urllib.request

    from mlimages.tracking.ui_browser import mlflow_ui

    with mlflow_ui(tracking_store) as address:
        query = f"name={served_model}&version=1"
        with urllib.request.urlopen(f"{address}/ajax-api/2.0/mlflow/model-versions/get?{query}") as reply:
            tags = [tag["key"] for tag in json.load(reply)["model_version"]["tags"]]
        search = f"filter=name%3D%27{served_model}%27"
        with urllib.request.urlopen(f"{address}/ajax-api/2.0/mlflow/model-versions/search?{search}") as reply:
            listed = [tag["key"] for tag in json.load(reply)["model_versions"][0]["tags"]]
    assert tags == listed == ["eval.top1_224", "eval.protocol"] + LINEAGE


def test_version_source_reads_the_serving_model_then_the_tags_of_older_versions():
    serving = {"mlimages.checkpoint": "m-2", "mlimages.task": "pretrain", "mlimages.step": "280"}
    assert source_from_tags("m-1", serving, {}) == source_from_tags("m-1", {}, serving)  # registered before the move
    source = source_from_tags("m-1", serving, {"mlimages.step": "1"})
    assert (source.model_id, source.checkpoint, source.task, source.step) == ("m-1", "m-2", "pretrain", 280)
    assert source_from_tags(None, {}, {}).step is None and source_from_tags(None, {}, {}).checkpoint == "?"
