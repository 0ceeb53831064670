"""A researcher trains, registers and evaluates against the team server; others list and load.

Each party works in a folder of its own that shares nothing with the server but its URL: the
researcher's credentials come from the environment, the reader's from `~/.mlflow/credentials`,
and artifacts travel through the server. Then every byte the run produced (working folders,
console output, the server's artifacts, log and database) is searched for every secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.train.fakes import make_image, tiny_section, write_records

from .team_server import BIN, DEPLOYER, EXPERIMENT, RESEARCHER

REPO = Path(__file__).resolve().parents[2]
MODEL = "mlimages-resnet50-ml"  # registry.pretrained_name at the tiny network's depth

pytestmark = pytest.mark.slow  # a real server, two training subprocesses: minutes on two cores


def write_params(path: Path) -> Path:
    """The repository's params with a tiny pretrain section and evaluation at the tiny images' size."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["pretrain"] = tiny_section("pretrain", {"experiment": EXPERIMENT, "steps": 8})
    params["evaluate"].update({"sizes": [32], "batch_size": 8})
    params["registry"].update({"pretrained_metric": "map_all", "serving_size": 32, "stored_shorter_side": 32})
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def run(args: list[str], cwd: Path, env: dict[str, str], outputs: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
                          capture_output=True, text=True, timeout=600)
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def write_credentials(home: Path, user: str, password: str) -> None:
    """MLflow's own credentials file, as a team member keeps it."""
    (home / ".mlflow").mkdir(parents=True)
    path = home / ".mlflow" / "credentials"
    path.write_text(f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {password}\n")
    path.chmod(0o600)


@pytest.fixture(scope="module")
def workflow(team_server, tmp_path_factory) -> dict:
    """Train + register + evaluate as the researcher, list as the deployer; returns folders and outputs."""
    data = tmp_path_factory.mktemp("records")
    train, val = write_records(data / "ml" / "train", 32, "multi", seed=1), write_records(
        data / "ml" / "val", 16, "multi", num_shards=1, seed=2)
    lab, reader = tmp_path_factory.mktemp("researcher"), tmp_path_factory.mktemp("reader")
    write_params(lab / "params.yaml")
    write_params(reader / "params.yaml")
    outputs: list[str] = []
    env = team_server.client_env(RESEARCHER)
    run([sys.executable, str(REPO / "pipelines" / "pretrain.py"), "--train", str(train), "--val", str(val),
         "--out", "models/pretrain"], lab, env, outputs)
    run_id = json.loads((lab / "models" / "pretrain" / "summary.json").read_text())["run_id"]
    run([sys.executable, str(REPO / "pipelines" / "evaluate.py"), "--model-uri", f"runs:/{run_id}",
         "--records", str(val), "--out", "eval.json"], lab, env, outputs)
    write_credentials(reader / "home", DEPLOYER, team_server.passwords[DEPLOYER])
    listed = run([str(BIN / "mlimages"), "registry", "list"], reader, team_server.client_env(None, reader / "home"),
                 outputs)
    return {"lab": lab, "reader": reader, "run_id": run_id, "listing": listed.stdout, "outputs": outputs,
            "val": val}


def test_registry_list_from_another_folder_shows_the_champion(workflow):
    rows = [line.split() for line in workflow["listing"].splitlines() if line.startswith(MODEL)]
    assert [row[1] for row in rows] == ["1", "2"]  # the checkpoints of both epochs (steps 4 and 8)
    assert sum("champion" in row[-1].split(",") for row in rows) == 1
    assert all(f"run {workflow['run_id'][:8]}" in " ".join(row) for row in rows)


def test_artifacts_went_through_the_server(team_server, workflow):
    assert not (workflow["lab"] / "mlruns").exists() and not (workflow["lab"] / "mlartifacts").exists()
    stored = list(team_server.artifacts.rglob("MLmodel"))
    assert len(stored) >= 2  # the Keras checkpoint and its serving model


def test_deployment_account_loads_the_champion_and_cannot_move_it(team_server, workflow, tmp_path):
    script = (
        "import mlflow, numpy as np, pandas as pd\n"
        "from mlflow.exceptions import MlflowException\n"
        f"model = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        "import base64, sys\n"
        "image = base64.b64encode(open(sys.argv[1], 'rb').read()).decode()\n"
        "print(len(model.predict(pd.DataFrame({'image': [image]}))))\n"
        "try:\n"
        f"    mlflow.MlflowClient().set_registered_model_alias('{MODEL}', 'champion', '1')\n"
        "except MlflowException as error:\n"
        "    print('refused', error.get_http_status_code())\n"
    )
    photo = tmp_path / "photo.jpg"
    import numpy as np

    photo.write_bytes(make_image(1, np.random.default_rng(0)))
    done = run([sys.executable, "-c", script, str(photo)], tmp_path, team_server.client_env(DEPLOYER),
               workflow["outputs"])
    assert done.stdout.split() == ["1", "refused", "403"]


def test_no_secret_in_anything_a_run_produced(team_server, postgres, workflow):
    import mlflow

    client = mlflow.MlflowClient(team_server.url)
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", team_server.passwords[
        "admin"]
    try:
        version = client.get_model_version(MODEL, "1")
        run = client.get_run(workflow["run_id"])
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert "## " in (version.description or "") and run.data.params  # there is a model card and params to search
    texts = {"console": "\n".join(workflow["outputs"]), "server log": team_server.log.read_text(errors="replace"),
             "tracking database": postgres.dump("mlflow"), "params and tags": json.dumps(
                 [run.data.params, run.data.tags, version.tags, version.description])}
    for folder in (workflow["lab"], team_server.artifacts):
        for path in folder.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("latin-1")
    for secret in team_server.secrets():
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"a secret appears in {leaks}"
