"""The experiments of `make demo`: pretrain -> finetune -> evaluate, plus a from-scratch finetune.

Runs the MLproject entry points (`mlflow run . -e ... --env-manager local`) on the demo world made
by `dvc repro`, registers and evaluates every checkpoint, then prints the registry side by side
(scratch vs pretrained) and how to open the UI and serve the champion.
"""

from __future__ import annotations

import argparse
import logging
import sys

import mlflow

from mlimages.cli.registry import render_versions
from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.registry import RegistryConfig, read_depth
from mlimages.tracking import configure_tracking

ML, IMAGENET = "data/tfrecords/ml-images", "data/tfrecords/imagenet"


def run_entry_point(entry_point: str, **parameters: str) -> str:
    """`mlflow run . -e ENTRY --env-manager local -P k=v ...`; returns the run id."""
    shown = " ".join(f"-P {k}={v}" for k, v in parameters.items())
    logging.info("mlflow run . -e %s --env-manager local --experiment-name mlimages %s", entry_point, shown)
    submitted = mlflow.projects.run(".", entry_point, parameters=parameters, env_manager="local",
                                    experiment_name="mlimages", synchronous=True)
    return submitted.run_id


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uri = configure_tracking()
    config = load_params("registry", RegistryConfig, args.params)
    pretrain = run_entry_point("pretrain", train=f"{ML}/train", val=f"{ML}/val", out="models/pretrain")
    run_entry_point("evaluate", model_uri=f"runs:/{pretrain}", records=f"{ML}/val", train_records=f"{ML}/train",
                    out="reports/eval/pretrain.json")
    depth = read_depth(mlflow.get_run(pretrain).data.params)
    for label, init_model in {"pretrained": f"models:/{config.model_name('pretrain', depth)}@champion",
                              "scratch": ""}.items():
        run = run_entry_point("finetune", train=f"{IMAGENET}/train", val=f"{IMAGENET}/val",
                              out=f"models/finetune-{label}", init_model=init_model)
        run_entry_point("evaluate", model_uri=f"runs:/{run}", records=f"{IMAGENET}/val",
                        out=f"reports/eval/finetune-{label}.json")
    finetuned = config.model_name("finetune", read_depth(mlflow.get_run(run).data.params))
    print("\nRegistered checkpoints (top-1/top-5 in %; the finetuned model's training data says whether it")
    print("started from the pretrained champion or from scratch):\n")
    print(render_versions(mlflow.MlflowClient(), [config.model_name("pretrain", depth), finetuned]))
    print(f"\nOpen the UI:        mlflow ui --backend-store-uri {uri}")
    print(f"Serve the champion: mlflow models serve -m models:/{finetuned}@champion --env-manager local -p 5001")
    print(f"Classify a photo:   mlimages classify --model models:/{finetuned}@champion PHOTO.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
