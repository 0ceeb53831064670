"""`make demo` experiments: pretrain -> evaluate -> finetune (pretrained and from scratch) -> evaluate.

Runs the MLproject entry points on the demo world made by `dvc repro`, then prints the registry
side by side (scratch vs pretrained) and how to open the UI and serve the champion.
"""

from __future__ import annotations

import argparse
import logging
import sys

import mlflow

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.demo.chain import EXPERIMENT, run_demo
from mlimages.tracking.model_metrics import write_model_metrics
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.results_table import render_versions
from mlimages.tracking.runs import configure_tracking, runs_table_url


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file of every entry point; reads `registry`")
    parser.add_argument("--records", default="data/tfrecords", help="holds ml-images/ and imagenet/ record folders")
    parser.add_argument("--models", default="models", help="training output folders go here")
    parser.add_argument("--leaked", default="data/dedup/leaked.tsv", help="dedup stage's list: the clean score")
    parser.add_argument("--metrics", default="metrics", help="folder for model quality per version (DVC metrics)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uri = configure_tracking()
    config = load_params("registry", RegistryConfig, args.params)
    pretrained, finetuned = run_demo(args.records, args.models, args.params, config, args.leaked)
    print("\nRegistered checkpoints (top-1/top-5 and mAP in %; *_clean, shown when evaluation images were copied")
    print("in the pretraining data: without them). The finetuned model's training data says whether it")
    print("started from the pretrained champion or from scratch:\n")
    print(render_versions(mlflow.MlflowClient(), [pretrained, finetuned]))
    write_model_metrics(mlflow.MlflowClient(), [pretrained, finetuned], args.metrics)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    print(f"\nDVC metrics:        dvc metrics show  (model quality per version: {args.metrics}/*-v*.json)")
    print(f"Open the UI:        mlflow ui --backend-store-uri {uri}")
    print(f"The runs table:     {runs_table_url('http://127.0.0.1:5000', experiment)}")
    print(f"Serve the champion: mlflow models serve -m models:/{finetuned}@champion --env-manager local -p 5001")
    print(f"Classify a photo:   mlimages classify --model models:/{finetuned}@champion PHOTO.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
