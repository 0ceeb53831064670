"""A throwaway PostgreSQL cluster from the distribution's binaries, on a free loopback port.

`initdb` and the server refuse to run as root, so as root they run as the unprivileged `postgres`
user (Debian's packages create it) in a folder that user owns. Local socket connections are
trusted (the superuser sets things up through them); TCP connections need a password, as on a
real server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_bin() -> Path | None:
    """The newest installed PostgreSQL bin folder, or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl start in a temporary folder; `stop()` removes everything."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="mlimages-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, tool: str, *args: str) -> str:
        done = subprocess.run([*self.as_user, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                              cwd=self.root, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self._run("initdb", "-D", str(self.root / "data"), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser over the local socket."""
        return self._run("psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-Atc", statement)

    def create_owner(self, user: str, password: str, databases: list[str]) -> None:
        """A login role with a password, owning each of `databases` (created empty)."""
        self.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        for name in databases:
            self.sql(f"CREATE DATABASE {name} OWNER {user}")

    def dump(self, database: str) -> str:
        """The whole database as SQL text (`pg_dump`), to search what the server stored."""
        return self._run("pg_dump", "-h", str(self.root), "-p", str(self.port), "-U", "postgres", database)

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
