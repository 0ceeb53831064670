"""The dedup stage on a tiny world: groups, exact copies, leaks, backfill, outputs, records honour them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mlimages.dedup.config import DedupConfig
from mlimages.dedup.outputs import load_exclusions, load_leaked_names
from mlimages.dedup.stage import FINETUNE_VAL, ML_IMAGES_VAL, run_dedup
from mlimages.errors import InputError
from mlimages.records.build import build_ml_images
from mlimages.records.config import RecordsConfig
from mlimages.records.index import list_shards
from mlimages.records.reader import iter_records

from tests.factories import params_config, write_params

from .world import write_world

REPO = Path(__file__).resolve().parents[2]
RECORDS = params_config("records", RecordsConfig, shorter_side=16, shard_bytes=1 << 20, min_shards=2, num_workers=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup")
    planted = write_world(root)
    summary = run_dedup(root / "images" / "train", root / "images" / "val", root / "imagenet", root / "dedup",
                        root / "sheet.png", params_config("dedup", DedupConfig, hash_workers=2))
    return root, planted, summary


def key_of(planted: dict, line: int) -> str:
    return planted["samples"][line]["key"]


def test_planted_copies_form_groups_and_distinct_images_do_not(world):
    root, planted, summary = world
    groups = [json.loads(line) for line in (root / "dedup" / "train" / "groups.jsonl").read_text().splitlines()]
    lines = planted["lines"]
    by_keep = {group["keep"]: group for group in groups}
    first = by_keep[key_of(planted, 1)]
    copies = (1, lines["half"], lines["q60"], lines["bright"])
    assert sorted(first["keys"]) == sorted(key_of(planted, n) for n in copies)
    assert not first["exact"]
    exact = by_keep[key_of(planted, 2)]
    assert exact["keys"] == [key_of(planted, 2), key_of(planted, lines["exact"])] and exact["exact"]
    assert len(groups) == 2  # the 12 distinct demo images (and the leak) join no group
    assert (summary["groups"], summary["images_in_groups"], summary["exact_groups"]) == (2, 6, 1)
    assert summary["largest_group"] == 4 and summary["removed_by_merging"] == 4


def test_group_labels_are_the_union_with_the_highest_confidence(world):
    root, planted, _ = world
    group = json.loads((root / "dedup" / "train" / "groups.jsonl").read_text().splitlines()[0])
    members = [s for s in planted["samples"].values() if s["key"] in group["keys"]]
    best = {}
    for sample in members:
        for label, confidence in zip(sample["labels"], sample["confidences"]):
            best[label] = max(best.get(label, 0.0), confidence)
    assert group["labels"] == sorted(best) and group["confidences"] == [best[k] for k in sorted(best)]
    assert len(group["labels"]) > 1


def test_leaks_into_both_evaluation_sets_are_reported(world):
    root, planted, summary = world
    assert load_leaked_names(root / "dedup" / "leaked.tsv", FINETUNE_VAL) == {planted["finetune_id"]}
    assert load_leaked_names(root / "dedup" / "leaked.tsv", ML_IMAGES_VAL) == {planted["val_leak_source"]}
    exclusions = load_exclusions(root / "dedup" / "train")
    assert exclusions.leaked == {key_of(planted, planted["lines"]["leak"]), key_of(planted, 5)}
    assert summary["leaked"][FINETUNE_VAL] == {"eval_images": 2, "eval_images_with_train_copy": 1,
                                               "train_images_leaked": 1}
    assert summary["leaked"][ML_IMAGES_VAL]["train_images_leaked"] == 1
    assert load_exclusions(root / "dedup" / "val") == type(exclusions)()  # evaluation splits stay whole


def test_hashes_are_backfilled_from_the_stored_images(world):
    _, planted, summary = world
    assert summary["hashes_backfilled"] == len(planted["samples"]) + 4 + 2  # train, val, finetune val
    assert summary["train_images"] == len(planted["samples"]) and summary["undecodable"] == 0


def test_contact_sheet_is_a_png_with_a_row_per_group_and_leak(world):
    root, _, _ = world
    with Image.open(root / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width >= 640
        assert sheet.height >= 4 * 96  # 2 groups + 2 leaked pairs


def test_records_leave_out_leaked_images_and_merge_groups_on_request(world, tmp_path):
    root, planted, _ = world
    images, hierarchy, dedup = root / "images" / "train", root / "hierarchy.txt", root / "dedup" / "train"
    report = build_ml_images(images, hierarchy, tmp_path / "clean", RECORDS, dedup=dedup)
    sources = [r.filename for r in iter_records(list_shards(tmp_path / "clean"))]
    leak_source = planted["samples"][planted["lines"]["leak"]]["source"]
    assert leak_source not in sources and planted["samples"][5]["source"] not in sources
    assert len(sources) == len(planted["samples"]) - 2 and report["dedup"]["left_out_leaked"] == 2
    merged = RecordsConfig(**{**RECORDS.__dict__, "merge_duplicates": True})
    report = build_ml_images(images, hierarchy, tmp_path / "merged", merged, dedup=dedup)
    records = {r.filename: r for r in iter_records(list_shards(tmp_path / "merged"))}
    assert len(records) == len(planted["samples"]) - 2 - 4
    assert (report["dedup"]["left_out_duplicates"], report["dedup"]["labels_merged"]) == (4, 2)
    first = records[planted["samples"][1]["source"]]
    assert len(first.labels) > 1 and planted["samples"][planted["lines"]["half"]]["source"] not in records


def test_records_are_identical_when_dedup_excludes_nothing(world, tmp_path):
    root, _, _ = world
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "excluded.tsv").write_text("key\treason\tdetail\n")
    (tmp_path / "empty" / "groups.jsonl").write_text("")
    images, hierarchy = root / "images" / "train", root / "hierarchy.txt"
    build_ml_images(images, hierarchy, tmp_path / "plain", RECORDS)
    build_ml_images(images, hierarchy, tmp_path / "deduped", RECORDS, dedup=tmp_path / "empty")
    plain, deduped = list_shards(tmp_path / "plain"), list_shards(tmp_path / "deduped")
    assert [p.read_bytes() for p in plain] == [p.read_bytes() for p in deduped]


def test_malformed_dedup_files_are_one_line_errors(tmp_path):
    (tmp_path / "excluded.tsv").write_text("key\treason\tdetail\nabc\tleaked\n")
    (tmp_path / "groups.jsonl").write_text("")
    with pytest.raises(InputError, match=r"excluded.tsv:2: expected 3 tab-separated fields"):
        load_exclusions(tmp_path)
    (tmp_path / "excluded.tsv").write_text("key\treason\tdetail\n")
    (tmp_path / "groups.jsonl").write_text('{"keep": "a"}\n')
    with pytest.raises(InputError, match=r"groups.jsonl:1: not a group record"):
        load_exclusions(tmp_path)
    with pytest.raises(InputError, match="has the dedup stage run"):
        load_exclusions(tmp_path / "missing")


def run_script(root: Path, params: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "pipelines" / "dedup.py"), "--train", "images/train", "--val",
               "images/val", "--imagenet", "imagenet", "--out", "out", "--report", "reports/summary.json",
               "--sheet", "reports/sheet.png", "--params", str(params)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_stage_script_writes_summary_and_rejects_unknown_params(world, tmp_path):
    root, _, summary = world
    params = tmp_path / "params.yaml"
    write_params(params)
    done = run_script(root, params)
    assert done.returncode == 0, done.stderr
    written = json.loads((root / "reports" / "summary.json").read_text())
    assert {k: v for k, v in written.items() if k != "seconds"} == {k: v for k, v in summary.items() if k != "seconds"}
    write_params(params, dedup={"threshold": 3})
    done = run_script(root, params)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (f"error: {params}: dedup: unknown key(s) threshold; expected some "
                                                    "of max_distance, hash_workers, sheet_groups, sheet_pairs, "
                                                    "sheet_thumb_px")
    assert "Traceback" not in done.stderr
