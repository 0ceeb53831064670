"""Evaluate checkpoints, record the results and move `champion` (MLproject entry point `evaluate`).

    python pipelines/evaluate.py --model-uri runs:/RUN_ID --out reports/eval/finetune.json

`--model-uri` takes a training run (every kept checkpoint is registered, then evaluated), a
LoggedModel (models:/m-ID), or a registered version (models:/NAME/VERSION, models:/NAME@ALIAS).
`--leaked` (the dedup stage's list; optional at its default path, "" for none) adds the clean score.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import mlflow

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.evaluate import EvaluateConfig, trainable_classes
from mlimages.stats import StatsConfig
from mlimages.tracking.evaluation import DEFAULT_LEAKED, evaluate_uri, find_leaked_file, write_results
from mlimages.tracking.lineage import lineage_tags
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.names import EVALUATE_TASK, TASK_TAG
from mlimages.tracking.runs import configure_tracking, use_experiment


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="runs:/RUN_ID, models:/m-ID, models:/NAME/VERSION or @ALIAS")
    parser.add_argument("--records", default="", help="record folder; default by task (ml-images or imagenet val)")
    parser.add_argument("--train-records", default="", help="multi-label training records: adds *_trainable metrics")
    parser.add_argument("--leaked", default=DEFAULT_LEAKED, help="dedup stage's leaked.tsv: adds *_clean metrics")
    parser.add_argument("--out", default="reports/eval.json", help="JSON file of the results")
    parser.add_argument("--params", default="params.yaml", help="params file; reads `evaluate`, `registry`, `stats`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_params("evaluate", EvaluateConfig, args.params)
    registry_config = load_params("registry", RegistryConfig, args.params)
    leaked = find_leaked_file(args.leaked)
    stats = load_params("stats", StatsConfig, args.params) if args.train_records else None
    trainable = trainable_classes(args.train_records, stats.trainable_min_images) if stats else None
    configure_tracking()
    if not any(os.environ.get(k) for k in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")):
        use_experiment("mlimages")
    with mlflow.start_run() as run:
        mlflow.set_tags({**lineage_tags(), TASK_TAG: EVALUATE_TASK})
        given = {"model_uri": args.model_uri, "leaked": args.leaked,
                 **{f"evaluate.{key}": value for key, value in vars(config).items()}}
        mlflow.log_params({k: v for k, v in given.items() if k not in run.data.params})  # `mlflow run` quotes '' its way
        results = evaluate_uri(args.model_uri, config, registry_config, args.records or None, trainable, leaked)
    write_results(results, args.model_uri, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
