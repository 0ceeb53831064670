"""`mlimages registry list` against the team server reads the registry over REST, without MLflow.

The same registered versions (tags, run ids, aliases, clean scores) are read by MLflow's client and
by the REST reader from the real server on PostgreSQL: the table, the names found from the params
templates and the DVC metrics files must be the same, the command must not import MLflow or
TensorFlow, and a refused request is one line that names no secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from mlimages.config import load_params
from mlimages.tracking.model_metrics import model_rows, write_model_metrics
from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.rest_registry import RestRegistry, read_connection
from mlimages.tracking.results_table import matching_names, render_versions

from .team_server import EXPERIMENT, OUTSIDER, RESEARCHER

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PRETRAINED, FINETUNED = "listing-resnet50-ml", "listing-resnet50-imagenet"
HEAVY = ("mlflow", "tensorflow", "keras")
# Runs `mlimages registry list ARGS...` in this interpreter, then reports which heavy modules it imported.
COMMAND = ("import json, sys\nfrom mlimages.cli import main\ncode = main(sys.argv[1:])\n"
           f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\nsys.exit(code)\n")


def make_run(url: str, auth: tuple[str, str]) -> tuple[str, str]:
    """A researcher's run holding a model folder: (run id, source URI) of the versions registered here."""
    found = requests.get(f"{url}{API}/experiments/get-by-name", params={"experiment_name": EXPERIMENT}, auth=auth,
                         timeout=60).json()
    run = requests.post(f"{url}{API}/runs/create", auth=auth, timeout=60,
                        json={"experiment_id": found["experiment"]["experiment_id"]}).json()["run"]["info"]
    path = run["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    requests.put(f"{url}{ARTIFACTS}/{path}/model/MLmodel", data=b"flavors: {}\n", auth=auth,
                 timeout=60).raise_for_status()
    return run["run_id"], f"{run['artifact_uri']}/model"


def version_tags(number: int, run_id: str, task: str) -> dict[str, str]:
    """What an evaluated checkpoint carries; version 3 was never evaluated, version 2 has a clean score."""
    tags = {"mlimages.task": task, "mlimages.step": str(100 * number), "mlimages.run_id": run_id,
            "mlimages.training_data": "from scratch" if task == "finetune" else "ml-images/train@1a2b3c4d"}
    if number == 3:
        return tags
    if task == "finetune":
        tags.update({"eval.top1_56": f"{0.3 + number / 100}", "eval.top5_56": "0.8", "eval.top1_64": "0.41"})
    else:
        tags["eval.map_all"] = f"{0.2 + number / 100}"
    if number == 2:
        tags.update({"eval.top1_56_clean": "0.29", "eval.leaked_left_out": "3"})
    return tags


@pytest.fixture(scope="module")
def registry(team_server, tmp_path_factory) -> dict:
    """Five finetuned and two pretrained versions with aliases, registered by the researcher; a params file naming them."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", RESEARCHER)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", team_server.passwords[RESEARCHER])
        client = mlflow.MlflowClient(team_server.url)
        run_id, source = make_run(team_server.url, (RESEARCHER, team_server.passwords[RESEARCHER]))
        # The newest pretrained version is built as the registry builds them: its source is a serving
        # LoggedModel whose tags hold the step (versions 1-2 of each carry it themselves, as older ones did).
        serving = client.create_logged_model(client.get_run(run_id).info.experiment_id, name="serving-step-250",
                                             source_run_id=run_id, tags={"mlimages.serving": "true",
                                                                         "mlimages.step": "250"})
        for name, count, task in ((FINETUNED, 5, "finetune"), (PRETRAINED, 2, "pretrain")):
            client.create_registered_model(name)
            for number in range(1, count + 1):
                tags = version_tags(number, run_id, task)
                if name == PRETRAINED and number == 2:
                    del tags["mlimages.step"]
                    client.create_model_version(name, f"models:/{serving.model_id}", run_id, tags=tags,
                                                model_id=serving.model_id)
                else:
                    client.create_model_version(name, source, run_id, tags=tags)
        for name, alias, version in ((FINETUNED, "champion", "2"), (FINETUNED, "best-56", "2"),
                                     (FINETUNED, "candidate", "5"), (PRETRAINED, "champion", "1")):
            client.set_registered_model_alias(name, alias, version)
    folder = tmp_path_factory.mktemp("listing")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["registry"].update({"pretrained_name": "listing-resnet{depth}-ml",
                               "finetuned_name": "listing-resnet{depth}-imagenet"})
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return {"folder": folder, "params": folder / "params.yaml", "run_id": run_id}


@pytest.fixture
def clients(team_server, registry, researcher) -> tuple:
    """MLflow's client and the REST reader, both as the researcher."""
    rest = RestRegistry(read_connection(team_server.url, {"MLFLOW_TRACKING_USERNAME": RESEARCHER,
                                                          "MLFLOW_TRACKING_PASSWORD": team_server.passwords[RESEARCHER]}))
    return researcher, rest


