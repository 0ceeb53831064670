"""Integration: `dvc repro` on a tiny demo world in a temporary copy of the repository.

Runs every data stage for real (demo world, lists, download over file:// URLs, TFRecords, ImageNet
records, statistics), reads the records back and checks them against the prepared lists, then
checks that a second `dvc repro` does nothing, that a params change reaches only its stage, and
that rerunning the download stage keeps its shards (a persisted output, so `dvc repro` resumes).
The slow tests share one `dvc repro` (about a minute on two cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlimages.annotations import read_annotations
from mlimages.records.index import list_shards, read_index
from mlimages.records.reader import iter_records

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY_DEMO = {
    "seed": 3, "image_size": 32, "train_images": 24, "val_images": 8, "min_objects": 2, "max_objects": 3,
    "ancestor_fraction": 0.3, "duplicate_fraction": 0.2, "finetune_train_per_class": 2,
    "finetune_val_per_class": 1, "jpeg_quality": 90,
}
FINETUNE_CLASSES = 12
STAGES = ["demo_world", "prepare_lists", "download_images", "dedup", "build_tfrecords", "build_imagenet",
          "dataset_stats", "data_metrics"]
METRIC_ROWS = {  # what `dvc metrics show` prints: one file per row, a few shared columns
    "metrics/data/train.json": {"lines", "images", "records", "classes"},
    "metrics/data/val.json": {"lines", "images", "records"},
    "metrics/data/finetune-train.json": {"records", "classes"},
    "metrics/data/finetune-val.json": {"records", "classes"},
    "metrics/download/train.json": {"success"},
    "metrics/download/val.json": {"success"},
}
GIT = ["git", "-c", "user.name=mlimages tests", "-c", "user.email=tests@example.invalid"]


def test_dvc_yaml_stages_list_their_script_and_existing_params():
    """Cheap check of dvc.yaml against the code: own script in deps, params keys that exist."""
    from mlimages.download.config import STORED_BYTES_FIELDS
    from mlimages.records.config import RecordsConfig

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert list(stages) == STAGES
    keys = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        script = next(token for token in stage["cmd"].split() if token.startswith("pipelines/"))
        assert script in stage["deps"], name
        assert (REPO / script).is_file(), script
        for entry in stage.get("params", []):
            section, _, key = entry.partition(".")
            assert section in params and (not key or key in params[section]), (name, entry)
            keys.setdefault(name, set()).add(key)
    assert keys["download_images"] == set(STORED_BYTES_FIELDS) | {"imagenet21k_root", "mirror_metadata_csv",
                                                                  "mirror_url_template", "prefer_mirror"}
    assert keys["build_tfrecords"] <= set(RecordsConfig.__dataclass_fields__) - {"num_workers", "shuffle_seed"}
    assert keys["build_imagenet"] <= set(RecordsConfig.__dataclass_fields__) - {"num_workers", "dense_labels"}


def copy_repository(target: Path) -> None:
    """Copy the files git knows about (tracked, or new and not ignored): no data, caches or venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def write_tiny_params(repo: Path, stats_min_images: int = 5) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["demo"] = TINY_DEMO
    params["stats"] = {**params["stats"], "trainable_min_images": stats_min_images}
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(repo),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def build_tiny_repo(repo: Path) -> Path:
    """A copy of the repository with the tiny demo's params committed in git, then `dvc repro`: the one
    reproduction (a minute on two cores) that this module and the data remote's tests copy."""
    copy_repository(repo)
    write_tiny_params(repo)
    run(repo, "git", "init", "-q")  # DVC wants an SCM (or core.no_scm); a fresh clone has git
    run(repo, *GIT, "add", "-A")
    run(repo, *GIT, "commit", "-qm", "tiny demo")
    run(repo, str(BIN / "dvc"), "repro")
    return repo


def copy_tiny_repo(built: Path, repo: Path) -> Path:
    """A working copy of `built` (git history, DVC cache and outputs) that a module may change freely."""
    shutil.copytree(built, repo, symlinks=True)
    return repo


@pytest.fixture(scope="module")
def repo(tiny_dvc_repo, tmp_path_factory) -> Path:
    return copy_tiny_repo(tiny_dvc_repo, tmp_path_factory.mktemp("pipeline") / "repo")


