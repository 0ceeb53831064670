"""The team deployment: one MLflow tracking server with accounts, on PostgreSQL.

`config` reads `deploy/team/team.yaml`, `server` starts `mlflow server` with the basic-auth app
from it (`mlimages team serve`), `accounts` creates the project's experiments, registered
models, users and grants up front (`mlimages team setup`). Secrets never live in the config:
they come from the environment or the usual password files.
"""
