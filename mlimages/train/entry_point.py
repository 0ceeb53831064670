"""What the `pretrain` and `finetune` entry points share: arguments, config, exit statuses.

The two scripts differ only in their task (its config class, hence its params section and record
kind) and in finetune's `--init-model`. Keeping the rest here keeps them from drifting apart: the
same `--KEY VALUE` overrides, and the same exit statuses, which a cluster scheduler or a retry loop
reads: 2 bad input (`exit_on_input_error`) or credentials the tracking server refused, 3 the training
diverged, 4 a worker was lost, 5 the tracking server stayed away (for 4 and 5, rerun the same command to
resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mlimages.config import DEFAULT_PARAMS, load_params
from mlimages.tasks import LABEL_KIND
from mlimages.tracking.outbox import TrackingLost
from mlimages.tracking.runs import configure_tracking, describe_server_failure
from mlimages.train.config import TrainConfig, parse_overrides
from mlimages.train.fit import TrainingDiverged, fit
from mlimages.train.peers import EXIT_WORKER_LOST, WorkerLost, say_once

EXIT_REFUSED = 2  # as bad input: the credentials need changing, not a rerun
EXIT_DIVERGED = 3
EXIT_TRACKING_LOST = 5


def training_parser(description: str, config_class: type[TrainConfig]) -> argparse.ArgumentParser:
    """The arguments both entry points take; a script adds its own before `read_training_args`."""
    kind = f"{LABEL_KIND[config_class.task]}-label record folder"
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--train", required=True, help=f"{kind} (training split)")
    parser.add_argument("--val", required=True, help=f"{kind} (validation split)")
    parser.add_argument("--out", required=True, help="checkpoints, model.keras and summary.json")
    parser.add_argument("--params", default=DEFAULT_PARAMS,
                        help=f"params file; reads its `{config_class.task}` section")
    return parser


def read_training_args(
    parser: argparse.ArgumentParser, config_class: type[TrainConfig], argv: list[str] | None
) -> tuple[argparse.Namespace, TrainConfig]:
    """Parse `argv`; every further ``--KEY VALUE`` overrides that key of the task's params section."""
    args, extra = parser.parse_known_args(argv)
    return args, load_params(config_class.task, config_class, args.params, parse_overrides(extra))


def run_training(config: TrainConfig, train: str | Path, val: str | Path, out: str | Path,
                 init_model: str | None = None) -> int:
    """Train with MLflow tracking; return the exit status (0 or one of the `EXIT_*` above)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    configure_tracking()
    try:
        fit(config, train, val, out, init_model=init_model)
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except WorkerLost as error:
        say_once(str(error))  # unless the watchdog, stopping the process, said it first
        return EXIT_WORKER_LOST
    except TrackingLost as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_TRACKING_LOST
    except Exception as error:
        failure = describe_server_failure(error)  # a call outside the outbox: the run's start
        if failure is None:
            raise
        print(f"error: {failure[0]}", file=sys.stderr)
        return EXIT_TRACKING_LOST if failure[1] else EXIT_REFUSED
    return 0
