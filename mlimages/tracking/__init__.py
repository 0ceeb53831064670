"""The MLflow layer.

`names` (every tag key, prefix and alias), `runs` (store, lineage, resumable runs), `checkpoints`
(LoggedModels with their `ModelSpec`), `registry` (registers versions; its params section is
`registry_config`), `versions` (looks them up), `version_source` (what each was built from),
`champion` (evaluation results and the champion alias), `evaluation` (evaluates versions and
records the results), `serving` (the served pyfunc, self-contained), `serving_code` (logs it with its
own code and pins), `outbox` (training's tracking calls, kept through a server outage and sent by a
thread of their own; `outbox_journal` is its queue on disk, `outbox_mlflow` its MLflow calls), `model_card`,
`pretrained` (loading weights from any MLflow URI or file), `results_table` (the versions side by side)
and `rest_registry` (the registry read from a tracking server without importing MLflow)."""
