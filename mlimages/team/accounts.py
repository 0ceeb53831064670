"""`mlimages team setup`: the project's experiments, registered models, users and grants, up front.

Run by the admin (MLflow's usual `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`, or
`~/.mlflow/credentials`) against the running server, as often as wanted: what exists is kept, a
user who exists keeps their password, and every grant is set again to what the config says.

Why up front: with `default_permission: NO_PERMISSIONS` an account sees only what it was granted,
and a grant names an existing experiment or model. Researchers get EDIT (create runs and logged
models, register versions, move aliases; not delete); deployment accounts get READ (search and
load models; every write is a 403).
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from mlimages.errors import InputError
from mlimages.team.config import AccountsConfig

RESEARCHER_PERMISSION = "EDIT"
DEPLOYER_PERMISSION = "READ"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    """One user's permission on one experiment (by id) or registered model (by name)."""

    username: str
    resource_type: str  # "experiment" or "registered_model"
    resource_id: str
    permission: str


def read_passwords(path: str | Path) -> dict[str, str]:
    """`user:password` lines of a file only its owner can read (blank and `#` lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("passwords file not found", str(path))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError("passwords file is readable by others: chmod 600 it", str(path))
    passwords = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise InputError("expected user:password", f"{path}:{number}")  # the line itself is never shown
        passwords[user.strip()] = password
    return passwords


def plan_grants(config: AccountsConfig, experiment_ids: dict[str, str]) -> list[Grant]:
    """Every grant the config asks for: researchers EDIT, deployers READ, on every project resource."""
    grants = []
    for users, permission in ((config.researchers, RESEARCHER_PERMISSION), (config.deployers, DEPLOYER_PERMISSION)):
        for user in users:
            grants += [Grant(user, "experiment", experiment_ids[name], permission) for name in config.experiments]
            grants += [Grant(user, "registered_model", name, permission) for name in config.models]
    return grants


def setup_accounts(config: AccountsConfig, passwords: dict[str, str], tracking_uri: str) -> list[Grant]:
    """Create what is missing and set every grant; returns the grants set."""
    import mlflow
    from mlflow.server import get_app_client

    client = mlflow.MlflowClient(tracking_uri)
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    experiment_ids = {name: ensure_experiment(client, name) for name in config.experiments}
    for name in config.models:
        ensure_registered_model(client, name)
    for user in dict.fromkeys(config.researchers + config.deployers):
        ensure_user(auth, user, passwords)
    grants = plan_grants(config, experiment_ids)
    for grant in grants:
        set_grant(auth, grant)
    _log.info("%d experiments, %d models, %d grants", len(experiment_ids), len(config.models), len(grants))
    return grants


def set_grant(auth, grant: Grant) -> None:
    """Grant, or replace an existing grant of the same user and resource (MLflow refuses a second grant).

    Replacing rather than skipping makes a rerun set what the config says now, and covers a grant
    request that reached the server but whose answer was lost (the client retries it).
    """
    from mlflow.exceptions import MlflowException

    args = (grant.username, grant.resource_type, grant.resource_id)
    try:
        auth.grant_user_permission(*args, grant.permission)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(*args)
        auth.grant_user_permission(*args, grant.permission)


def ensure_experiment(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    _log.info("creating experiment %s", name)
    return client.create_experiment(name)


def ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        _log.info("creating registered model %s", name)
        client.create_registered_model(name)


def ensure_user(auth, username: str, passwords: dict[str, str]) -> None:
    """Create `username` unless it exists; an existing user's password is left as it is."""
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
        return
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    if username not in passwords:
        raise InputError(f"user {username} does not exist yet and the passwords file has no line for it")
    _log.info("creating user %s", username)
    auth.create_user(username, passwords[username])
