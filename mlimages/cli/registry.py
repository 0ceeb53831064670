"""`mlimages registry list`: the registered checkpoints side by side, like the paper's results table.

Against a tracking server (``http(s)://``) the registry is read over MLflow's REST API without
importing MLflow (`mlimages.tracking.rest_registry`): the import took most of the command's time.
Local stores (``sqlite:``, files) are read by MLflow's client; both feed the same table code.
"""

from __future__ import annotations

import argparse
import logging

from mlimages.config import load_params
from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.rest_registry import RestRegistry, public_url, read_connection, registry_uri, serves_rest
from mlimages.tracking.results_table import matching_names, render_versions

_log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("registry", help="list registered checkpoints with their metrics")
    commands = parser.add_subparsers(dest="registry_command", required=True)
    show = commands.add_parser("list", help="versions side by side: checkpoint, data, top-1/top-5, mAP, aliases")
    show.add_argument("--name", action="append", default=[], help="registered model(s); default: both from params")
    show.add_argument("--params", default="params.yaml", help="the params file naming the registered models")
    show.add_argument("--metrics", default="", metavar="DIR",
                      help="also write each version's DVC metrics file there (metrics: after an evaluation by hand)")
    show.set_defaults(func=print_versions)


def print_versions(args: argparse.Namespace) -> int:
    config = load_params("registry", RegistryConfig, args.params)
    client = open_registry()
    names = args.name or matching_names(client, config)
    print(render_versions(client, names) or "no registered versions (run the evaluate entry point first)")
    if args.metrics:
        from mlimages.tracking.model_metrics import write_model_metrics

        written = write_model_metrics(client, names, args.metrics)
        print(f"wrote {len(written)} metrics files to {args.metrics}/ (dvc metrics show)")
    return 0


def open_registry():
    """The registry's reader: over REST for a tracking server, else MLflow's client of the configured store."""
    uri = registry_uri()
    if serves_rest(uri):
        _log.debug("reading the registry of %s over REST", public_url(uri))
        return RestRegistry(read_connection(uri))
    import mlflow

    from mlimages.tracking.runs import configure_tracking

    configure_tracking()
    return mlflow.MlflowClient()
