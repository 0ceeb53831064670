"""The small per-split metrics files, and the one-line errors when a report is missing or of another shape.

The rows themselves are checked against reports written by the real stages in
tests/pipelines/test_dvc_repro.py; here the reports are the stages' shapes, cut to the fields read.
"""

from __future__ import annotations

import json

import pytest

from mlimages.data_metrics import data_rows, write_rows
from tests.pipelines import load_pipeline


def write_reports(root, stats_extra=None):
    files = {
        "lists.json": {"train": {"images_written": 30}, "val": {"images_written": 8}},
        "stats/summary.json": {"ml_images": {"classes": 12, "classes_without_train_images": 2}, **(stats_extra or {})},
        "tfrecords/imagenet.json": {"train": {"written": 24}, "val": {"written": 12}},
    }
    for split, stored, failed in (("train", 27, 2), ("val", 8, 0)):
        files[f"download/{split}.json"] = {"stored": stored, "failed": failed,
                                           "success_rate": stored / (stored + failed), "run": {"elapsed_s": 1.5}}
        files[f"tfrecords/ml-images-{split}.json"] = {"written": stored - 1, "seconds": 0.2}
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(body))


def test_rows_keep_counts_and_health_per_split_and_no_timings(tmp_path):
    write_reports(tmp_path, {"imagenet": {"classes": 6}})
    rows = data_rows(tmp_path)
    assert rows == {
        "data/train.json": {"lines": 30, "images": 27, "records": 26, "classes": 10},
        "data/val.json": {"lines": 8, "images": 8, "records": 7},
        "data/finetune-train.json": {"records": 24, "classes": 6},
        "data/finetune-val.json": {"records": 12, "classes": 6},
        "download/train.json": {"success": 0.931034},
        "download/val.json": {"success": 1.0},
    }
    written = write_rows(rows, tmp_path / "metrics")
    assert json.loads((tmp_path / "metrics" / "download" / "train.json").read_text()) == {"success": 0.931034}
    assert len(written) == 6 and not list((tmp_path / "metrics").rglob("*.tmp"))


def test_without_finetune_stats_there_are_no_finetune_rows(tmp_path):
    write_reports(tmp_path)
    assert not [name for name in data_rows(tmp_path) if "finetune" in name]


def test_a_missing_report_or_field_is_one_line_naming_the_file(tmp_path, capsys):
    write_reports(tmp_path)
    (tmp_path / "download" / "val.json").unlink()
    stage = load_pipeline("data_metrics")
    with pytest.raises(SystemExit) as raised:
        stage.main(["--reports", str(tmp_path), "--out", str(tmp_path / "metrics")])
    assert raised.value.code == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'download' / 'val.json'}: report not found "
                                       "(run the stage that writes it: dvc repro)\n")
    write_reports(tmp_path)
    (tmp_path / "download" / "val.json").write_text('{"stored": 8}')
    with pytest.raises(SystemExit):
        stage.main(["--reports", str(tmp_path), "--out", str(tmp_path / "metrics")])
    assert capsys.readouterr().err == (f"error: {tmp_path / 'download' / 'val.json'}: no field 'success_rate' "
                                       "(a report of another version?)\n")
    assert not (tmp_path / "metrics").exists()  # nothing half-written
