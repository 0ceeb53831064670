"""The README's pictures of the MLflow UI, remade from the demo's store after any change.

    python scripts/screenshots.py [--backend-store-uri sqlite:///mlflow.db] [--out docs]

Needs `make demo` first (its mlflow.db) and the system's Chromium (`make chromium`). Starts
`mlflow ui` on a free loopback port and saves the top of two pages, 1440 px wide:

    docs/registry-versions.png   the finetuned model's page: the champion, then the versions with their tags
    docs/compare-finetune.png    the compare view of the finetune from the pretrained model vs from scratch
                                 (the parameters that differ, then the metrics side by side)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.parse
from pathlib import Path

import mlflow
from PIL import Image

from mlimages.config import load_params
from mlimages.errors import InputError, exit_on_input_error
from mlimages.tracking.names import CONTINUED_IN_TAG, TASK_TAG
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.results_table import matching_names
from mlimages.tracking.ui_browser import chromium_page, mlflow_ui

EXPERIMENT = "mlimages"  # the demo's (mlimages.demo.chain)


def find_finetuned_model(client, config: RegistryConfig) -> str:
    """The registered finetuned model (the demo registers one depth)."""
    suffix = config.finetuned_name.rsplit("}", 1)[-1]
    names = [name for name in matching_names(client, config) if name.endswith(suffix)]
    if not names:
        raise InputError(f"no registered model named like {config.finetuned_name} (run `make demo` first)")
    return names[-1]


def find_finetune_runs(client, experiment_id: str) -> list[str]:
    """The latest finetune from the pretrained model and the latest from scratch (runs that did the work)."""
    runs = client.search_runs([experiment_id], f"tags.`{TASK_TAG}` = 'finetune'", order_by=["attributes.start_time DESC"])
    worked = [run for run in runs if CONTINUED_IN_TAG not in run.data.tags]
    from_model = [run for run in worked if run.info.run_name.startswith("finetune-from-")]
    scratch = [run for run in worked if run.info.run_name == "finetune-scratch"]
    if not from_model or not scratch:
        raise InputError("needs a finetune from the pretrained model and one from scratch (run `make demo`)", EXPERIMENT)
    return [from_model[0].info.run_id, scratch[0].info.run_id]


def save_screen(page, url: str, wait_for: str, path: Path, clicks=(), height: int = 900) -> None:
    """Open `url`, wait until `wait_for` shows, press `clicks` ((role, name) pairs), save the window as a PNG.

    Every picture first closes the assistant panel and leaves the GenAI mode the UI opens in.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.set_viewport_size({"width": 1440, "height": height})
    page.goto(url)
    try:
        page.get_by_text(wait_for, exact=False).first.wait_for(timeout=90_000)
        for role, name in (("button", "Close"), ("button", "Model training")):  # once per browser session
            if page.get_by_role(role, name=name).first.is_visible():
                page.get_by_role(role, name=name).first.click(timeout=15_000)
        for role, name in clicks:  # role "text": any element showing that text
            found = page.get_by_text(name, exact=True) if role == "text" else page.get_by_role(role, name=name)
            found.first.click(timeout=15_000)
    except PlaywrightTimeout as error:
        raise InputError(f"the page did not show what the picture needs ({str(error).splitlines()[0]})", url) from None
    page.wait_for_timeout(3000)  # the UI keeps polling, so no "network idle": let tables and charts settle
    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)  # a palette PNG: a fifth the bytes
    logging.info("saved %s (%d KB)", path, path.stat().st_size // 1024)


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend-store-uri", default="sqlite:///mlflow.db", help="the demo's tracking store")
    parser.add_argument("--params", default="params.yaml", help="reads `registry` (the registered names)")
    parser.add_argument("--out", default="docs", type=Path, help="folder for the PNG files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    mlflow.set_tracking_uri(args.backend_store_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise InputError(f"no experiment {EXPERIMENT!r} (run `make demo` first)", args.backend_store_uri)
    model = find_finetuned_model(client, load_params("registry", RegistryConfig, args.params))
    runs = find_finetune_runs(client, experiment.experiment_id)
    query = urllib.parse.urlencode({"runs": json.dumps(runs), "experiments": json.dumps([experiment.experiment_id])})
    args.out.mkdir(parents=True, exist_ok=True)
    with mlflow_ui(args.backend_store_uri) as address, chromium_page() as page:
        save_screen(page, f"{address}/#/models/{model}", "Version 1", args.out / "registry-versions.png",
                    clicks=[("text", "Registered at")], height=1200)  # oldest first: the champion is usually v1
        save_screen(page, f"{address}/#/compare-runs?{query}", "finetune-scratch", args.out / "compare-finetune.png",
                    clicks=[("button", "Visualizations"), ("switch", "Show diff only")], height=1100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
