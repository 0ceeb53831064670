"""Session fixtures of the team tests: a real PostgreSQL cluster and the team's real MLflow server."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from .postgres import PostgresCluster, find_bin
from .team_server import RESEARCHER, TeamServer, start_team_server


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on a free loopback port, stopped and removed afterwards."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql (make test installs them)")
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def team_server(postgres) -> TeamServer:
    """`mlimages team serve` on loopback with basic-auth, set up by `mlimages team setup`."""
    root = Path(tempfile.mkdtemp(prefix="mlimages-team-"))
    server = None
    try:
        server = start_team_server(postgres, root)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def researcher(team_server, monkeypatch):
    """This process acts as the researcher, as a team member's shell does."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", RESEARCHER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", team_server.passwords[RESEARCHER])
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(team_server.url)
    yield mlflow.MlflowClient(team_server.url)
    mlflow.set_tracking_uri(previous)
