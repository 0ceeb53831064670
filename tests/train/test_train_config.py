"""Params sections, command-line overrides and the entry points' one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.evaluate import EvaluateConfig
from mlimages.tracking.registry import RegistryConfig
from mlimages.train.config import FinetuneConfig, PretrainConfig, find_size_switch_step, parse_overrides
from mlimages.train.state import build_schedule

from tests.pipelines import load_pipeline

from .fakes import write_tiny_params

REPO = Path(__file__).resolve().parents[2]


def test_parse_overrides_accepts_mlflow_style_arguments():
    assert parse_overrides(["--steps", "10", "--area_range=[0.05, 1.0]", "--base-lr", "0.1"]) == {
        "steps": "10", "epochs": "null", "area_range": "[0.05, 1.0]", "base_lr": "0.1"}
    with pytest.raises(InputError, match="no value"):
        parse_overrides(["--steps"])
    with pytest.raises(InputError, match="expected --KEY VALUE"):
        parse_overrides(["steps=3"])


@pytest.mark.parametrize("params_file", ["params.yaml", "params-paper.yaml"])
def test_steps_or_epochs_alone_replaces_the_other_in_either_params_file(params_file):
    steps = load_params("pretrain", PretrainConfig, REPO / params_file, parse_overrides(["--steps", "7"]))
    epochs = load_params("finetune", FinetuneConfig, REPO / params_file, parse_overrides(["--epochs", "2"]))
    assert (steps.steps, steps.epochs) == (7, None) and (epochs.steps, epochs.epochs) == (None, 2)
    with pytest.raises(InputError, match="exactly one of 'steps' and 'epochs'"):
        load_params("pretrain", PretrainConfig, REPO / params_file, parse_overrides(["--steps", "7", "--epochs", "2"]))


def test_overrides_are_typed_and_unknown_keys_rejected(tmp_path):
    params = write_tiny_params(tmp_path / "params.yaml", {"steps": 3}, {"epochs": 4, "final_size_epochs": 1})
    cfg = load_params("pretrain", PretrainConfig, params, {"area_range": "[0.8, 1.0]", "precision": "mixed_bfloat16"})
    assert cfg.area_range == (0.8, 1.0) and cfg.precision == "mixed_bfloat16"
    with pytest.raises(InputError, match="unknown key"):
        load_params("pretrain", PretrainConfig, params, {"learning_rate": "0.1"})
    with pytest.raises(InputError, match="precision"):
        load_params("pretrain", PretrainConfig, params, {"precision": "float8"})
    finetune = load_params("finetune", FinetuneConfig, params)
    assert find_size_switch_step(finetune, steps_per_epoch=10, total_steps=40) == 30


def test_entry_point_reports_bad_input_in_one_line(tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml", {"steps": 3}, {"steps": 3})
    pretrain = load_pipeline("pretrain")
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--train", str(tmp_path / "missing"), "--val", str(tmp_path), "--out", str(tmp_path / "o"),
                       "--params", str(params)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "record folder not found" in err and "\n" not in err
    with pytest.raises(SystemExit):
        pretrain.main(["--train", "x", "--val", "x", "--out", "o", "--params", str(params), "--stepz", "3"])
    assert "unknown key(s) stepz" in capsys.readouterr().err


def test_repository_params_sections_load():
    params = REPO / "params.yaml"
    pretrain = load_params("pretrain", PretrainConfig, params)
    finetune = load_params("finetune", FinetuneConfig, params)
    assert pretrain.depth in (50, 101, 152) and finetune.depth == pretrain.depth
    assert pretrain.area_range[0] >= 0.7 and finetune.area_range[0] < pretrain.area_range[0]
    assert finetune.final_size > finetune.image_size


def test_paper_params_are_the_papers_recipe():
    params = REPO / "params-paper.yaml"
    pretrain = load_params("pretrain", PretrainConfig, params)
    assert (pretrain.depth, pretrain.width_multiplier, pretrain.image_size) == (101, 1.0, 224)
    assert pretrain.batch_size == 256 and pretrain.loss == "adaptive"
    assert (pretrain.pos_weight, pretrain.mask_thres, pretrain.neg_select) == (12.0, 0.7, 0.1)
    assert pretrain.steps == 550_000 and pretrain.epochs is None and pretrain.bn_momentum == 0.997
    schedule = build_schedule(pretrain, pretrain.steps)  # the released script's rates
    rates = [float(schedule(step)) for step in (0, 4400, 35_199, 35_200, 110_001, 220_001)]
    assert rates == pytest.approx([0.01, 0.01297, 0.01 * 1.297 ** 7, 0.08, 0.008, 0.0008], rel=1e-4)
    finetune = load_params("finetune", FinetuneConfig, params)
    assert (finetune.depth, finetune.image_size, finetune.final_size) == (101, 224, 299)
    assert finetune.area_range == (0.05, 1.0)
    assert float(build_schedule(finetune, finetune.steps)(150_001)) == pytest.approx(0.01)
    assert load_params("evaluate", EvaluateConfig, params).sizes == (224, 299)
    assert load_params("registry", RegistryConfig, params).finetuned_metric == "top1_224"


def test_a_section_missing_a_key_is_an_error_naming_it(tmp_path):
    text = (REPO / "params-paper.yaml").read_text(encoding="utf-8").replace("  momentum: 0.9\n", "", 1)
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="pretrain.momentum: missing required key"):
        load_params("pretrain", PretrainConfig, tmp_path / "params.yaml")
