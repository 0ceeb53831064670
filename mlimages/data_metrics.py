"""The few data numbers a person reads with `dvc metrics show`, taken from the stages' full reports.

The stage reports (reports/*.json) hold everything: timings, skip reasons, paths, per-status
counts. As DVC metrics they made one table 1,500 characters wide, and their timings changed on
every run, so `dvc metrics diff` showed noise. This module keeps, per split, only what says
whether the data is right, as small flat JSON files (one file is one row of DVC's table, whose
columns are every key of every file, so the keys are few and shared):

    metrics/data/{train,val}.json               lines, images, records, classes
    metrics/data/finetune-{train,val}.json      records, classes
    metrics/download/{train,val}.json           success

`lines`: lines of the prepared list; `images`: images the download stored; `records`: records
written; `classes`: classes with at least one training image (train) or in the label set
(finetune); `success`: stored / (stored + failed). The failure groups follow from these:
failed = images / success - images (to a few lines in millions), skipped by policy =
lines - images - failed; the download report has every status.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlimages.errors import InputError

ML_SPLITS = ("train", "val")
SUCCESS_DIGITS = 6  # 0.999983: no wider than the column's header, and exact enough to count failures


def read_report(path: str | Path) -> dict:
    """A stage's JSON report; a missing or unreadable one is an `InputError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("report not found (run the stage that writes it: dvc repro)", str(path)) from None
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"not a readable JSON report ({error})", str(path)) from None


def field(report: dict, where: str, *keys: str):
    """`report[k1][k2]...`, or an `InputError` naming the file and the missing key."""
    value = report
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"no field {'.'.join(keys[:depth + 1])!r} (a report of another version?)", where)
        value = value[key]
    return value


def data_rows(reports: Path) -> dict[str, dict]:
    """Every metrics row, keyed by its file's path under the metrics folder.

    Args:
        reports: the folder the stages write their reports to (``reports/``).
    """
    lists_path, stats_path = reports / "lists.json", reports / "stats" / "summary.json"
    lists, stats = read_report(lists_path), read_report(stats_path)
    ml_stats = field(stats, str(stats_path), "ml_images")
    rows = {}
    for split in ML_SPLITS:
        download_path = reports / "download" / f"{split}.json"
        records_path = reports / "tfrecords" / f"ml-images-{split}.json"
        download, records = read_report(download_path), read_report(records_path)
        rows[f"data/{split}.json"] = {
            "lines": field(lists, str(lists_path), split, "images_written"),
            "images": field(download, str(download_path), "stored"),
            "records": field(records, str(records_path), "written"),
        }
        rows[f"download/{split}.json"] = download_row(download, str(download_path))
    classes = field(ml_stats, str(stats_path), "classes")
    rows["data/train.json"]["classes"] = classes - field(ml_stats, str(stats_path), "classes_without_train_images")
    rows.update(finetune_rows(reports, stats, str(stats_path)))
    return rows


def download_row(report: dict, where: str) -> dict:
    """Download health of one split: the success rate (with `images` and `lines`, the failure counts)."""
    return {"success": round(field(report, where, "success_rate"), SUCCESS_DIGITS)}


def finetune_rows(reports: Path, stats: dict, stats_where: str) -> dict[str, dict]:
    """Records and classes of the single-label (ImageNet) task, when the stats cover it."""
    if "imagenet" not in stats:
        return {}
    path = reports / "tfrecords" / "imagenet.json"
    report = read_report(path)
    classes = field(stats, stats_where, "imagenet", "classes")
    return {f"data/finetune-{split}.json": {"records": field(report, str(path), split, "written"), "classes": classes}
            for split in ML_SPLITS}


def write_rows(rows: dict[str, dict], out: str | Path) -> list[Path]:
    """Write each row as its own small JSON file under `out`, atomically; returns the paths."""
    written = []
    for name, row in sorted(rows.items()):
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(row, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written
