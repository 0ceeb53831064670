"""Load the released TF1 checkpoints of Tencent ML-Images into our Keras ResNet.

The original built its network with `tf.layers` inside variable scopes, so every weight has a name like
`stages_2_block_5/conv2_b2/conv2d/kernel` or `.../conv2_b2_bn/batch_normalization/moving_mean`.
Our layers are named after those scopes (see `mlimages.models.resnet`), so the mapping is the table
built by `make_name_table`: TF1 variable name -> (Keras layer name, index in `layer.weights`).

A checkpoint holds more than the network: optimizer slots (`.../Momentum`), `global_step`, and, when
saved by the original `train.py`, its adaptive-loss counters `Variable` and `Variable_1` (shape
[num_classes]). Like the original's own loaders, everything the network does not use is skipped and
named in one log line; a network weight the checkpoint lacks, or one of the wrong shape, is an
`InputError` listing the names. Reading the checkpoint needs TensorFlow (only this module imports it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import keras

from mlimages.errors import InputError
from mlimages.models import resnet

log = logging.getLogger(__name__)

# Keras weight order of each layer type, as TF1 variable suffixes.
CONV_WEIGHTS = ("conv2d/kernel",)
BN_WEIGHTS = tuple(f"batch_normalization/{n}" for n in ("gamma", "beta", "moving_mean", "moving_variance"))
DENSE_WEIGHTS = ("dense/kernel", "dense/bias")
BLOCK_UNITS = ("conv1_b1", "conv1_b2", "conv2_b2", "conv3_b2")  # conv1_b1: projection, first block only
# Every block has conv kernels, so these names alone give the block counts (slots and extras do not).
BLOCK_KERNEL = re.compile(r"^stages_(\d+)_block_(\d+)/[^/]+/conv2d/kernel$")
STEP_SUFFIX = re.compile(r"-(\d+)$")
INDEX_SUFFIX = ".index"


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


def find_checkpoint_prefix(path: str | Path) -> str:
    """The checkpoint prefix of `path`: the prefix itself, or the latest checkpoint in a folder.

    A folder's `checkpoint` file often names absolute paths of the machine that trained it; only
    the file name of its entry is trusted, looked up in the folder. Without a usable entry, the
    folder's single `*.index` file, or the one with the highest `-STEP` suffix, is taken.

    Raises:
        InputError: no checkpoint in the folder, or several without step numbers to choose by.
    """
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    named = _named_in_checkpoint_file(folder)
    if named is not None and (folder / (named + INDEX_SUFFIX)).is_file():
        return str(folder / named)
    prefixes = sorted(p.name[: -len(INDEX_SUFFIX)] for p in folder.glob("*" + INDEX_SUFFIX))
    if not prefixes:
        raise InputError("no checkpoint in this folder (no *.index file)", str(folder))
    if len(prefixes) == 1:
        return str(folder / prefixes[0])
    steps = {p: int(m.group(1)) for p in prefixes if (m := STEP_SUFFIX.search(p))}
    if len(steps) != len(prefixes):
        raise InputError(f"several checkpoints, give one prefix: {_preview(prefixes)}", str(folder))
    return str(folder / max(prefixes, key=steps.get))


def _named_in_checkpoint_file(folder: Path) -> str | None:
    """File name of the `model_checkpoint_path` in a folder's `checkpoint` file, if it has one."""
    file = folder / "checkpoint"
    if not file.is_file():
        return None
    text = file.read_text(encoding="utf-8", errors="replace")
    match = re.search(r'^model_checkpoint_path:\s*"([^"]*)"', text, re.MULTILINE)
    return re.split(r"[/\\]", match.group(1))[-1] if match and match.group(1) else None


def open_checkpoint(path: str | Path):
    """A `tf.train.CheckpointReader` of a checkpoint prefix or of the latest checkpoint in a folder."""
    import tensorflow as tf

    prefix = find_checkpoint_prefix(path)
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise InputError(f"not a readable TF checkpoint ({str(error).splitlines()[0]})", str(path)) from None


def infer_blocks_per_stage(names, where: str) -> tuple[int, ...]:
    """Block counts per stage from the `stages_I_block_J/.../conv2d/kernel` names in the checkpoint."""
    counts: dict[int, int] = {}
    for name in names:
        match = BLOCK_KERNEL.match(name)
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
        InputError: unreadable checkpoint, unknown depth, class-count or shape mismatch, missing network weights.
    """
    where = str(path)
    reader = open_checkpoint(path)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    blocks = infer_blocks_per_stage(shapes, where)
    depth = next((d for d, counts in resnet.BLOCKS_PER_STAGE.items() if counts == blocks), None)
    if depth is None and not allow_custom_blocks:
        raise InputError(f"block counts {blocks} are not those of ResNet-50/101/152", where)
    classes_found = shapes.get("logits/dense/bias", (0,))
    if classes_found != (num_classes,):
        raise InputError(f"checkpoint has logits of shape {classes_found}, expected ({num_classes},)", where)
    table = make_name_table(blocks)
    log_skipped(sorted(set(shapes) - set(table)), table, where)
    backbone = resnet.build_backbone(depth or 101, blocks_per_stage=blocks)
    classifier = resnet.build_classifier(backbone, num_classes)
    layers = {layer.name: layer for layer in backbone.layers}
    layers[resnet.LOGITS_NAME] = classifier.get_layer(resnet.LOGITS_NAME)
    check_variables(shapes, table, layers, where)
    for name, (layer_name, index) in table.items():  # read one tensor at a time: slots are never loaded
        layers[layer_name].weights[index].assign(reader.get_tensor(name).astype("float32"))
    log.info("loaded %d variables of a ResNet with blocks %s from %s", len(table), blocks, where)
    return classifier


def log_skipped(skipped: list[str], table: dict, where: str) -> None:
    """One log line naming the checkpoint variables the network does not use (slots counted, not listed)."""
    if not skipped:
        return
    slots = [name for name in skipped if name.rsplit("/", 1)[0] in table]
    others = [name for name in skipped if name.rsplit("/", 1)[0] not in table]
    kinds = sorted({name.rsplit("/", 1)[1] for name in slots})
    parts = others + ([f"{len(slots)} optimizer slots ({', '.join('*/' + k for k in kinds)})"] if slots else [])
    log.info("%s: skipped %d variables the network does not use: %s", where, len(skipped), ", ".join(parts))


def check_variables(shapes: dict[str, tuple], table: dict, layers: dict, where: str) -> None:
    """Stop with the names of network weights the checkpoint lacks or holds in another shape."""
    missing = sorted(set(table) - set(shapes))
    if missing:
        raise InputError(f"the checkpoint lacks {len(missing)} network variable(s): {_preview(missing)}", where)
    wrong = []
    for name, (layer_name, index) in table.items():
        expected = tuple(layers[layer_name].weights[index].shape)
        if shapes[name] != expected:
            wrong.append(f"{name} {shapes[name]} vs {expected}")
    if wrong:
        raise InputError(f"shape mismatch (checkpoint vs network): {_preview(wrong)}", where)


def _preview(items: list[str], limit: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
