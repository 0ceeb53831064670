"""Load the released TF1 checkpoints of Tencent ML-Images into our Keras ResNet.

The original built its network with `tf.layers` inside variable scopes, so every weight has a name like
`stages_2_block_5/conv2_b2/conv2d/kernel` or `.../conv2_b2_bn/batch_normalization/moving_mean`.
Our layers are named after those scopes (see `mlimages.models.resnet`), so the mapping is the table
built by `make_name_table`: TF1 variable name -> (Keras layer name, index in `layer.weights`).
Optimizer slots (`.../Momentum`) and `global_step` are skipped; any other variable that does not map,
any weight the checkpoint lacks, and any shape mismatch is an `InputError` listing the names.
Reading the checkpoint needs TensorFlow (only this module imports it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import keras
import numpy as np

from mlimages.errors import InputError
from mlimages.models import resnet

log = logging.getLogger(__name__)

# Keras weight order of each layer type, as TF1 variable suffixes.
CONV_WEIGHTS = ("conv2d/kernel",)
BN_WEIGHTS = tuple(f"batch_normalization/{n}" for n in ("gamma", "beta", "moving_mean", "moving_variance"))
DENSE_WEIGHTS = ("dense/kernel", "dense/bias")
BLOCK_UNITS = ("conv1_b1", "conv1_b2", "conv2_b2", "conv3_b2")  # conv1_b1: projection, first block only
SKIPPED = re.compile(r"(^|/)global_step$|/Momentum$")
BLOCK_NAME = re.compile(r"^stages_(\d+)_block_(\d+)/")


def make_name_table(blocks_per_stage) -> dict[str, tuple[str, int]]:
    """TF1 variable name -> (Keras layer name, weight index) for a network with these block counts."""
    scopes = [("init/init_conv", resnet.STEM_NAME, CONV_WEIGHTS)]
    for stage, num_blocks in enumerate(blocks_per_stage):
        for block in range(num_blocks):
            prefix = resnet.block_prefix(stage, block)
            for unit in BLOCK_UNITS[0 if block == 0 else 1 :]:
                scopes.append((f"{prefix}/{unit}_bn", f"{prefix}_{unit}_bn", BN_WEIGHTS))
                scopes.append((f"{prefix}/{unit}", f"{prefix}_{unit}", CONV_WEIGHTS))
    scopes.append(("global_pool/bn", resnet.FINAL_BN_NAME, BN_WEIGHTS))
    scopes.append(("logits", resnet.LOGITS_NAME, DENSE_WEIGHTS))
    return {f"{scope}/{suffix}": (layer, i) for scope, layer, suffixes in scopes for i, suffix in enumerate(suffixes)}


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """All model variables of a TF1 checkpoint (prefix or folder), without optimizer slots and global_step."""
    import tensorflow as tf

    path = str(path)
    prefix = tf.train.latest_checkpoint(path) if Path(path).is_dir() else path
    try:
        reader = tf.train.load_checkpoint(prefix or path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise InputError(f"not a readable TF checkpoint ({str(error).splitlines()[0]})", path) from None
    names = [n for n in reader.get_variable_to_shape_map() if not SKIPPED.search(n)]
    return {name: reader.get_tensor(name) for name in sorted(names)}


def infer_blocks_per_stage(variables: dict[str, np.ndarray], where: str) -> tuple[int, ...]:
    """Block counts per stage from the `stages_I_block_J/` scopes present in the checkpoint."""
    counts: dict[int, int] = {}
    for name in variables:
        match = BLOCK_NAME.match(name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), block + 1)
    if sorted(counts) != [0, 1, 2, 3]:
        found = sorted(counts)
        raise InputError(f"expected scopes stages_0..stages_3 of a Tencent ML-Images ResNet, found {found}", where)
    return tuple(counts[stage] for stage in range(4))


def load_tf1_classifier(
    path: str | Path,
    num_classes: int,
    allow_custom_blocks: bool = False,
) -> keras.Model:
    """Build our classifier and fill it from a released TF1 checkpoint.

    Args:
        path: checkpoint prefix (``.../model.ckpt-440000``) or the folder holding it.
        num_classes: classes of its logits layer (11,166 for ML-Images, 1,000 for the ImageNet one).
        allow_custom_blocks: accept block counts other than ResNet-50/101/152 (cut-down test networks).

    Returns:
        The classifier of `mlimages.models.resnet.build_classifier`, weights loaded.

    Raises:
        InputError: unreadable checkpoint, unknown depth, class-count or shape mismatch, unmatched names.
    """
    where = str(path)
    variables = read_checkpoint(path)
    blocks = infer_blocks_per_stage(variables, where)
    depth = next((d for d, counts in resnet.BLOCKS_PER_STAGE.items() if counts == blocks), None)
    if depth is None and not allow_custom_blocks:
        raise InputError(f"block counts {blocks} are not those of ResNet-50/101/152", where)
    classes_found = variables.get("logits/dense/bias", np.zeros(0)).shape
    if classes_found != (num_classes,):
        raise InputError(f"checkpoint has logits of shape {classes_found}, expected ({num_classes},)", where)
    backbone = resnet.build_backbone(depth or 101, blocks_per_stage=blocks)
    classifier = resnet.build_classifier(backbone, num_classes)
    assign_variables(classifier, variables, make_name_table(blocks), where)
    log.info("loaded %d variables of a ResNet with blocks %s from %s", len(variables), blocks, where)
    return classifier


def assign_variables(classifier: keras.Model, variables: dict, table: dict, where: str) -> None:
    """Copy every checkpoint variable into its Keras weight, after checking names and shapes."""
    unmatched = sorted(set(variables) - set(table))
    missing = sorted(set(table) - set(variables))
    if unmatched or missing:
        raise InputError(f"names do not match: unexpected {_preview(unmatched)}; missing {_preview(missing)}", where)
    layers = {layer.name: layer for layer in resnet.get_backbone(classifier).layers}
    layers[resnet.LOGITS_NAME] = classifier.get_layer(resnet.LOGITS_NAME)
    wrong = []
    for name, (layer_name, index) in table.items():
        weight = layers[layer_name].weights[index]
        if tuple(weight.shape) != variables[name].shape:
            wrong.append(f"{name} {variables[name].shape} vs {tuple(weight.shape)}")
    if wrong:
        raise InputError(f"shape mismatch: {_preview(wrong)}", where)
    for name, (layer_name, index) in table.items():
        layers[layer_name].weights[index].assign(variables[name].astype("float32"))


def _preview(items: list[str], limit: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
