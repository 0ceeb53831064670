"""The permission matrix of the team server: 401 without credentials, 403 outside a grant, 200 inside.

Every request goes to the real server over HTTP, as MLflow's client sends it. Researchers hold EDIT
on the project's experiment and models, the deployment account READ, a third account nothing.
"""

from __future__ import annotations

import time

import pytest
import requests

from .team_server import DEPLOYER, EXPERIMENT, OUTSIDER, RESEARCHER

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MODEL = "team-matrix"  # a project model (granted by team setup)
ACCOUNTS = ["anonymous", DEPLOYER, RESEARCHER, OUTSIDER, "admin"]
EXPECTED = {  # action: status per account, in ACCOUNTS order
    "create run": [401, 403, 200, 403, 200],
    "log metric": [401, 403, 200, 403, 200],
    "register version": [401, 403, 200, 403, 200],
    "set alias": [401, 403, 200, 403, 200],
    "delete model": [401, 403, 403, 403, 200],
    "load model": [401, 200, 200, 403, 200],
}


class Api:
    """Calls of one account; each returns the HTTP status."""

    def __init__(self, server, account: str, objects: dict):
        self.url, self.objects = server.url, objects
        self.auth = None if account == "anonymous" else (account, server.passwords[account])

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, auth=self.auth, timeout=60, **kwargs)

    def create_run(self) -> int:
        return self.call("POST", f"{API}/runs/create", json={"experiment_id": self.objects["experiment_id"]}).status_code

    def log_metric(self) -> int:
        body = {"run_id": self.objects["run_id"], "key": "loss", "value": 0.5, "timestamp": int(time.time() * 1000),
                "step": 1}
        return self.call("POST", f"{API}/runs/log-metric", json=body).status_code

    def register_version(self) -> int:
        body = {"name": MODEL, "source": self.objects["source"], "run_id": self.objects["run_id"]}
        return self.call("POST", f"{API}/model-versions/create", json=body).status_code

    def set_alias(self) -> int:
        body = {"name": MODEL, "alias": "champion", "version": "1"}
        return self.call("POST", f"{API}/registered-models/alias", json=body).status_code

    def delete_model(self) -> int:
        name = self.objects["throwaway"] if self.auth and self.auth[0] == "admin" else MODEL
        return self.call("DELETE", f"{API}/registered-models/delete", json={"name": name}).status_code

    def load_model(self) -> int:
        """What loading `models:/team-matrix/1` does: the version's download URI, then its files."""
        found = self.call("GET", f"{API}/model-versions/get-download-uri", params={"name": MODEL, "version": "1"})
        if found.status_code != 200:
            return found.status_code
        path = found.json()["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
        return self.call("GET", f"{ARTIFACTS}/{path}/MLmodel").status_code


@pytest.fixture(scope="module")
def objects(team_server) -> dict:
    """A researcher's run with a model file, registered as version 1 of the project model; a throwaway model."""
    alice = Api(team_server, RESEARCHER, {})
    experiment = alice.call("GET", f"{API}/experiments/get-by-name", params={"experiment_name": EXPERIMENT}).json()
    experiment_id = experiment["experiment"]["experiment_id"]
    run = alice.call("POST", f"{API}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]
    artifact_uri = run["artifact_uri"]
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri  # proxied: clients never see the store
    path = artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
    uploaded = alice.call("PUT", f"{ARTIFACTS}/{path}/model/MLmodel", data=b"flavors: {}\n")
    assert uploaded.status_code == 200, uploaded.text
    source = f"{artifact_uri}/model"
    created = alice.call("POST", f"{API}/model-versions/create",
                         json={"name": MODEL, "source": source, "run_id": run["run_id"]})
    assert created.status_code == 200, created.text
    admin = Api(team_server, "admin", {})
    assert admin.call("POST", f"{API}/registered-models/create", json={"name": "team-throwaway"}).status_code == 200
    return {"experiment_id": experiment_id, "run_id": run["run_id"], "source": source, "throwaway": "team-throwaway"}


@pytest.mark.parametrize("action", list(EXPECTED))
def test_permission_matrix(team_server, objects, action):
    method = action.replace(" ", "_")
    got = [getattr(Api(team_server, account, objects), method)() for account in ACCOUNTS]
    assert dict(zip(ACCOUNTS, got)) == dict(zip(ACCOUNTS, EXPECTED[action]))


def test_a_wrong_password_is_401_and_names_no_secret(team_server, objects):
    response = requests.get(f"{team_server.url}{API}/experiments/get-by-name", params={"experiment_name": EXPERIMENT},
                            auth=(RESEARCHER, "not-" + team_server.passwords[RESEARCHER]), timeout=30)
    assert response.status_code == 401
    assert not any(secret in response.text for secret in team_server.secrets())


def test_setup_runs_again_without_changing_anything(team_server, objects, tmp_path):
    """Rerunning `mlimages team setup` keeps users' passwords and grants (what the README promises)."""
    import subprocess

    from .team_server import BIN

    passwords = tmp_path / "passwords.txt"
    passwords.write_text(f"{RESEARCHER}:another-password-{RESEARCHER}\n{DEPLOYER}:another-password-{DEPLOYER}\n")
    passwords.chmod(0o600)
    env = {**team_server.client_env("admin"), "MLFLOW_TRACKING_USERNAME": "admin"}
    done = subprocess.run([str(BIN / "mlimages"), "team", "setup", "--config", str(team_server.root / "team.yaml"),
                           "--passwords", str(passwords)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Api(team_server, RESEARCHER, objects).create_run() == 200  # the old password still works
    assert Api(team_server, DEPLOYER, objects).load_model() == 200
    assert Api(team_server, DEPLOYER, objects).create_run() == 403


@pytest.mark.parametrize("account", ["wrong password", OUTSIDER])
def test_training_refused_by_the_server_stops_at_its_start_with_one_line(team_server, account, tmp_path, monkeypatch,
                                                                         capsys):
    from mlimages.train.entry_point import EXIT_REFUSED

    from tests.pipelines import load_pipeline
    from tests.train.fakes import write_records, write_tiny_params

    train = write_records(tmp_path / "train", 8, "multi", seed=1)
    val = write_records(tmp_path / "val", 8, "multi", num_shards=1, seed=2)
    params = write_tiny_params(tmp_path / "params.yaml", {"steps": 1, "experiment": EXPERIMENT}, {"steps": 1})
    user, password = (RESEARCHER, "not-" + team_server.passwords[RESEARCHER]) if account == "wrong password" else (
        account, team_server.passwords[account])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    status = load_pipeline("pretrain").main(["--train", str(train), "--val", str(val), "--out", str(tmp_path / "out"),
                                             "--params", str(params)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == EXIT_REFUSED and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    expected = ("refused the credentials: set MLFLOW_TRACKING_USERNAME" if account == "wrong password"
                else f"forbids user '{OUTSIDER}' the call /api/2.0/mlflow/")
    assert errors[0].startswith(f"error: the tracking server {team_server.url} ") and expected in errors[0]
    assert password not in err
