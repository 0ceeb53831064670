"""The pretrain and finetune scripts: the arguments they share, the one each adds, exit statuses 3 and 5."""

from __future__ import annotations

import socket

import pytest

from mlimages.train.config import FinetuneConfig, PretrainConfig
from mlimages.train.entry_point import EXIT_DIVERGED, EXIT_TRACKING_LOST, training_parser

from tests.mlflow_state import use_store
from tests.pipelines import load_pipeline
from tests.train.fakes import write_records, write_tiny_params


def test_both_tasks_take_the_same_arguments_and_name_their_section_and_records():
    pretrain, finetune = training_parser("p", PretrainConfig), training_parser("f", FinetuneConfig)
    assert [a.dest for a in pretrain._actions] == [a.dest for a in finetune._actions]
    assert "multi-label record folder" in pretrain.format_help() and "`pretrain` section" in pretrain.format_help()
    assert "single-label record folder" in finetune.format_help() and "`finetune` section" in finetune.format_help()


def test_finetune_reads_init_model_and_its_own_section(tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml", {"steps": 1}, {"steps": 0})
    with pytest.raises(SystemExit) as raised:
        load_pipeline("finetune").main(["--train", "t", "--val", "v", "--out", "o", "--init-model", "scratch",
                                        "--params", str(params)])
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"error: {params}: finetune: the training duration must be >= 1\n"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:invalid value encountered in logaddexp:RuntimeWarning")  # NaN weights, on purpose
def test_diverged_training_exits_3_with_one_error_line(tmp_path, capsys):
    train = write_records(tmp_path / "records" / "train", 16, "multi", seed=1)
    val = write_records(tmp_path / "records" / "val", 8, "multi", num_shards=1, seed=2)
    exploding = {"schedule": "paper", "warmup_steps": 1, "warmup_lr": 0.01, "base_lr": 1e30, "steps": 4,
                 "checkpoint_every_steps": 1, "val_examples": 8}
    params = write_tiny_params(tmp_path / "params.yaml", exploding, {"steps": 1})
    with use_store(tmp_path):
        status = load_pipeline("pretrain").main(["--train", str(train), "--val", str(val),
                                                 "--out", str(tmp_path / "out"), "--params", str(params)])
    assert status == EXIT_DIVERGED == 3
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: training diverged")


def test_a_tracking_server_that_does_not_answer_at_the_start_is_one_line_and_exit_5(tmp_path, capsys, monkeypatch):
    train = write_records(tmp_path / "records" / "train", 8, "multi", seed=1)
    val = write_records(tmp_path / "records" / "val", 8, "multi", num_shards=1, seed=2)
    params = write_tiny_params(tmp_path / "params.yaml", {"steps": 1}, {"steps": 1})
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        refused = f"http://someone:secret@127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", refused)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    status = load_pipeline("pretrain").main(["--train", str(train), "--val", str(val),
                                             "--out", str(tmp_path / "out"), "--params", str(params)])
    err = capsys.readouterr().err
    assert status == EXIT_TRACKING_LOST == 5, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: the tracking server {refused.replace('someone:secret@', '')} does not answer "
                      "(Connection refused): start it, or point MLFLOW_TRACKING_URI at it, and run the same command "
                      "again"]
    assert "Traceback" not in err and "secret" not in err
