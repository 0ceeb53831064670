"""Lineage of a run: the git commit, whether the tracked source differs from it, and the data version.

`dvc repro` writes `dvc.lock`, its outputs and the `.gitignore` files that list them, and it
stages `dvc.lock` for commit. Those are results of the pipeline, not source: counting them made
every run of a fresh clone "dirty". So `git_dirty` looks only at tracked files the pipeline does
not write. The data version is one short digest of `dvc.lock` (it changes when any stage output
does); the per-output table stays available as ``data.<stage>.<path>`` run tags and in the model card.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from mlimages.tracking.names import DATA_VERSION_TAG

LOCK_FILE = "dvc.lock"


def lineage_tags(repo: str | Path = ".", lock_file: str | Path = LOCK_FILE) -> dict[str, str]:
    """Tags tying a run to its code and data.

    Args:
        repo: a folder inside the git work tree.
        lock_file: the `dvc.lock` file.

    Returns:
        ``{"git_commit", "git_dirty": "true"|"false", DATA_VERSION_TAG, "data.<stage>.<path>": md5, ...}``;
        git values are ``"unknown"`` outside a git work tree, the data version ``"none"`` without a lock file.
    """
    commit = _git(repo, "rev-parse", "HEAD")
    tags = {
        "git_commit": commit or "unknown",
        "git_dirty": "unknown" if commit is None else str(bool(changed_source_files(repo, lock_file))).lower(),
        DATA_VERSION_TAG: read_data_version(lock_file),
    }
    tags.update(read_data_hashes(lock_file))
    return tags


def changed_source_files(repo: str | Path = ".", lock_file: str | Path = LOCK_FILE) -> list[str]:
    """Tracked files that differ from HEAD (staged or not), leaving out what `dvc repro` writes.

    Left out: `dvc.lock`, every `.gitignore` (DVC lists its outputs there), every stage output
    named in `dvc.lock` (a file or anything under a folder) and the files of dvc.yaml's top-level
    ``metrics:`` (what `make demo` writes from the registry). Paths are relative to the repository root.
    """
    changed = (_git(repo, "diff", "HEAD", "--name-only", "--no-renames") or "").splitlines()
    root = _git(repo, "rev-parse", "--show-toplevel")
    if not changed or root is None:
        return []
    lock = Path(lock_file).resolve()
    results = read_outputs(lock) + read_top_level_metrics(lock.parent / "dvc.yaml")
    written = {_relative(lock, root)} | {_relative(lock.parent / out, root) for out in results}
    return [path for path in changed if not _written_by_pipeline(path, written)]


def _written_by_pipeline(path: str, written: set[str]) -> bool:
    if PurePosixPath(path).name == ".gitignore":
        return True
    return any(path == out or path.startswith(out.rstrip("/") + "/") for out in written)


def _relative(path: Path, root: str) -> str:
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:  # outside the repository: it cannot match a tracked file
        return str(path)


def read_outputs(lock_file: str | Path) -> list[str]:
    """Every stage output path listed in `dvc.lock` (relative to the lock file's folder)."""
    return [out["path"] for _, out in _iter_outputs(lock_file)]


def read_top_level_metrics(dvc_yaml: str | Path) -> list[str]:
    """The paths under dvc.yaml's top-level ``metrics:`` (files or folders; none without the file)."""
    path = Path(dvc_yaml)
    if not path.is_file():
        return []
    entries = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("metrics") or []
    return [entry for entry in entries if isinstance(entry, str)]


def read_data_version(lock_file: str | Path = LOCK_FILE) -> str:
    """The first 12 hex digits of the sha256 of `dvc.lock` ("none" when there is no lock file)."""
    path = Path(lock_file)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "none"


def read_data_hashes(lock_file: str | Path = LOCK_FILE) -> dict[str, str]:
    """The md5 of every stage output listed in `dvc.lock`, keyed ``data.<stage>.<path>``."""
    return {_tag_key(f"data.{stage}.{out['path']}"): str(out["md5"])
            for stage, out in _iter_outputs(lock_file) if "md5" in out}


def _iter_outputs(lock_file: str | Path):
    path = Path(lock_file)
    if not path.is_file():
        return
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for stage, body in (lock.get("stages") or {}).items():
        for out in (body or {}).get("outs") or []:
            yield stage, out


def _tag_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / : only (foreach stages are named "stage@item").
    return re.sub(r"[^\w\-. /:]", ".", key)


def _git(repo: str | Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
