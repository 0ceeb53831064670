"""The team's `mlflow server`, started through `mlimages team serve` on a loopback port, accounts set up.

Every secret is random per test run, so grepping a run's outputs for them finds only real leaks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from .postgres import PostgresCluster, free_port

BIN = Path(sys.executable).parent
RESEARCHER, DEPLOYER, OUTSIDER = "alice", "deploy", "mallory"
EXPERIMENT = "mlimages"
MODELS = ("mlimages-resnet50-ml", "mlimages-resnet50-imagenet", "team-matrix")


@dataclass
class TeamServer:
    url: str
    root: Path                   # config, passwords, artifacts destination, server log
    passwords: dict[str, str]    # admin, researcher, deployer, outsider
    db_password: str
    secret_key: str              # MLFLOW_FLASK_SERVER_SECRET_KEY
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def secrets(self) -> list[str]:
        return [*self.passwords.values(), self.db_password, self.secret_key]

    def env(self) -> dict[str, str]:
        """The server's environment: the secrets it needs and nothing of a client's."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        return {**base, "PGPASSWORD": self.db_password, "MLFLOW_AUTH_ADMIN_PASSWORD": self.passwords["admin"],
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key}

    def client_env(self, user: str | None, home: Path | None = None) -> dict[str, str]:
        """What a team member sets: the server's URL and their credentials (nothing else of MLflow)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
        env = {**base, "MLFLOW_TRACKING_URI": self.url, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        if home is not None:
            env["HOME"] = str(home)
        if user is not None and home is None:
            env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=self.passwords[user])
        return env

    def write_config(self, pg: PostgresCluster, port: int) -> Path:
        config = {
            "server": {
                "host": "127.0.0.1", "port": port, "workers": 2,
                "backend_store_uri": f"postgresql://mlflow@127.0.0.1:{pg.port}/mlflow",
                "auth_database_uri": f"postgresql://mlflow@127.0.0.1:{pg.port}/mlflow_auth",
                "artifacts_destination": str(self.artifacts),
                "allowed_hosts": [f"127.0.0.1:{port}", f"localhost:{port}"],
                "admin_username": "admin", "default_permission": "NO_PERMISSIONS", "auth_cache_s": 60,
            },
            "accounts": {"experiments": [EXPERIMENT], "models": list(MODELS), "researchers": [RESEARCHER],
                         "deployers": [DEPLOYER]},
        }
        path = self.root / "team.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self, config: Path) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(BIN / "mlimages"), "team", "serve", "--config", str(config)],
                                            env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # refused, or slow to answer while it starts under load
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server did not answer in 180 s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the launcher, which stops the server's whole group (workers, job runners) within
        its own bounds; SIGKILL to the launcher only if it overruns them. Returns once the port is free."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        port = int(self.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while port_in_use(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} still taken 30 s after the server stopped")
            time.sleep(0.2)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_team_server(pg: PostgresCluster, root: Path) -> TeamServer:
    """Database role and databases, server start, then `mlimages team setup` as the admin."""
    db_password = secrets.token_urlsafe(18)
    pg.create_owner("mlflow", db_password, ["mlflow", "mlflow_auth"])
    port = free_port()
    passwords = {user: secrets.token_urlsafe(18) for user in ("admin", RESEARCHER, DEPLOYER, OUTSIDER)}
    server = TeamServer(f"http://127.0.0.1:{port}", root, passwords, db_password, secrets.token_hex(24))
    config = server.write_config(pg, port)
    server.start(config)
    password_file = root / "passwords.txt"
    password_file.write_text("".join(f"{u}:{p}\n" for u, p in passwords.items() if u in (RESEARCHER, DEPLOYER)))
    password_file.chmod(0o600)
    env = {**server.client_env("admin"), "MLFLOW_TRACKING_USERNAME": "admin"}
    setup = [str(BIN / "mlimages"), "team", "setup", "--config", str(config), "--passwords", str(password_file)]
    done = subprocess.run(setup, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"team setup failed:\n{done.stdout}\n{done.stderr}")
    created = requests.post(f"{server.url}/api/2.0/mlflow/users/create", auth=("admin", passwords["admin"]),
                            json={"username": OUTSIDER, "password": passwords[OUTSIDER]}, timeout=30)
    created.raise_for_status()  # an account with no grant at all
    return server
