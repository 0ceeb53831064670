"""Every stage script takes --params, and an error in that file is named with its path, not params.yaml."""

from __future__ import annotations

import pytest

from tests.factories import write_params
from tests.pipelines import REPO, load_pipeline


@pytest.mark.parametrize("stage, arguments", [
    ("build_tfrecords", ["--images", "nowhere", "--hierarchy", "h.txt", "--out", "out", "--report", "r.json"]),
    ("build_imagenet", ["--root", "nowhere", "--dictionary", "d.txt", "--out", "out", "--report", "r.json"]),
])
def test_records_stages_read_the_given_params_file(stage, arguments, tmp_path, capsys):
    params = tmp_path / "other-params.yaml"
    write_params(params, records={"shorter_side": 0})
    with pytest.raises(SystemExit) as raised:
        load_pipeline(stage).main([*arguments, "--params", str(params)])
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"error: {params}: records.shorter_side: must be at least 1, got 0\n"


def test_training_duration_error_names_the_params_file(tmp_path, capsys):
    params = tmp_path / "paper-copy.yaml"
    text = (REPO / "params-paper.yaml").read_text(encoding="utf-8").replace("  steps: 550000\n", "  steps: 0\n")
    params.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as raised:
        load_pipeline("pretrain").main(["--train", "t", "--val", "v", "--out", "o", "--params", str(params)])
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"error: {params}: pretrain: the training duration must be >= 1\n"
