"""The pre-activation (v2) ResNet of Tencent ML-Images, as a Keras 3 functional model.

Structure follows the released `models/resnet.py` so its checkpoints load one variable per weight:

- stem: a 7x7/2 convolution with 64 filters and nothing after it (no max-pool: the original moves
  that downsampling into the first stage, whose first block has stride 2 like every other stage);
- four stages of bottleneck blocks, output widths 256/512/1024/2048, bottleneck width a quarter of
  that; each block is BN-ReLU-1x1, BN-ReLU-3x3 (stride here), BN-ReLU-1x1, plus the shortcut;
- the first block of a stage has a projection shortcut with its own BN-ReLU before the strided 1x1
  convolution (`conv1_b1_bn`, `conv1_b1`); other blocks add their input unchanged;
- a final BN-ReLU and global average pooling give the feature vector; the classifier adds a dense layer.

Strided convolutions pad explicitly ((k-1)//2 before, the rest after) and then use VALID, stride-1
convolutions use SAME: the original did this so outputs do not depend on the input size's parity.

Layer names are the original TF1 variable scopes with "/" replaced by "_" (`stages_2_block_5_conv2_b2`
is `stages_2_block_5/conv2_b2/conv2d`), so `mlimages.models.tf1_import` maps names with a short table.
Only keras layers and keras.ops are used: the model runs under the TensorFlow and the JAX backends.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import keras

from mlimages.errors import InputError

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (256, 512, 1024, 2048)
STEM_FILTERS = 64
STEM_NAME = "init_init_conv"
FINAL_BN_NAME = "global_pool_bn"
LOGITS_NAME = "logits"


def block_prefix(stage: int, block: int) -> str:
    """The layer-name prefix of one block, e.g. ``stages_2_block_0`` (0-based like the original)."""
    return f"stages_{stage}_block_{block}"


def _make_kernel_initializer() -> keras.initializers.Initializer:
    # The original's tf.variance_scaling_initializer(): scale 1, fan-in, truncated normal.
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal")


def _add_conv(x, filters: int, kernel_size: int, stride: int, name: str):
    """Convolution without bias; strided ones pad explicitly then use VALID, like the original."""
    padding = "same"
    if stride > 1:
        pad_total = kernel_size - 1
        if pad_total:
            pad = (pad_total // 2, pad_total - pad_total // 2)
            x = keras.layers.ZeroPadding2D((pad, pad), name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=_make_kernel_initializer(),
        name=name,
    )(x)


def _add_bn_relu(x, name: str, bn_momentum: float, bn_epsilon: float):
    x = keras.layers.BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _add_bottleneck(x, prefix: str, width: int, stride: int, projection: bool, bn: dict):
    """One pre-activation bottleneck block; `width` is the block's output channels."""
    shortcut = x
    if projection:
        shortcut = _add_bn_relu(x, f"{prefix}_conv1_b1_bn", **bn)
        shortcut = _add_conv(shortcut, width, 1, stride, f"{prefix}_conv1_b1")
    y = _add_bn_relu(x, f"{prefix}_conv1_b2_bn", **bn)
    y = _add_conv(y, width // 4, 1, 1, f"{prefix}_conv1_b2")
    y = _add_bn_relu(y, f"{prefix}_conv2_b2_bn", **bn)
    y = _add_conv(y, width // 4, 3, stride, f"{prefix}_conv2_b2")
    y = _add_bn_relu(y, f"{prefix}_conv3_b2_bn", **bn)
    y = _add_conv(y, width, 1, 1, f"{prefix}_conv3_b2")
    return keras.layers.Add(name=f"{prefix}_add")([y, shortcut])


def resolve_blocks_per_stage(depth: int, blocks_per_stage: Sequence[int] | None = None) -> tuple[int, ...]:
    """Block counts for `depth`, or the override (cut-down networks for tests and demos).

    Raises:
        InputError: `depth` is not 50, 101 or 152, or the override is not four positive counts.
    """
    if depth not in BLOCKS_PER_STAGE:
        raise InputError(f"ResNet depth must be one of 50, 101, 152, not {depth!r}", "depth")
    if blocks_per_stage is None:
        return BLOCKS_PER_STAGE[depth]
    counts = tuple(int(n) for n in blocks_per_stage)
    if len(counts) != len(STAGE_WIDTHS) or min(counts) < 1:
        raise InputError(f"blocks_per_stage must be four counts >= 1, not {blocks_per_stage!r}", "blocks_per_stage")
    return counts


def build_backbone(
    depth: int = 101,
    blocks_per_stage: Sequence[int] | None = None,
    name: str | None = None,
    bn_momentum: float = 0.997,
    bn_epsilon: float = 1e-5,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """Build the backbone: images in, pooled feature vector out.

    Args:
        depth: 50, 101 or 152.
        blocks_per_stage: overrides the block counts of `depth` (e.g. ``(1, 1, 1, 1)`` for tests).
        name: model name; default ``resnet{depth}``.
        bn_momentum: moving-average decay of batch norm (the original's 0.997).
        bn_epsilon: batch-norm epsilon (1e-5).
        width_multiplier: scales every layer's channels (1.0 = the paper's network); for small demos.

    Returns:
        A keras.Model from (batch, height, width, 3) images scaled to [-1, 1] to (batch, 2048 * multiplier).
    """
    counts = resolve_blocks_per_stage(depth, blocks_per_stage)
    if width_multiplier <= 0:
        raise InputError(f"width_multiplier must be > 0, not {width_multiplier!r}", "width_multiplier")
    bn = {"bn_momentum": bn_momentum, "bn_epsilon": bn_epsilon}
    images = keras.Input(shape=(None, None, 3), name="images")  # (batch, H, W, 3)
    x = _add_conv(images, _scale(STEM_FILTERS, width_multiplier), 7, 2, STEM_NAME)  # (batch, H/2, W/2, 64)
    for stage, num_blocks in enumerate(counts):
        width = _scale(STAGE_WIDTHS[stage], width_multiplier)
        for block in range(num_blocks):
            first = block == 0
            x = _add_bottleneck(x, block_prefix(stage, block), width, 2 if first else 1, first, bn)
    # (batch, H/32, W/32, 2048)
    x = _add_bn_relu(x, FINAL_BN_NAME, **bn)
    features = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)  # (batch, 2048)
    return keras.Model(images, features, name=name or f"resnet{depth}")


def _scale(channels: int, multiplier: float) -> int:
    # Keep widths divisible by 4 so the bottleneck width stays an integer.
    return max(4, int(round(channels * multiplier / 4)) * 4)


def build_classifier(backbone: keras.Model, num_classes: int, name: str | None = None) -> keras.Model:
    """Add the dense logits head to `backbone`.

    The backbone is nested as one layer, so `get_backbone(classifier)` gives the same object back
    (finetuning restores it and adds a new head). The head computes in float32, so logits are
    float32 under a mixed-precision policy.

    Args:
        backbone: a model from `build_backbone`.
        num_classes: number of logits.
        name: model name; default ``{backbone.name}_classifier``.

    Returns:
        A keras.Model from images to (batch, num_classes) logits.
    """
    if int(num_classes) < 1:
        raise InputError(f"num_classes must be >= 1, not {num_classes!r}", "num_classes")
    images = keras.Input(shape=(None, None, 3), name="images")
    features = backbone(images)  # (batch, 2048)
    logits = keras.layers.Dense(int(num_classes), dtype="float32", name=LOGITS_NAME)(features)
    return keras.Model(images, logits, name=name or f"{backbone.name}_classifier")


def get_backbone(classifier: keras.Model) -> keras.Model:
    """The nested backbone of a model made by `build_classifier` (also after `keras.saving.load_model`)."""
    nested = [layer for layer in classifier.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise InputError(f"model {classifier.name!r} does not hold exactly one backbone", classifier.name)
    return nested[0]


def stage_layers(backbone: keras.Model, stages: Iterable[int]) -> list[keras.layers.Layer]:
    """The layers of the stem and of the given 0-based stages (the original's ``FixBlock2`` is (0, 1)).

    Finetuning freezes by layer objects (``layer.trainable = False``), never by name substrings.
    A frozen BatchNormalization layer also runs in inference mode in Keras 3.

    Args:
        backbone: a model from `build_backbone`.
        stages: stage indices, 0-3.

    Returns:
        Layer objects in model order (stem convolution first).
    """
    stages = set(stages)
    if not stages <= {0, 1, 2, 3}:
        raise InputError(f"stages must be among 0-3, not {sorted(stages)!r}", "stages")
    prefixes = tuple(f"stages_{stage}_" for stage in sorted(stages))
    return [
        layer
        for layer in backbone.layers
        if layer.name.startswith(STEM_NAME) or (prefixes and layer.name.startswith(prefixes))
    ]
