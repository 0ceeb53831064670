"""The MLflow layer: runs, lineage and checkpoints (`runs`), the model registry (`registry`), the
served pyfunc (`serving`), the model card (`model_card`) and loading pretrained weights from any
MLflow URI (`pretrained`). Nothing outside this package imports mlflow's tracking APIs."""
