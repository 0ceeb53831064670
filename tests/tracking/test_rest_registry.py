"""The REST reader's settings: MLflow's variables and credentials file, read as MLflow reads them.

Reading a real server is tested against the team server (`tests/team/test_registry_rest.py`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlimages.errors import InputError
from mlimages.tracking.rest_registry import public_url, read_connection, registry_uri, serves_rest

URL = "http://127.0.0.1:5000"
REPO = Path(__file__).resolve().parents[2]


def write_credentials(home: Path, text: str) -> Path:
    (home / ".mlflow").mkdir(parents=True, exist_ok=True)
    (home / ".mlflow" / "credentials").write_text(text, encoding="utf-8")
    return home


def test_the_environment_wins_over_the_credentials_file_key_by_key(tmp_path):
    home = write_credentials(tmp_path, "[mlflow]\nmlflow_tracking_username = alice\nmlflow_tracking_password = pw1\n")
    assert read_connection(URL, {}, home).basic_auth == ("alice", "pw1")
    assert read_connection(URL, {"MLFLOW_TRACKING_PASSWORD": "pw2"}, home).basic_auth == ("alice", "pw2")
    both = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "pw3"}
    assert read_connection(URL, both, home).basic_auth == ("bob", "pw3")


def test_a_token_is_sent_as_bearer_only_without_a_user_and_password(tmp_path):
    token_only = read_connection(URL, {"MLFLOW_TRACKING_TOKEN": "t0k"}, tmp_path)
    assert token_only.basic_auth is None and token_only.headers() == {"Authorization": "Bearer t0k"}
    both = read_connection(URL, {"MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_USERNAME": "a",
                                 "MLFLOW_TRACKING_PASSWORD": "b"}, tmp_path)
    assert both.basic_auth == ("a", "b") and "Authorization" not in both.headers()
    assert read_connection(URL, {"MLFLOW_WORKSPACE": "vision"}, tmp_path).headers() == {"X-MLFLOW-WORKSPACE": "vision"}


def test_tls_settings_are_read_as_mlflow_reads_them(tmp_path):
    """What they do against a real HTTPS server: tests/tracking/test_registry_tls.py."""
    assert read_connection(URL, {}, tmp_path).verify is True
    assert read_connection(URL, {"MLFLOW_TRACKING_INSECURE_TLS": "TRUE"}, tmp_path).verify is False
    custom = read_connection(URL, {"MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem",
                                   "MLFLOW_TRACKING_CLIENT_CERT_PATH": "/me.pem"}, tmp_path)
    assert (custom.verify, custom.client_cert) == ("/ca.pem", "/me.pem")


@pytest.mark.parametrize("environ, where", [
    ({"MLFLOW_TRACKING_INSECURE_TLS": "true", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem"}, "environment"),
    ({"MLFLOW_TRACKING_INSECURE_TLS": "yes"}, "MLFLOW_TRACKING_INSECURE_TLS"),
    ({"MLFLOW_HTTP_REQUEST_TIMEOUT": "soon"}, "MLFLOW_HTTP_REQUEST_TIMEOUT"),
])
def test_contradictory_or_malformed_settings_are_named(tmp_path, environ, where):
    with pytest.raises(InputError) as error:
        read_connection(URL, environ, tmp_path)
    assert error.value.where == where


def test_a_broken_credentials_file_is_named(tmp_path):
    write_credentials(tmp_path, "mlflow_tracking_username = alice\n")  # no section header
    with pytest.raises(InputError) as error:
        read_connection(URL, {}, tmp_path)
    assert error.value.where == str(tmp_path / ".mlflow" / "credentials")


def test_the_registry_uri_and_which_stores_are_read_over_rest():
    assert registry_uri({"MLFLOW_TRACKING_URI": URL}) == URL
    assert registry_uri({"MLFLOW_TRACKING_URI": URL, "MLFLOW_REGISTRY_URI": "sqlite:///r.db"}) == "sqlite:///r.db"
    assert registry_uri({}) == ""
    assert serves_rest(URL, {}) and serves_rest("https://mlflow.example", {})
    assert not serves_rest("sqlite:///mlflow.db", {}) and not serves_rest("", {})
    assert not serves_rest(URL, {"MLFLOW_TRACKING_AUTH": "my_plugin"})  # only MLflow's client has the plugins


def test_messages_never_show_credentials_of_the_url():
    assert public_url("https://alice:s3cret@mlflow.example:8443/prefix") == "https://mlflow.example:8443/prefix"
    assert public_url(URL) == URL


def test_an_absent_server_is_one_line_at_once(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "MLFLOW_TRACKING_URI": f"http://alice:s3cret@127.0.0.1:{port}"}
    done = subprocess.run([sys.executable, "-m", "mlimages.cli", "registry", "list", "--params",
                           str(REPO / "params.yaml")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"error: http://127.0.0.1:{port}: cannot reach the tracking server (Connection refused)\n"
