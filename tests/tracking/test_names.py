"""Runs and models are named by what they are (the names a person filters and reads in the UI)."""

from __future__ import annotations

from mlimages.tracking.names import (
    checkpoint_name, describe_source, evaluate_run_name, finetune_run_name, pretrain_run_name,
)


def test_run_names_say_what_the_run_trains_or_evaluates():
    assert pretrain_run_name(101, 1.0) == "pretrain-resnet101-w1.0"
    assert pretrain_run_name(50, 0.25) == "pretrain-resnet50-w0.25"
    assert finetune_run_name("models:/mlimages-resnet50-ml/2") == "finetune-from-ml-v2"
    assert finetune_run_name(None) == "finetune-scratch"
    assert finetune_run_name("models/pretrain/model.keras") == "finetune-from-model.keras"
    assert evaluate_run_name("mlimages-resnet50-imagenet", ["3"]) == "evaluate-mlimages-resnet50-imagenet-v3"
    assert evaluate_run_name("mlimages-resnet50-ml", ["1", "2"]) == "evaluate-mlimages-resnet50-ml-v1-v2"
    assert checkpoint_name(280) == "checkpoint-step-280"


def test_training_data_lineage_is_short():
    assert describe_source("models:/mlimages-resnet50-ml/2") == "from mlimages-resnet50-ml v2"
    assert describe_source(None) == "from scratch"