def run_command(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", COMMAND, "registry", "list", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_rest_reader_reads_what_the_mlflow_client_reads(registry, clients):
    mlflow_client, rest = clients
    config = load_params("registry", RegistryConfig, registry["params"])
    names = matching_names(rest, config)
    assert names == matching_names(mlflow_client, config) == [FINETUNED, PRETRAINED]
    table = render_versions(rest, names)
    assert table == render_versions(mlflow_client, names)
    assert model_rows(rest, names) == model_rows(mlflow_client, names)
    rows = [line.split() for line in table.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [(FINETUNED, str(n)) for n in range(1, 6)] + [
        (PRETRAINED, "1"), (PRETRAINED, "2")]
    assert rows[1][-1] == "best-56,champion" and rows[4][-1] == "candidate" and rows[5][-1] == "champion"
    assert "top1_56_clean" in table.splitlines()[0] and f"run {registry['run_id'][:8]}" in table
    assert rows[6][2:4] == ["step", "250"]  # read from the serving LoggedModel the version was built from
    for got, expected in zip(rest.search_model_versions(f"name = '{FINETUNED}'"),
                             mlflow_client.search_model_versions(f"name = '{FINETUNED}'")):
        assert (got.name, got.version, got.run_id, got.model_id, got.source, got.tags) == (
            expected.name, expected.version, expected.run_id, expected.model_id, expected.source, expected.tags)


def test_command_prints_the_client_table_without_importing_mlflow(team_server, registry, clients, tmp_path):
    """The console command as a team member runs it: credentials in ~/.mlflow/credentials, metrics files too."""
    mlflow_client, _ = clients
    home = tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    (home / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = {RESEARCHER}\n"
        f"mlflow_tracking_password = {team_server.passwords[RESEARCHER]}\n")
    done = run_command(["--params", str(registry["params"]), "--metrics", "metrics"],
                       team_server.client_env(None, home), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []  # no mlflow, tensorflow or keras
    names = [FINETUNED, PRETRAINED]
    expected_files = write_model_metrics(mlflow_client, names, tmp_path / "expected")
    assert done.stdout == (f"{render_versions(mlflow_client, names)}\n"
                           f"wrote {len(expected_files)} metrics files to metrics/ (dvc metrics show)\n")
    written = {p.name: p.read_text() for p in (tmp_path / "metrics").glob("*.json")}
    assert written == {p.name: p.read_text() for p in expected_files} and len(written) == 10  # 4 evaluated finetuned versions x 2 sizes, 2 pretrained


def test_pages_are_followed_to_the_end(team_server, registry, clients):
    mlflow_client, rest = clients
    paged = RestRegistry(rest.connection, page_size=2)
    requested: list[str] = []
    paged.session.hooks["response"].append(lambda response, *args, **kwargs: requested.append(response.url))
    versions = paged.search_model_versions(f"name = '{FINETUNED}'")
    assert sum("model-versions/search" in url for url in requested) == 3  # 2 + 2 + 1 of five versions
    assert sorted(v.version for v in versions) == ["1", "2", "3", "4", "5"]
    config = load_params("registry", RegistryConfig, registry["params"])
    assert matching_names(paged, config) == [FINETUNED, PRETRAINED]
    assert sum("registered-models/search" in url for url in requested) > 1  # the server holds more than 2 models
    assert render_versions(paged, [FINETUNED, PRETRAINED]) == render_versions(mlflow_client, [FINETUNED, PRETRAINED])


@pytest.mark.parametrize("account", ["no credentials", "wrong password"])
def test_unauthorized_is_one_line_without_the_password(team_server, registry, tmp_path, account):
    env = team_server.client_env(None, tmp_path)  # an empty home: no credentials file either
    wrong = "not-" + team_server.passwords[RESEARCHER]
    if account == "wrong password":
        env.update(MLFLOW_TRACKING_USERNAME=RESEARCHER, MLFLOW_TRACKING_PASSWORD=wrong)
    done = run_command(["--params", str(registry["params"])], env, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    message = done.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith(f"error: {team_server.url}: 401 unauthorized"), done.stderr
    assert wrong not in done.stderr and not any(secret in done.stderr for secret in team_server.secrets())


def test_an_account_without_grants_sees_no_model_and_is_refused_one_by_name(team_server, registry, tmp_path):
    """The server leaves what an account may not read out of searches, and refuses it by name with 403."""
    env = {**team_server.client_env(OUTSIDER), "HOME": str(tmp_path)}
    listed = run_command(["--params", str(registry["params"])], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "no registered versions (run the evaluate entry point first)\n"
    named = run_command(["--params", str(registry["params"]), "--name", FINETUNED], env, tmp_path)
    assert named.returncode == 2 and named.stdout == ""
    assert named.stderr == (f"error: {team_server.url}: 403 forbidden: user '{OUTSIDER}' may not read "
                            "registered-models/get of the model registry\n")
