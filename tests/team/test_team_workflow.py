"""A researcher pretrains, registers and evaluates, then finetunes from the registered champion and
evaluates that, against the team server (`mlflow run` entry points); others list, classify, extract
features and serve the champion.

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

from mlimages.tracking.names import INIT_MODEL_TAG, STEP_TAG, TASK_TAG, TRAINING_DATA_TAG
from mlimages.tracking.versions import read_version_source

from .team_server import BIN, DEPLOYER, EXPERIMENT, RESEARCHER

REPO = Path(__file__).resolve().parents[2]
MODEL = "mlimages-resnet50-ml"  # registry.pretrained_name at the tiny network's depth
FINETUNED = "mlimages-resnet50-imagenet"  # registry.finetuned_name

pytestmark = pytest.mark.slow  # a real server, two training subprocesses: minutes on two cores


def write_params(path: Path) -> Path:
    """The repository's params with tiny training sections and evaluation at the tiny images' size."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for section in ("pretrain", "finetune"):
        params[section] = tiny_section(section, {"experiment": EXPERIMENT, "steps": 8})
    params["evaluate"].update({"sizes": [32], "batch_size": 8})
    params["registry"].update({"pretrained_metric": "map_all", "finetuned_metric": "top1_32", "serving_size": 32,
                               "stored_shorter_side": 32})
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def run(args: list[str], cwd: Path, env: dict[str, str], outputs: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
                          capture_output=True, text=True, timeout=600)
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def mlflow_run(entry_point: str, **parameters) -> list[str]:
    """`mlflow run` of the project's entry point in this interpreter's environment, every path absolute."""
    command = [str(BIN / "mlflow"), "run", str(REPO), "-e", entry_point, "--env-manager", "local",
               "--experiment-name", EXPERIMENT]
    for key, value in parameters.items():
        command += ["-P", f"{key}={value}"]
    return command


