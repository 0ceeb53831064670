"""Training: `fit` runs one pretraining or finetuning job from its config (`config`), keeps the
optimizer, loss and checkpoint state (`state`), validates at checkpoints (`validation`) and picks
the tf.distribute strategy (`distribute`)."""
