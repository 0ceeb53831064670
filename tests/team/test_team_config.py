"""The team config, the launcher's refusals and the auth settings it writes (no server needed)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlimages.errors import InputError
from mlimages.team.accounts import plan_grants, read_passwords
from mlimages.team.config import AccountsConfig, ServerConfig, load_accounts_config, load_server_config
from mlimages.team.server import build_command, check_secrets, format_auth_ini

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "team" / "team.yaml"


def write_config(path: Path, **server) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    data["server"].update(server)
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_repository_config_loads_and_its_command_holds_no_secret():
    config = load_server_config(CONFIG)
    command = build_command(config)
    assert command[3:6] == ["server", "--app-name", "basic-auth"] and "--serve-artifacts" in command
    assert command[command.index("--allowed-hosts") + 1] == "mlflow.example.internal,mlflow.example.internal:5000"
    accounts = load_accounts_config(CONFIG)
    assert "mlimages" in accounts.experiments and accounts.deployers


@pytest.mark.parametrize("section, cls", [("server", ServerConfig), ("accounts", AccountsConfig)])
def test_team_yaml_is_the_one_place_its_values_live(section, cls):
    fields = dataclasses.fields(cls)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    assert set(yaml.safe_load(CONFIG.read_text())[section]) == {f.name for f in fields}


@pytest.mark.parametrize("field, value, message", [
    ("backend_store_uri", "postgresql://mlflow:hunter2@db/mlflow", "server.backend_store_uri: the URI holds a password"),
    ("allowed_hosts", [], "server.allowed_hosts: list the host names"),
    ("default_permission", "ALL", "server.default_permission: must be one of"),
    ("admin_password", "x", "unknown key(s) admin_password"),
])
def test_bad_settings_name_their_field(tmp_path, field, value, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_server_config(write_config(tmp_path / "team.yaml", **{field: value}))
    assert "hunter2" not in str(error.value)


def test_the_auth_settings_read_back_through_mlflow(tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    uri = "postgresql://ml%40flow@db.example.internal:5432/mlflow_auth"  # a percent-encoded user name
    config = load_server_config(write_config(tmp_path / "team.yaml", auth_cache_s=30, auth_database_uri=uri))
    (tmp_path / "basic_auth.ini").write_text(format_auth_ini(config))
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "basic_auth.ini"))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    read = read_auth_config()
    assert read.database_uri == config.auth_database_uri and read.default_permission == "NO_PERMISSIONS"
    assert read.admin_username == "admin" and read.admin_password is None and read.auth_cache_ttl_seconds == 30


@pytest.mark.parametrize("missing", ["MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"])
def test_serve_refuses_to_start_without_a_secret(tmp_path, missing):
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-admin-password", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}
    with pytest.raises(InputError, match=f"{missing}: is not set"):
        check_secrets({**env, missing: ""})
    command = [str(Path(sys.executable).parent / "mlimages"), "team", "serve", "--config", str(CONFIG)]
    done = subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env, missing: ""}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {missing}: is not set")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_passwords_file_must_be_private_and_bad_lines_are_named_without_their_text(tmp_path):
    path = tmp_path / "passwords.txt"
    path.write_text("# team\nalice:s3cret:with:colons\n\nbob-no-password\n")
    path.chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        read_passwords(path)
    path.chmod(0o600)
    with pytest.raises(InputError, match=r"passwords.txt:4: expected user:password"):
        read_passwords(path)
    path.write_text("alice:s3cret:with:colons\n")
    assert read_passwords(path) == {"alice": "s3cret:with:colons"}


def test_researchers_edit_and_deployers_read_everything_of_the_project():
    accounts = load_accounts_config(CONFIG)
    grants = plan_grants(accounts, {"mlimages": "7"})
    per_user = {(g.username, g.resource_type, g.resource_id): g.permission for g in grants}
    assert per_user[("alice", "experiment", "7")] == "EDIT" and per_user[("deploy", "experiment", "7")] == "READ"
    assert {per_user[("deploy", "registered_model", m)] for m in accounts.models} == {"READ"}
    assert len(grants) == (len(accounts.researchers) + len(accounts.deployers)) * (1 + len(accounts.models))
