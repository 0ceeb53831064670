"""The pre-activation ResNet: parameter count from the architecture, shapes, names, freezing, saving."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mlimages.errors import InputError  # noqa: E402
from mlimages.models import resnet  # noqa: E402


def count_resnet_params(blocks_per_stage, num_classes: int) -> int:
    """Parameters of the original's ResNet v2, counted from its description (BN: gamma, beta, mean, var)."""
    bn = lambda channels: 4 * channels  # noqa: E731
    total = 7 * 7 * 3 * 64  # stem convolution, no bias
    channels = 64
    for width, blocks in zip((256, 512, 1024, 2048), blocks_per_stage):
        mid = width // 4
        for block in range(blocks):
            if block == 0:  # projection shortcut with its own BN-ReLU
                total += bn(channels) + channels * width
            total += bn(channels) + channels * mid  # 1x1 reduce
            total += bn(mid) + 3 * 3 * mid * mid  # 3x3
            total += bn(mid) + mid * width  # 1x1 expand
            channels = width
    return total + bn(2048) + 2048 * num_classes + num_classes


@pytest.mark.slow  # builds the full-size ResNet-101
def test_resnet101_parameter_count_matches_architecture():
    model = resnet.build_classifier(resnet.build_backbone(101), 1000)
    expected = count_resnet_params((3, 4, 23, 3), 1000)
    assert model.count_params() == expected == 44_646_568
    assert resnet.get_backbone(model).output.shape == (None, 2048)


@pytest.fixture(scope="module")
def tiny():
    backbone = resnet.build_backbone(50, blocks_per_stage=(1, 1, 1, 1))
    return backbone, resnet.build_classifier(backbone, 5)


def test_cut_down_network_shapes_and_stage_resolutions(tiny):
    backbone, classifier = tiny
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 48, 3)).astype("float32")
    assert backbone(images).shape == (2, 2048)
    assert classifier(images).shape == (2, 5)
    assert classifier.count_params() == count_resnet_params((1, 1, 1, 1), 5)
    # Stem /2 and every stage /2 (no max-pool, as in the original): 64x48 -> 32x24, 16x12, 8x6, 4x3, 2x2.
    outputs = [backbone.get_layer(f"stages_{s}_block_0_add").output for s in range(4)]
    probe = keras.Model(backbone.input, outputs)
    shapes = [tuple(t.shape[1:3]) for t in probe(images)]
    assert shapes == [(16, 12), (8, 6), (4, 3), (2, 2)]


def test_layer_names_follow_original_scopes(tiny):
    backbone, _ = tiny
    convs = sorted(layer.name for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D))
    expected = ["init_init_conv"] + [
        f"stages_{s}_block_0_{unit}" for s in range(4) for unit in ("conv1_b1", "conv1_b2", "conv2_b2", "conv3_b2")
    ]
    assert convs == sorted(expected)
    bn = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.momentum == 0.997 and layer.epsilon == 1e-5 for layer in bn)


@pytest.mark.parametrize("depth", [18, 34, 100, "101"])
def test_unknown_depth_is_input_error(depth):
    with pytest.raises(InputError, match="depth"):
        resnet.build_backbone(depth)


def test_bad_block_override_is_input_error():
    with pytest.raises(InputError, match="blocks_per_stage"):
        resnet.build_backbone(101, blocks_per_stage=(1, 1, 1))


def test_stage_layers_freeze_stem_and_first_two_stages(tiny):
    backbone, _ = tiny
    frozen = resnet.stage_layers(backbone, (0, 1))
    names = {layer.name for layer in frozen}
    assert "init_init_conv" in names and "stages_1_block_0_conv3_b2" in names
    assert not any(name.startswith(("stages_2", "stages_3", "global_pool")) for name in names)
    with pytest.raises(InputError):
        resnet.stage_layers(backbone, (4,))


def test_freezing_by_layer_objects_and_keras_round_trip(tmp_path):
    backbone = resnet.build_backbone(101, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.25)
    classifier = resnet.build_classifier(backbone, 3)
    trainable_before = len(classifier.trainable_weights)
    for layer in resnet.stage_layers(backbone, (0, 1)):
        layer.trainable = False
    # stem conv (1) + two blocks of 4 convs and 4 BNs (4 + 2*4 each)
    assert trainable_before - len(classifier.trainable_weights) == 1 + 2 * (4 + 2 * 4)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    path = tmp_path / "model.keras"
    classifier.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(images), classifier(images), rtol=1e-5, atol=1e-5)
    assert resnet.get_backbone(loaded).output.shape == (None, 512)
