"""Every `mlimages/` module a stage script imports is in that stage's dvc.yaml deps.

DVC reruns a stage only when a listed dep changes; a library module the stage runs but does not list
lets `dvc repro` keep outputs that the changed code would write differently. The imports are found by
walking the AST from the stage script, so function-level imports count too, and without importing
TensorFlow. A dep on a folder covers every file below it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipelines import REPO

# Imported by every stage but cannot change what a stage writes; listing them would rerun every stage,
# the record builders included, for an edit of an error message.
NOT_OUTPUT_CODE = {
    "mlimages/__init__.py": "the version string and TensorFlow's C++ log level",
    "mlimages/errors.py": "the error type and the one-line message of a failed stage",
    "mlimages/config.py": "reads params.yaml into dataclasses; DVC tracks the values through `params`",
}


def module_file(name: str) -> Path | None:
    """The file of module `name` under the repository (a package's __init__.py), None if not ours."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_names(path: Path, package: str) -> set[str]:
    """Dotted names of the modules `path` imports, its parent packages included (they run first)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # kept only if it is a module
    return {".".join(name.split(".")[:end]) for name in names for end in range(1, name.count(".") + 2)}


def mlimages_imports(script: Path) -> set[str]:
    """Repository-relative files of every `mlimages` module `script` imports, transitively."""
    seen: set[Path] = set()
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for name in imported_names(path, package):
            found = module_file(name) if name.split(".")[0] == "mlimages" else None
            if found is not None and found not in seen:
                seen.add(found)
                todo.append((found, name if found.name == "__init__.py" else name.rpartition(".")[0]))
    return {path.relative_to(REPO).as_posix() for path in seen}


def runs_code(path: str) -> bool:
    """False for a package marker holding only its docstring: importing it cannot change anything."""
    body = ast.parse((REPO / path).read_text(encoding="utf-8")).body
    return not (path.endswith("__init__.py") and all(isinstance(node, ast.Expr) for node in body))


def missing_deps(stage: dict) -> list[str]:
    """Modules the stage's script imports that none of its deps (files or folders) covers."""
    script = next(token for token in stage["cmd"].split() if token.startswith("pipelines/"))
    deps = [dep.rstrip("/") for dep in stage["deps"]]
    return sorted(
        path for path in mlimages_imports(REPO / script)
        if path not in NOT_OUTPUT_CODE and runs_code(path)
        and not any(path == dep or path.startswith(dep + "/") for dep in deps)
    )


def dvc_stages() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("name", list(dvc_stages()))
def test_stage_deps_cover_every_module_its_script_imports(name):
    assert missing_deps(dvc_stages()[name]) == [], f"add these to the deps of {name} in dvc.yaml"


def test_the_check_names_a_module_left_out():
    stage = dict(dvc_stages()["build_imagenet"])
    stage["deps"] = [dep for dep in stage["deps"] if dep != "mlimages/records"]
    missing = missing_deps(stage)
    assert "mlimages/records/imagenet.py" in missing and "mlimages/records/schema.py" in missing
    assert not any(path.startswith("pipelines/") or path in NOT_OUTPUT_CODE for path in missing)


@pytest.mark.parametrize("name", list(dvc_stages()))
def test_the_walk_finds_what_the_interpreter_imports(name):
    """The AST walk misses nothing a fresh interpreter loads when it imports the stage script (about
    10 s for a stage that imports TensorFlow)."""
    script = next(token for token in dvc_stages()[name]["cmd"].split() if token.startswith("pipelines/"))
    code = (f"import json, runpy, sys; runpy.run_path({str(REPO / script)!r}); "
            "print(json.dumps([m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'mlimages']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = {Path(file).resolve().relative_to(REPO).as_posix() for file in json.loads(done.stdout)}
    assert "mlimages/__init__.py" in loaded and len(loaded) > 1  # the probe saw the script's imports
    assert loaded <= mlimages_imports(REPO / script)
