"""The model card written as each registered version's description (markdown).

It is rebuilt from the version's tags whenever they change (registration, each evaluation), so
what the registry UI shows is always what the tags say: where the checkpoint came from, the data
version it was trained on, its metrics with the protocol that produced them, intended use, and
the licences of code, annotations and images.
"""

from __future__ import annotations

from mlimages.tasks import PRETRAIN
from mlimages.tracking.names import DATA_VERSION_TAG, EVAL_PREFIX, PROTOCOL_TAG, TRAINING_DATA_TAG
from mlimages.tracking.version_source import VersionSource
from mlimages.tracking.versions import read_version_source

SHOWN_PARAMS = ("depth", "image_size", "batch_size", "steps", "epochs", "base_lr", "schedule", "precision")

LICENCES = (
    "- Code: BSD-3-Clause (this project).\n"
    "- Annotations: CC BY 4.0 (Tencent ML-Images; cite Wu et al., IEEE Access 7, 2019).\n"
    "- Images: rights stay with their owners (the photos keep their own licences, e.g. CC BY 2.0 on Flickr "
    "/ Open Images; ImageNet images under the ImageNet terms of access). The weights were trained on them; "
    "check that your use is allowed."
)


def refresh_model_card(name: str, version: str) -> None:
    """Rewrite the version's description from its tags (metrics appear once evaluated)."""
    import mlflow

    client = mlflow.MlflowClient()
    model_version = client.get_model_version(name, version)
    run = client.get_run(model_version.run_id) if model_version.run_id else None
    params, run_tags = (run.data.params, run.data.tags) if run else ({}, {})
    source = read_version_source(client, model_version)
    client.update_model_version(name, version, description=make_model_card(model_version, source, params, run_tags))


def make_model_card(version, source: VersionSource, params: dict[str, str],
                    run_tags: dict[str, str] | None = None) -> str:
    """Markdown model card for a ModelVersion (uses its tags and run id), what it was built from
    (`source`: serving model, checkpoint, step, task), its training run's `params` and tags.

    The version carries one data version (the digest of dvc.lock); the per-output md5 table comes
    from the training run's ``data.<stage>.<path>`` tags.
    """
    tags = dict(version.tags)
    task = source.task
    kind = ("multi-label tagger over the ML-Images hierarchy (sigmoid per class)" if task == PRETRAIN
            else "single-label classifier (softmax over the finetune classes)")
    lines = [
        f"# {version.name} version {version.version}",
        "",
        f"ResNet {kind}. Served as an MLflow pyfunc: input column `image` (JPEG/PNG bytes, base64 over REST), "
        "output class indices, names and probabilities.",
        "",
        "## Provenance",
        f"- Checkpoint: step {'?' if source.step is None else source.step} of training run "
        f"`{version.run_id or '?'}` ({task}); checkpoint model `{source.checkpoint}`, "
        f"serving model `{source.model_id}`",
        f"- Training data: {tags.get(TRAINING_DATA_TAG, 'unknown')}",
        f"- Code: git commit `{tags.get('git_commit', 'unknown')}` "
        f"(uncommitted changes: {(run_tags or {}).get('git_dirty', 'unknown')})",
        f"- Data version: `{tags.get(DATA_VERSION_TAG, 'unknown')}` (sha256 of dvc.lock)",
    ]
    data = sorted((k, v) for k, v in (run_tags or {}).items() if k.startswith("data."))
    lines += [f"  - `{k[5:]}`: md5 `{v}`" for k, v in data] or ["  - no dvc.lock was found"]
    shown = {k: v for k, v in params.items() if k.split(".")[-1] in SHOWN_PARAMS}
    if shown:
        lines += ["", "## Training params", ""] + [f"- `{k}` = {v}" for k, v in sorted(shown.items())]
    lines += ["", "## Metrics", ""] + _metric_lines(tags)
    lines += [
        "", "## Intended use",
        "Research and as a pretrained backbone or tagger for photos like the training data. Not evaluated for "
        "decisions about people; labels follow WordNet and inherit its and the annotators' biases.",
        "", "## Licences", LICENCES,
    ]
    return "\n".join(lines)


def _metric_lines(tags: dict[str, str]) -> list[str]:
    metrics = sorted((k[len(EVAL_PREFIX):], v) for k, v in tags.items()
                     if k.startswith(EVAL_PREFIX) and k != PROTOCOL_TAG)
    if not metrics:
        return ["Not evaluated yet (`mlflow run . -e evaluate -P model_uri=models:/NAME/VERSION`)."]
    rows = ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in metrics]
    return [f"Protocol: {tags.get(PROTOCOL_TAG, 'unknown')}", ""] + _clean_note(dict(metrics)) + rows


def _clean_note(metrics: dict[str, str]) -> list[str]:
    """Why a metric has a ``_clean`` twin: the score without evaluation images seen in pretraining."""
    if "leaked_left_out" not in metrics:
        return []
    return [f"Metrics ending in `_clean` leave out the {metrics['leaked_left_out']} evaluation images that have a "
            "near-copy in the pretraining data (found by the dedup stage); report those when comparing transfer.", ""]