def read_list(path: Path) -> list[tuple[str, tuple[int, ...], tuple[float, ...]]]:
    return [(a.source, a.classes, a.confidences) for a in read_annotations(path, lambda index: True)]


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "val"])
def test_records_match_prepared_lists(repo, split):
    expected = read_list(repo / "data" / "lists" / f"{split}.tsv")
    assert len(expected) == TINY_DEMO[f"{split}_images"]  # duplicates merged, nothing lost
    folder = repo / "data" / "tfrecords" / "ml-images" / split
    index = read_index(folder)
    assert index["count"] == len(expected) and index["label_kind"] == "multi"
    records = list(iter_records(list_shards(folder)))
    got = [(r.filename, r.labels, r.confidences) for r in records]
    assert [(s, c) for s, c, _ in got] == [(s, c) for s, c, _ in expected]  # same order as the list
    for (_, _, confidences), (_, _, wanted) in zip(got, expected):
        assert confidences == pytest.approx(wanted, abs=1e-6)
    assert all(r.height == r.width == TINY_DEMO["image_size"] for r in records)


@pytest.mark.slow
def test_finetune_records_follow_folder_layout(repo):
    wnids = sorted(p.name for p in (repo / "data" / "demo" / "imagenet" / "train").iterdir())
    assert len(wnids) == FINETUNE_CLASSES
    for split, per_class in (("train", 2), ("val", 1)):
        folder = repo / "data" / "tfrecords" / "imagenet" / split
        assert read_index(folder)["label_kind"] == "single"
        records = list(iter_records(list_shards(folder)))
        assert len(records) == per_class * FINETUNE_CLASSES
        wanted = sorted((i,) for i in range(FINETUNE_CLASSES) for _ in range(per_class))
        assert sorted(r.labels for r in records) == wanted
        if split == "train":
            assert all(wnids[r.labels[0]] in r.filename for r in records)
    classes = (repo / "data" / "tfrecords" / "imagenet" / "classes.tsv").read_text().splitlines()
    assert [row.split("\t")[1] for row in classes] == wnids


@pytest.mark.slow
def test_reports(repo):
    lists = json.loads((repo / "reports" / "lists.json").read_text())
    assert lists["train"]["bad_lines"] == 0 and lists["train"]["images_written"] == 24
    assert lists["train"]["duplicates_merged"] + lists["val"]["duplicates_merged"] > 0
    assert lists["train"]["labels_added_by_closure"] > 0
    summary = json.loads((repo / "reports" / "stats" / "summary.json").read_text())
    assert summary["ml_images"]["train_images"] == 24 and summary["ml_images"]["val_images"] == 8
    assert summary["ml_images"]["classes"] == 39 and summary["ml_images"]["trainable_min_images"] == 5
    assert summary["imagenet"]["classes"] == FINETUNE_CLASSES
    for name in ("images_per_class.csv", "tags_per_image.csv", "images_per_class.png", "tags_per_image.png"):
        assert (repo / "reports" / "stats" / name).stat().st_size > 0
    dedup = json.loads((repo / "reports" / "dedup" / "summary.json").read_text())
    # The downloader stored a hash with every sample: only the ImageNet-layout val folder is decoded.
    assert dedup["train_images"] == 24 and dedup["hashes_backfilled"] == FINETUNE_CLASSES
    assert dedup["leaked"]["finetune_val"]["eval_images"] == FINETUNE_CLASSES
    assert (repo / "reports" / "dedup" / "contact_sheet.png").stat().st_size > 0
    records = json.loads((repo / "reports" / "tfrecords" / "ml-images-train.json").read_text())
    assert records["dedup"]["left_out_leaked"] == dedup["leaked"]["finetune_val"]["train_images_leaked"] == 0


@pytest.mark.slow
def test_second_repro_does_nothing_and_params_reach_only_their_stage(repo):
    lock = (repo / "dvc.lock").read_text()
    done = run(repo, str(BIN / "dvc"), "repro")
    assert "Running stage" not in done.stdout
    assert "Data and pipelines are up to date." in done.stdout
    assert (repo / "dvc.lock").read_text() == lock
    write_tiny_params(repo, stats_min_images=6)
    status = json.loads(run(repo, str(BIN / "dvc"), "status", "--json").stdout)
    assert list(status) == ["dataset_stats"]


