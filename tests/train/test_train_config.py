"""Params sections, command-line overrides and the entry points' one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.train.config import FinetuneConfig, PretrainConfig, find_size_switch_step, parse_overrides

from tests.pipelines import load_pipeline

from .fakes import write_tiny_params

REPO = Path(__file__).resolve().parents[2]


def test_parse_overrides_accepts_mlflow_style_arguments():
    assert parse_overrides(["--steps", "10", "--area_range=[0.05, 1.0]", "--base-lr", "0.1"]) == {
        "steps": "10", "area_range": "[0.05, 1.0]", "base_lr": "0.1"}
    with pytest.raises(InputError, match="no value"):
        parse_overrides(["--steps"])
    with pytest.raises(InputError, match="expected --KEY VALUE"):
        parse_overrides(["steps=3"])


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