def write_credentials(home: Path, user: str, password: str) -> None:
    """MLflow's own credentials file, as a team member keeps it."""
    (home / ".mlflow").mkdir(parents=True)
    path = home / ".mlflow" / "credentials"
    path.write_text(f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {password}\n")
    path.chmod(0o600)


@pytest.fixture(scope="module")
def workflow(team_server, tmp_path_factory) -> dict:
    """Pretrain + register + evaluate, then finetune from the pretrained champion + register + evaluate, as
    the researcher; list as the deployer. Returns folders, run ids and outputs."""
    data = tmp_path_factory.mktemp("records")
    train, val = write_records(data / "ml" / "train", 32, "multi", seed=1), write_records(
        data / "ml" / "val", 16, "multi", num_shards=1, seed=2)
    single_train, single_val = write_records(data / "imagenet" / "train", 32, "single", seed=3), write_records(
        data / "imagenet" / "val", 16, "single", num_shards=1, seed=4)
    lab, reader = tmp_path_factory.mktemp("researcher"), tmp_path_factory.mktemp("reader")
    write_params(lab / "params.yaml")
    write_params(reader / "params.yaml")
    outputs: list[str] = []
    env = team_server.client_env(RESEARCHER)
    run(mlflow_run("pretrain", train=train, val=val, out=lab / "models" / "pretrain", params=lab / "params.yaml"),
        lab, env, outputs)
    run_id = json.loads((lab / "models" / "pretrain" / "summary.json").read_text())["run_id"]
    run(mlflow_run("evaluate", model_uri=f"runs:/{run_id}", records=val, leaked="", out=lab / "eval.json",
                   params=lab / "params.yaml"), lab, env, outputs)
    run(mlflow_run("finetune", train=single_train, val=single_val, out=lab / "models" / "finetune",
                   init_model=f"models:/{MODEL}@champion", params=lab / "params.yaml"), lab, env, outputs)
    finetune_id = json.loads((lab / "models" / "finetune" / "summary.json").read_text())["run_id"]
    run(mlflow_run("evaluate", model_uri=f"runs:/{finetune_id}", records=single_val, leaked="",
                   out=lab / "eval-finetune.json", params=lab / "params.yaml"), lab, env, outputs)
    write_credentials(reader / "home", DEPLOYER, team_server.passwords[DEPLOYER])
    listed = run([str(BIN / "mlimages"), "registry", "list"], reader, team_server.client_env(None, reader / "home"),
                 outputs)
    return {"lab": lab, "reader": reader, "run_id": run_id, "finetune_id": finetune_id, "listing": listed.stdout,
            "outputs": outputs, "val": val}


def test_registry_list_from_another_folder_shows_the_champion(workflow):
    rows = [line.split() for line in workflow["listing"].splitlines() if line.startswith(MODEL)]
    assert [row[1] for row in rows] == ["1", "2"]  # the checkpoints of both epochs (steps 4 and 8)
    assert sum("champion" in row[-1].split(",") for row in rows) == 1
    assert all(f"run {workflow['run_id'][:8]}" in " ".join(row) for row in rows)


def test_the_finetune_from_the_registered_champion_is_registered_with_its_lineage(workflow, researcher):
    client = researcher
    pretrained = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(workflow["finetune_id"])
    assert run.info.status == "FINISHED" and run.data.tags[TASK_TAG] == "finetune"
    assert run.data.tags[INIT_MODEL_TAG] == f"models:/{MODEL}/{pretrained.version}"  # the alias, pinned
    assert run.info.run_name == f"finetune-from-ml-v{pretrained.version}"
    assert run.data.params["init_model"] == f"models:/{MODEL}@champion"
    for key in ("loss", "learning_rate"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(2, 9, 2)), (key, steps)  # every logged step once
    versions = sorted(client.search_model_versions(f"name = '{FINETUNED}'"), key=lambda v: int(v.version))
    assert [v.version for v in versions] == ["1", "2"]  # the checkpoints of both epochs (steps 4 and 8)
    for version in versions:
        source = read_version_source(client, version)
        assert version.run_id == run.info.run_id
        assert version.tags[TRAINING_DATA_TAG] == f"from {MODEL} v{pretrained.version}"
        assert source.task == "finetune" and "eval.top1_32" in version.tags
        assert 0.0 <= float(version.tags["eval.top1_32"]) <= 1.0
        checkpoint = client.get_logged_model(source.checkpoint)
        assert checkpoint.source_run_id == run.info.run_id and int(checkpoint.tags[STEP_TAG]) in (4, 8)
    champion = client.get_model_version_by_alias(FINETUNED, "champion")
    assert champion.version in ("1", "2")
    evaluation = json.loads((workflow["lab"] / "eval-finetune.json").read_text())
    assert evaluation["model_uri"] == f"runs:/{run.info.run_id}" and len(evaluation["results"]) == 2
    assert all("top1_32" in json.dumps(result) for result in evaluation["results"])


def test_artifacts_went_through_the_server(team_server, workflow):
    assert not (workflow["lab"] / "mlruns").exists() and not (workflow["lab"] / "mlartifacts").exists()
    stored = list(team_server.artifacts.rglob("MLmodel"))
    assert len(stored) >= 8  # two Keras checkpoints and their serving models, pretrained and finetuned


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


@pytest.fixture(scope="module")
def deployment(team_server, workflow, tmp_path_factory) -> dict:
    """A third folder with the deployment account's credentials file and one photo."""
    import numpy as np

    folder = tmp_path_factory.mktemp("deployment")
    write_credentials(folder / "home", DEPLOYER, team_server.passwords[DEPLOYER])
    photo = folder / "photo.jpg"
    photo.write_bytes(make_image(1, np.random.default_rng(0)))
    return {"folder": folder, "photo": photo, "env": team_server.client_env(None, folder / "home")}


def test_classify_and_features_of_the_champion_from_a_deployment_folder(deployment, workflow):
    import numpy as np

    folder, env = deployment["folder"], deployment["env"]
    model = f"models:/{MODEL}@champion"
    shown = run([str(BIN / "mlimages"), "classify", "--model", model, "--top-k", "2", str(deployment["photo"])],
                folder, env, workflow["outputs"])
    rows = [line.split("\t") for line in shown.stdout.splitlines()[1:]]
    assert [row[1] for row in rows] == ["1", "2"] and all(row[0].endswith("photo.jpg") for row in rows)
    (folder / "images.txt").write_text(f"{deployment['photo']}\n")
    run([str(BIN / "mlimages"), "features", "--model", model, "--images", "images.txt", "--out", "features.npy",
         "--size", "32"], folder, env, workflow["outputs"])
    features = np.load(folder / "features.npy")
    assert features.shape[0] == 1 and features.shape[1] > 0 and np.isfinite(features).all()


BLOCK_MLIMAGES = """import sys

class BlockMlimages:
    def find_spec(self, name, path=None, target=None):
        if name == "mlimages" or name.startswith("mlimages."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, BlockMlimages())
"""


def test_mlflow_models_serve_answers_as_in_process_without_mlimages(deployment, workflow, team_server, tmp_path):
    """`mlflow models serve -m models:/NAME@champion` as the deployment account, every Python process of it
    unable to import mlimages (a sitecustomize blocker): the same answers as the model loaded here."""
    import base64
    import signal
    import time

    import requests

    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_MLIMAGES)
    port = free_port()
    env = {**deployment["env"], "PYTHONPATH": str(blocker), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    command = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=deployment["folder"], env=env, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not answers_ping(port):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        image = base64.b64encode(deployment["photo"].read_bytes()).decode()
        body = {"dataframe_split": {"columns": ["image"], "data": [[image]]}, "params": {"top_k": 3}}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert response.status_code == 200, response.text
        (served,) = response.json()["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    workflow["outputs"].append(log.read_text(errors="replace"))
    expected = in_process_answer(team_server, deployment["photo"])
    assert served["classes"] == expected["classes"] and served["names"] == expected["names"]
    assert served["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_ping(port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def in_process_answer(team_server, photo: Path) -> dict:
    import mlflow
    import pandas as pd

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = DEPLOYER, team_server.passwords[
        DEPLOYER]
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(team_server.url)
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
        answer = model.predict(pd.DataFrame({"image": [photo.read_bytes()]}), params={"top_k": 3})
    finally:
        mlflow.set_tracking_uri(previous)
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    return answer.iloc[0].to_dict()