@pytest.mark.slow
def test_rerun_of_the_download_stage_keeps_its_shards(repo):
    shard = repo / "data" / "images" / "val" / "00000.tar"
    before = shard.stat()
    run(repo, str(BIN / "dvc"), "repro", "--force", "--single-item", "download_images@val")
    after = shard.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not emptied and refetched
    report = json.loads((repo / "reports" / "download" / "val.json").read_text())
    assert report["run"]["fetched"] == 0 and report["ok"] == TINY_DEMO["val_images"]
    status = json.loads(run(repo, str(BIN / "dvc"), "status", "--json").stdout)
    assert "build_tfrecords@val" not in status  # same shards, so nothing downstream is stale


def write_model_rows(repo: Path, top1_224: float) -> None:
    """What `make demo` writes from the registry, for versions evaluated at the paper's sizes
    (the widest names and keys the table gets)."""
    from mlimages.data_metrics import write_rows
    from mlimages.tracking.model_metrics import version_rows

    tags = {"eval.top1_224": str(top1_224), "eval.top5_224": "0.94512", "eval.top1_299": "0.80731",
            "eval.top5_299": "0.95503", "eval.protocol": "center crop"}
    rows = {**version_rows("mlimages-resnet101-imagenet", "3", tags),
            **version_rows("mlimages-resnet101-ml", "2", {"eval.map_all": "0.31234"})}
    for committed in (repo / "metrics").glob("*.json"):  # the full demo's versions, copied with the repository
        committed.unlink()
    write_rows(rows, repo / "metrics")


@pytest.mark.slow
def test_metrics_show_is_a_few_rows_that_fit_a_terminal(repo):
    write_model_rows(repo, top1_224=0.78812)
    shown = json.loads(run(repo, str(BIN / "dvc"), "metrics", "show", "--json").stdout)
    files = shown[""]["data"]  # "": the workspace
    model_rows = {f"metrics/resnet101-imagenet-v3-{size}.json": {"top1", "top5"} for size in (224, 299)}
    assert {path: set(body["data"]) for path, body in files.items()} == {
        **METRIC_ROWS, **model_rows, "metrics/resnet101-ml-v2.json": {"map"}}
    train = files["metrics/data/train.json"]["data"]
    assert train == {"lines": 24, "images": 24, "records": 24, "classes": 39}
    assert files["metrics/download/val.json"]["data"] == {"success": 1.0}
    assert files["metrics/data/finetune-val.json"]["data"] == {"records": FINETUNE_CLASSES, "classes": FINETUNE_CLASSES}
    table = run(repo, str(BIN / "dvc"), "metrics", "show").stdout.splitlines()
    assert len(table) == 1 + len(files) and table[0].split()[0] == "Path"
    assert max(len(line) for line in table) <= 120, "\n".join(table)


@pytest.mark.slow
def test_metrics_diff_compares_two_commits(repo):
    write_model_rows(repo, top1_224=0.78812)
    run(repo, *GIT, "add", "-A")  # the metrics files are small and kept in git (cache: false)
    run(repo, *GIT, "commit", "-qm", "first evaluation")
    assert json.loads(run(repo, str(BIN / "dvc"), "metrics", "diff", "--json").stdout) == {}  # HEAD = workspace
    write_model_rows(repo, top1_224=0.79)
    run(repo, *GIT, "commit", "-qam", "evaluated again")
    diff = json.loads(run(repo, str(BIN / "dvc"), "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert diff == {"metrics/resnet101-imagenet-v3-224.json": {
        "top1": {"old": 0.7881, "new": 0.79, "diff": pytest.approx(0.0019)}}}
    every = json.loads(run(repo, str(BIN / "dvc"), "metrics", "diff", "--all", "HEAD~1", "HEAD", "--json").stdout)
    assert every["metrics/data/train.json"]["records"] == {"old": 24, "new": 24, "diff": 0}  # read from both commits
    table = run(repo, str(BIN / "dvc"), "metrics", "diff", "HEAD~1").stdout
    assert "resnet101-imagenet-v3-224.json" in table and "0.7881" in table and "0.79" in table
