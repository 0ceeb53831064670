"""`mlimages registry list` against a tracking server over HTTPS that requires a client certificate.

A real `mlflow server` (uvicorn with TLS, on a SQLite store) on loopback, with a self-signed server
certificate and a required client certificate made by `openssl` for the test. The REST reader must
take MLflow's own TLS settings: the server's certificate (`MLFLOW_TRACKING_SERVER_CERT_PATH`), the
client's (`MLFLOW_TRACKING_CLIENT_CERT_PATH`), or no verification (`MLFLOW_TRACKING_INSECURE_TLS`);
what it prints must be what MLflow's client prints from the store itself, and a refusal is one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.team.postgres import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "mlimages-resnet50-ml"  # params.yaml's pretrained name at depth 50

pytestmark = pytest.mark.slow  # starts an mlflow server


def make_certificate(folder: Path, name: str, subject_alt_name: str) -> Path:
    """A self-signed certificate and its key in one PEM file (its own CA)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName={subject_alt_name}"],
                   check=True, capture_output=True)
    both = folder / f"{name}.pem"
    both.write_text(cert.read_text() + key.read_text())
    return both


def fill_registry(uri: str) -> None:
    """One evaluated version of `MODEL` with an alias, written straight into the store."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("tls", artifact_location="file:///nonexistent/tls")
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id,
                                tags={"eval.map_all": "0.42", "mlimages.training_data": "ml-images/train@1a2b3c4d"})
    client.set_registered_model_alias(MODEL, "champion", "1")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test's certificates")
    folder = tmp_path_factory.mktemp("tls")
    server_pem = make_certificate(folder, "server", "IP:127.0.0.1")
    client_pem = make_certificate(folder, "client", "DNS:client")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    fill_registry(store)
    port = free_port()
    uvicorn = (f"--ssl-keyfile {folder / 'server.key'} --ssl-certfile {folder / 'server.crt'} "
               f"--ssl-ca-certs {folder / 'client.crt'} --ssl-cert-reqs 2")  # 2: a client certificate is required
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--uvicorn-opts", uvicorn]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with (folder / "server.log").open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, folder, server_pem, client_pem)
        yield {"url": url, "store": store, "server_pem": server_pem, "client_pem": client_pem, "folder": folder}
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def wait_until_up(url: str, process: subprocess.Popen, folder: Path, server_pem: Path, client_pem: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
        try:
            if requests.get(f"{url}/health", verify=server_pem, cert=str(client_pem), timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no answer from {url} in 180 s:\n{(folder / 'server.log').read_text()[-3000:]}")


def registry_list(uri: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    """The command as a user runs it; their REQUESTS_CA_BUNDLE must not override MLflow's settings."""
    import certifi

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri,
           "REQUESTS_CA_BUNDLE": certifi.where(), **settings}
    return subprocess.run([str(BIN / "mlimages"), "registry", "list", "--params", str(REPO / "params.yaml")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_servers_and_the_clients_certificates_read_what_the_store_holds(tls_server):
    local = registry_list(tls_server["store"], tls_server["folder"])
    assert local.returncode == 0 and MODEL in local.stdout and "42.00" in local.stdout, local.stderr
    remote = registry_list(tls_server["url"], tls_server["folder"],
                           MLFLOW_TRACKING_SERVER_CERT_PATH=str(tls_server["server_pem"]),
                           MLFLOW_TRACKING_CLIENT_CERT_PATH=str(tls_server["client_pem"]))
    assert (remote.returncode, remote.stdout) == (0, local.stdout), remote.stderr
    insecure = registry_list(tls_server["url"], tls_server["folder"], MLFLOW_TRACKING_INSECURE_TLS="true",
                             MLFLOW_TRACKING_CLIENT_CERT_PATH=str(tls_server["client_pem"]))
    assert (insecure.returncode, insecure.stdout) == (0, local.stdout), insecure.stderr


@pytest.mark.parametrize("settings, said", [
    ({"MLFLOW_TRACKING_CLIENT_CERT_PATH": "client"},
     "the server's certificate is not trusted; see MLFLOW_TRACKING_SERVER_CERT_PATH"),
    ({"MLFLOW_TRACKING_SERVER_CERT_PATH": "server"},
     "if it requires a client certificate, see MLFLOW_TRACKING_CLIENT_CERT_PATH"),
    ({"MLFLOW_TRACKING_SERVER_CERT_PATH": "server", "MLFLOW_TRACKING_INSECURE_TLS": "true"},
     "set only one of MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH"),
])
def test_a_refused_connection_is_one_line(tls_server, settings, said):
    paths = {"client": str(tls_server["client_pem"]), "server": str(tls_server["server_pem"])}
    done = registry_list(tls_server["url"], tls_server["folder"], **{k: paths.get(v, v) for k, v in settings.items()})
    assert done.returncode != 0 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr
