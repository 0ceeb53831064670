"""Floating-point operations of one training step, counted from a model's convolution and dense layers.

Counting rule (stated in every table): a multiply-add is 2 FLOPs; only Conv2D and Dense layers count
(batch norm, ReLU, pooling and the optimizer update are < 1% for a ResNet); backward costs twice the
forward (gradients w.r.t. activations and w.r.t. weights), so a training step is 3 x forward.
ResNet-101 at 224 px: about 15.6 GFLOP forward, 47 GFLOP per training step and image.
"""

from __future__ import annotations

import keras


def count_forward_flops(model: keras.Model, image_size: int) -> float:
    """Forward FLOPs per image of `model` at `image_size` (nested models are walked)."""
    layers = list(_walk_compute_layers(model))
    inner = [_find_owner(model, layer) for layer in layers]
    total = 0.0
    for owner in {id(o): o for o in inner}.values():
        owned = [layer for layer, o in zip(layers, inner) if o is owner]
        total += _count_in(owner, owned, image_size)
    return total


def count_train_flops(model: keras.Model, image_size: int) -> float:
    """Training-step FLOPs per image: 3 x forward (see the module docstring)."""
    return 3.0 * count_forward_flops(model, image_size)


def _count_in(owner: keras.Model, layers: list, image_size: int) -> float:
    probe = keras.Model(owner.inputs, [layer.output for layer in layers])
    spec = keras.KerasTensor((1, image_size, image_size, 3)) if owner.inputs[0].shape[-1] == 3 else None
    if spec is None:  # the head sees the backbone's features
        spec = keras.KerasTensor((1,) + tuple(owner.inputs[0].shape[1:]))
    outputs = probe.compute_output_spec(spec)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    total = 0.0
    for layer, out in zip(layers, outputs):
        kernel = layer.kernel.shape  # conv: (kh, kw, cin, cout); dense: (cin, cout)
        positions = out.shape[1] * out.shape[2] if len(out.shape) == 4 else 1
        macs_per_position = 1
        for dim in kernel:
            macs_per_position *= dim
        total += 2.0 * macs_per_position * positions
    return total


def _walk_compute_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk_compute_layers(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            yield layer


def _find_owner(model, target):
    for layer in model.layers:
        if layer is target:
            return model
        if isinstance(layer, keras.Model):
            found = _find_owner(layer, target)
            if found is not None:
                return found
    return None
