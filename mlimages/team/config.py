"""The team deployment's settings: `deploy/team/team.yaml`, one frozen dataclass per section.

Secrets are not settings. The admin password, the Flask secret key and the database password
come from the environment (or PostgreSQL's own `~/.pgpass`), so the config file can be committed
and a URI never carries a password into a process listing or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mlimages.config import load_params
from mlimages.errors import InputError

Permission = Literal["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"]


@dataclass(frozen=True)
class ServerConfig:
    """The `server:` section: how `mlflow server` runs.

    Attributes:
        backend_store_uri: runs, metrics and the registry (``postgresql://USER@HOST:PORT/DB``).
        auth_database_uri: users and grants of the basic-auth app (a database of its own).
        artifacts_destination: where the server keeps artifacts: a directory or ``s3://bucket/prefix``.
            Clients never see it; they upload and download through the server.
        allowed_hosts: Host headers the server answers (its DNS names, ``name:port``).
        host, port: the interface and port to listen on.
        workers: server worker processes.
        admin_username: the admin account; its password comes from the environment only.
        default_permission: what a user may do where no grant says otherwise.
        auth_cache_s: how long a worker trusts a password it has checked. Each check is a
            deliberately slow PBKDF2 hash (about half a second on a busy 2-core host), paid by
            every request without the cache; with it, a changed or revoked password can still
            work for up to this long on the workers that did not handle the change. 0: no cache.
    """

    backend_store_uri: str
    auth_database_uri: str
    artifacts_destination: str
    allowed_hosts: tuple[str, ...]
    host: str
    port: int
    workers: int
    admin_username: str
    default_permission: Permission
    auth_cache_s: int


@dataclass(frozen=True)
class AccountsConfig:
    """The `accounts:` section: what `mlimages team setup` creates and who may do what.

    Attributes:
        experiments: the project's MLflow experiments, created up front.
        models: the project's registered models, created up front.
        researchers: accounts that create runs, register versions and move aliases (EDIT).
        deployers: accounts that read and load models only (READ).
    """

    experiments: tuple[str, ...]
    models: tuple[str, ...]
    researchers: tuple[str, ...]
    deployers: tuple[str, ...]


def load_server_config(path: str | Path) -> ServerConfig:
    """Read and check the `server:` section; a URI holding a password is an error."""
    config = load_params("server", ServerConfig, path)
    for field in ("backend_store_uri", "auth_database_uri"):
        check_no_password(getattr(config, field), f"{path}: server.{field}")
    if not config.allowed_hosts:
        raise InputError("list the host names clients use (DNS-rebinding protection)", f"{path}: server.allowed_hosts")
    return config


def load_accounts_config(path: str | Path) -> AccountsConfig:
    return load_params("accounts", AccountsConfig, path)


def check_no_password(uri: str, where: str) -> None:
    """Refuse a database URI with a password in it: it would show in `ps` and in logs."""
    if urlsplit(uri).password is not None:
        raise InputError("the URI holds a password: give it in PGPASSWORD or ~/.pgpass instead", where)
