"""`mlimages team serve`: the team's `mlflow server`, with accounts, on PostgreSQL.

It runs `mlflow server --app-name basic-auth` with proxied artifacts (`--serve-artifacts`,
clients never see the destination), `--allowed-hosts`, and the auth app's own settings written to
a private, temporary `basic_auth.ini` (the auth app reads its database URI and default permission
only from such a file, named by `MLFLOW_AUTH_CONFIG_PATH`). It refuses to start without an admin
password and a Flask secret key: MLflow creates the admin account from `MLFLOW_AUTH_ADMIN_PASSWORD`
on the first start, and a default password would be the same on every installation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from mlimages.errors import InputError
from mlimages.team.config import ServerConfig

REQUIRED_SECRETS = {
    "MLFLOW_AUTH_ADMIN_PASSWORD": "the admin account's password (MLflow ships none, and neither do we)",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "the key that signs the auth app's CSRF tokens (the same on every server)",
}

_log = logging.getLogger(__name__)


def check_secrets(environ: dict[str, str]) -> None:
    """Raise `InputError` naming the first required secret that is unset or empty."""
    for name, why in REQUIRED_SECRETS.items():
        if not environ.get(name):
            raise InputError(f"is not set: {why}; refusing to start", name)


def artifacts_destination(config: ServerConfig) -> str:
    """The destination as `mlflow server` wants it: a URI as given, a directory made absolute
    (the server creates it on the first upload)."""
    if urlsplit(config.artifacts_destination).scheme not in ("", "file"):
        return config.artifacts_destination
    return str(Path(config.artifacts_destination.removeprefix("file://")).expanduser().resolve())


def build_command(config: ServerConfig) -> list[str]:
    """The `mlflow server` command line; it holds no secret."""
    return [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", config.backend_store_uri,
        "--serve-artifacts", "--artifacts-destination", artifacts_destination(config),
        "--host", config.host, "--port", str(config.port), "--workers", str(config.workers),
        "--allowed-hosts", ",".join(config.allowed_hosts),
    ]


def format_auth_ini(config: ServerConfig) -> str:
    """The basic-auth app's settings; the admin password stays in the environment.

    MLflow reads the file with `configparser`, where `%` starts an interpolation: a percent-encoded
    URI has its `%` doubled.
    """
    return "\n".join([
        "[mlflow]",
        f"default_permission = {config.default_permission}",
        f"database_uri = {config.auth_database_uri.replace('%', '%%')}",
        f"admin_username = {config.admin_username.replace('%', '%%')}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        f"auth_cache_ttl_seconds = {config.auth_cache_s}",
        "",
    ])


def serve(config: ServerConfig, environ: dict[str, str] | None = None, grace_s: float = 10.0) -> int:
    """Run the server until it exits or this process gets SIGTERM/SIGINT; returns its exit status.

    The server runs in a process group of its own, and a signal goes to the whole group: `mlflow
    server` spawns workers and job runners that a signal to it alone would leave running (holding
    the port and the database). A signalled server gets `grace_s` to finish the requests in flight
    (uvicorn waits for them without a bound); then the group is killed. This returns only once no
    process of the group is left, so a server started next on the same port finds it free.
    """
    environ = dict(os.environ if environ is None else environ)
    check_secrets(environ)
    command = build_command(config)
    with tempfile.TemporaryDirectory(prefix="mlimages-auth-") as private:  # mode 0700
        ini = Path(private) / "basic_auth.ini"
        ini.write_text(format_auth_ini(config), encoding="utf-8")
        environ["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        _log.info("starting: %s", " ".join(command))
        child = subprocess.Popen(command, env=environ, start_new_session=True)
        signalled = []

        def forward(signum, frame):  # the server stops its workers and exits; the temp folder goes with us
            signalled.append(signum)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        try:
            while not signalled:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return child.wait(timeout=0.5)
            return child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _log.warning("the server did not stop within %.0f s of the signal; killing it", grace_s)
            return -signal.SIGKILL
        finally:
            stop_group(child, grace_s)


def stop_group(leader: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to what is left of the process group `leader` leads, SIGKILL after `grace_s`, then wait
    (at most `grace_s` more) until the group is gone: a killed process holds its sockets until it exits."""
    try:
        os.killpg(leader.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _group_gone(leader, grace_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    if not _group_gone(leader, grace_s):
        _log.warning("processes of group %d are still there after SIGKILL", leader.pid)


def _group_gone(leader: subprocess.Popen, wait_s: float) -> bool:
    """Whether the group `leader` leads has no process left within `wait_s` seconds (the leader is
    reaped on the way: unreaped, it would stay in the group as a zombie)."""
    deadline = time.monotonic() + wait_s
    while True:
        leader.poll()
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
