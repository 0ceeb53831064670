"""The data remote: push from one clone, pull into a fresh clone at another path, nothing to rebuild.

A local-directory remote stands in for S3, GCS or SSH (DVC moves files through the same code).
The clone that pulls sits at a different depth and path, so the demo lists' URLs must not name the
checkout: a third clone rebuilds the first stages itself and must get the very same hashes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipelines.test_dvc_repro import REPO, copy_tiny_repo, run

BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=mlimages tests", "-c", "user.email=tests@example.invalid"]
REBUILT = ["demo_world", "prepare_lists", "download_images@val", "build_tfrecords@val"]  # what the last one needs


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(repo, str(BIN / "dvc"), *args)


def use_remote(repo: Path, remote: Path) -> None:
    """What a team member does once per clone: point the project's remote at their copy of it."""
    dvc(repo, "remote", "modify", "--local", "team", "url", str(remote))


def out_hashes(lock_text: str) -> dict[str, str]:
    """`stage:path -> md5` of every output in a dvc.lock."""
    stages = yaml.safe_load(lock_text)["stages"]
    return {f"{name}:{out['path']}": out["md5"] for name, body in stages.items() for out in body.get("outs", [])}


@pytest.fixture(scope="module")
def pushed(tiny_dvc_repo, tmp_path_factory) -> dict[str, Path]:
    """Clone A: tiny params committed, `dvc repro` (the session's, copied), dvc.lock committed, `dvc push`
    to a directory."""
    root = tmp_path_factory.mktemp("remote")
    first = copy_tiny_repo(tiny_dvc_repo, root / "a")
    run(first, *GIT, "add", "-A")  # dvc.lock, and the small metrics files DVC leaves to git (cache: false)
    run(first, *GIT, "commit", "-qm", "data")
    use_remote(first, root / "store")
    dvc(first, "push")
    return {"root": root, "first": first, "store": root / "store"}


def test_repository_names_a_default_remote():
    config = (REPO / ".dvc" / "config").read_text()
    assert "remote = team" in config and "['remote \"team\"']" in config


@pytest.mark.slow
def test_fresh_clone_elsewhere_pulls_and_has_nothing_to_rebuild(pushed):
    clone = pushed["root"] / "elsewhere" / "deeper" / "b"
    run(pushed["root"], "git", "clone", "-q", str(pushed["first"]), str(clone))
    use_remote(clone, pushed["store"])
    dvc(clone, "pull")
    done = dvc(clone, "repro")
    assert "Running stage" not in done.stdout and "Data and pipelines are up to date." in done.stdout
    assert (clone / "dvc.lock").read_text() == (pushed["first"] / "dvc.lock").read_text()
    assert not run(clone, "git", "status", "--porcelain").stdout.strip()


@pytest.mark.slow
def test_a_clone_at_another_path_rebuilds_the_same_hashes(pushed):
    clone = pushed["root"] / "x" / "c"
    run(pushed["root"], "git", "clone", "-q", str(pushed["first"]), str(clone))
    dvc(clone, "repro", REBUILT[-1])  # no pull: this clone makes these stages' data itself
    ours, theirs = out_hashes((clone / "dvc.lock").read_text()), out_hashes((pushed["first"] / "dvc.lock").read_text())
    # The data itself; the image shards' status files and the reports also record how long things took.
    compared = [key for key in ours if key.split(":")[0] in REBUILT[:2] + REBUILT[3:] and ":data/" in key]
    assert len(compared) == 3 and {key: ours[key] for key in compared} == {key: theirs[key] for key in compared}
