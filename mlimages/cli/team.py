"""`mlimages team serve|setup`: run the team's tracking server, create its accounts and grants."""

from __future__ import annotations

import argparse
import os

DEFAULT_CONFIG = "deploy/team/team.yaml"


def register(subparsers) -> None:
    parser = subparsers.add_parser("team", help="the team's MLflow server on PostgreSQL, with accounts")
    commands = parser.add_subparsers(dest="team_command", required=True)
    serve = commands.add_parser("serve", help="run `mlflow server --app-name basic-auth` from the config")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help="team.yaml (its `server:` section)")
    serve.set_defaults(func=run_server)
    setup = commands.add_parser("setup", help="create experiments, models, users and grants (idempotent)")
    setup.add_argument("--config", default=DEFAULT_CONFIG, help="team.yaml (its `accounts:` section)")
    setup.add_argument("--passwords", help="file of `user:password` lines for users not created yet (chmod 600)")
    setup.set_defaults(func=run_setup)


def run_server(args: argparse.Namespace) -> int:
    from mlimages.team.config import load_server_config
    from mlimages.team.server import serve

    return serve(load_server_config(args.config))


def run_setup(args: argparse.Namespace) -> int:
    from mlimages.errors import InputError
    from mlimages.team.accounts import read_passwords, setup_accounts
    from mlimages.team.config import load_accounts_config

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        raise InputError("must name the team server (http(s)://HOST:PORT)", "MLFLOW_TRACKING_URI")
    passwords = read_passwords(args.passwords) if args.passwords else {}
    grants = setup_accounts(load_accounts_config(args.config), passwords, uri)
    print(f"{len(grants)} grants set")
    return 0
