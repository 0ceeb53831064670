"""Lineage tags on a fresh clone: what `dvc repro` writes does not make the source "dirty"."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from mlimages.tracking.lineage import changed_source_files, lineage_tags
from mlimages.tracking.names import DATA_VERSION_TAG


def git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout


def write_lock(folder: Path, md5: str) -> None:
    stages = {"stats": {"cmd": "python stats.py", "outs": [{"path": "reports/summary.json", "md5": md5},
                                                           {"path": "data/records", "md5": md5 + ".dir"}]}}
    (folder / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}), encoding="utf-8")


def make_clone(tmp_path: Path) -> Path:
    """An origin repository with source, dvc.lock, .gitignore and a git-tracked metrics file; then a clone."""
    origin = tmp_path / "origin"
    (origin / "reports").mkdir(parents=True)
    (origin / "stats.py").write_text("print('stats')\n", encoding="utf-8")
    (origin / "reports" / "summary.json").write_text('{"images": 1}\n', encoding="utf-8")
    (origin / ".gitignore").write_text("/mlflow.db\n", encoding="utf-8")
    (origin / "metrics").mkdir()
    (origin / "metrics" / "model-v1-224.json").write_text('{"top1": 0.5}\n', encoding="utf-8")
    (origin / "dvc.yaml").write_text("stages: {}\nmetrics:\n  - metrics\n", encoding="utf-8")
    write_lock(origin, "a" * 32)
    git(origin, "init", "-q")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "first")
    git(tmp_path, "clone", "-q", str(origin), "clone")
    return tmp_path / "clone"


def test_pipeline_outputs_do_not_make_a_clone_dirty(tmp_path, monkeypatch):
    clone = make_clone(tmp_path)
    monkeypatch.chdir(clone)
    assert lineage_tags()["git_dirty"] == "false"
    # What `dvc repro` does: a new dvc.lock, staged; outputs rewritten (a git-tracked metrics file
    # among them); its outputs listed in .gitignore; files in an output folder.
    write_lock(clone, "b" * 32)
    git(clone, "add", "dvc.lock")
    (clone / "reports" / "summary.json").write_text('{"images": 2}\n', encoding="utf-8")
    (clone / ".gitignore").write_text("/mlflow.db\n/data/records\n", encoding="utf-8")
    (clone / "data" / "records").mkdir(parents=True)
    (clone / "data" / "records" / "part-0.tfrecord").write_bytes(b"x")
    (clone / "metrics" / "model-v1-224.json").write_text('{"top1": 0.6}\n', encoding="utf-8")  # top-level metrics
    tags = lineage_tags()
    assert tags["git_dirty"] == "false" and changed_source_files() == []
    assert tags["git_commit"] == git(clone, "rev-parse", "HEAD").strip()
    assert tags[DATA_VERSION_TAG] == hashlib.sha256((clone / "dvc.lock").read_bytes()).hexdigest()[:12]
    assert tags["data.stats.reports/summary.json"] == "b" * 32

    (clone / "stats.py").write_text("print('changed')\n", encoding="utf-8")  # a source change counts
    assert lineage_tags()["git_dirty"] == "true" and changed_source_files() == ["stats.py"]


def test_outside_a_work_tree_git_values_are_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tags = lineage_tags()
    assert tags["git_commit"] == "unknown" and tags["git_dirty"] == "unknown" and tags[DATA_VERSION_TAG] == "none"
