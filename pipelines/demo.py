"""`make demo` experiments: pretrain -> evaluate -> finetune (pretrained and from scratch) -> evaluate.

Runs the MLproject entry points on the demo world made by `dvc repro`, then prints the registry
side by side (scratch vs pretrained) and how to open the UI and serve the champion.
"""

from __future__ import annotations

import argparse
import logging
import sys

import mlflow

from mlimages.cli.registry import render_versions
from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.registry import RegistryConfig, find_checkpoints, read_depth
from mlimages.tracking import configure_tracking


def run_entry_point(entry_point: str, **parameters: str) -> str:
    """`mlflow run . -e ENTRY --env-manager local -P k=v ...`; returns the id of the run that did the work.

    A training command run again resumes its earlier run (same params and output folder), so the
    checkpoints may live there rather than in the run just submitted.
    """
    shown = " ".join(f"-P {k}={v}" for k, v in parameters.items())
    logging.info("mlflow run . -e %s --env-manager local --experiment-name mlimages %s", entry_point, shown)
    run_id = mlflow.projects.run(".", entry_point, parameters=parameters, env_manager="local",
                                 experiment_name="mlimages", synchronous=True).run_id
    if entry_point == "evaluate" or find_checkpoints(run_id):
        return run_id
    name = f"{entry_point}-{parameters['out'].rstrip('/').split('/')[-1]}"
    found = mlflow.search_runs(experiment_names=["mlimages"], filter_string=f"attributes.run_name = '{name}'",
                               order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    return found[0].info.run_id if found else run_id


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--records", default="data/tfrecords", help="holds ml-images/ and imagenet/ record folders")
    parser.add_argument("--models", default="models", help="training output folders go here")
    args = parser.parse_args(argv)
    ml, imagenet, params = f"{args.records}/ml-images", f"{args.records}/imagenet", args.params
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uri = configure_tracking()
    config = load_params("registry", RegistryConfig, args.params)
    pretrain = run_entry_point("pretrain", train=f"{ml}/train", val=f"{ml}/val", out=f"{args.models}/pretrain",
                               params=params)
    run_entry_point("evaluate", model_uri=f"runs:/{pretrain}", records=f"{ml}/val", train_records=f"{ml}/train",
                    out="reports/eval/pretrain.json", params=params)
    depth = read_depth(mlflow.get_run(pretrain).data.params)
    for label, init_model in {"pretrained": f"models:/{config.model_name('pretrain', depth)}@champion",
                              "scratch": ""}.items():
        run = run_entry_point("finetune", train=f"{imagenet}/train", val=f"{imagenet}/val",
                              out=f"{args.models}/finetune-{label}", init_model=init_model, params=params)
        run_entry_point("evaluate", model_uri=f"runs:/{run}", records=f"{imagenet}/val",
                        out=f"reports/eval/finetune-{label}.json", params=params)
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
