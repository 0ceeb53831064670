"""A registered version loads and answers where `mlimages` cannot be imported: the code it runs and
exact requirements travel with it (models-from-code + the `mlimages_serving` copy in code/)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlimages.tracking.serving import make_example_image

BLOCK_MLIMAGES = """
import sys

class BlockMlimages:
    def find_spec(self, name, path=None, target=None):
        if name == "mlimages" or name.startswith("mlimages."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, BlockMlimages())
"""

PREDICT = """
import json, sys
import mlflow, pandas as pd

model = mlflow.pyfunc.load_model(sys.argv[1])
photos = [open(path, "rb").read() for path in sys.argv[2:]]
out = model.predict(pd.DataFrame({"image": photos}), params={"top_k": 3})
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "mlimages")
print(json.dumps({"answer": out.to_dict(orient="list"), "mlimages_modules": loaded}))
"""


@pytest.fixture(scope="module")
def champion_folder(served_model, tmp_path_factory) -> Path:
    """The champion's files as a deployment host downloads them."""
    folder = tmp_path_factory.mktemp("deployed")
    return Path(mlflow.artifacts.download_artifacts(f"models:/{served_model}@champion", dst_path=str(folder)))


@pytest.fixture(scope="module")
def photos(fixture_photo, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / "photo.jpg", folder / "example.jpg"]
    paths[0].write_bytes(fixture_photo)
    paths[1].write_bytes(make_example_image())
    return paths


@pytest.fixture(scope="module")
def in_process_answer(served_model, photos) -> dict:
    model = mlflow.pyfunc.load_model(f"models:/{served_model}@champion")
    images = [path.read_bytes() for path in photos]
    return model.predict(pd.DataFrame({"image": images}), params={"top_k": 3}).to_dict(orient="list")


def run_alone(python: str, script: str, champion_folder: Path, photos: list[Path], cwd: Path) -> dict:
    """Run `script` in a clean environment and working directory; its last stdout line is JSON."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    done = subprocess.run([python, "-c", script, str(champion_folder), *map(str, photos)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_same_answers(got: dict, expected: dict) -> None:
    assert got["classes"] == expected["classes"] and got["names"] == expected["names"]
    for row, expected_row in zip(got["probabilities"], expected["probabilities"]):
        assert row == pytest.approx(expected_row, abs=1e-6)


def test_the_model_carries_its_code_and_no_pickle(champion_folder):
    assert not (champion_folder / "python_model.pkl").exists()
    shipped = sorted((champion_folder / "code" / "mlimages_serving").rglob("*.py"))
    assert {p.name for p in shipped} >= {"serving.py", "images.py", "preprocess.py"}
    for path in [*shipped, champion_folder / "serving_entry.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not [n for n in names if n.split(".")[0] == "mlimages"], f"{path.name} imports {names}"
    requirements = (champion_folder / "requirements.txt").read_text().split()
    pinned = {line.split("==")[0] for line in requirements if "==" in line}
    assert pinned >= {"mlflow", "keras", "pillow", "numpy", "pandas"} and pinned & {"tensorflow", "tensorflow-cpu"}
    assert all("==" in line for line in requirements), requirements


def test_loads_and_answers_where_mlimages_cannot_be_imported(champion_folder, photos, in_process_answer,
                                                             tmp_path):
    got = run_alone(sys.executable, BLOCK_MLIMAGES + PREDICT, champion_folder, photos, tmp_path)
    assert got["mlimages_modules"] == []
    assert_same_answers(got["answer"], in_process_answer)


@pytest.mark.slow  # builds a virtualenv from the model's requirements.txt (TensorFlow, MLflow)
def test_loads_and_answers_in_a_fresh_virtualenv_from_its_own_requirements(champion_folder, photos,
                                                                            in_process_answer, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(champion_folder / "requirements.txt")],
                             capture_output=True, text=True, timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([python, "-c", "import importlib.util; print(importlib.util.find_spec('mlimages'))"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"
    got = run_alone(python, PREDICT, champion_folder, photos, tmp_path)
    assert got["mlimages_modules"] == []
    assert_same_answers(got["answer"], in_process_answer)
