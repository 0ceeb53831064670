"""Loading original TF1 checkpoints: written here with tf.compat.v1 under the original variable names."""

from __future__ import annotations

import functools
import sys
import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mlimages import cli  # noqa: E402
from mlimages.errors import InputError  # noqa: E402
from mlimages.models import tf1_import  # noqa: E402

BLOCKS = (1, 2, 1, 1)
NUM_CLASSES = 7
WIDTHS = (256, 512, 1024, 2048)


def make_original_variables(rng, blocks=BLOCKS, num_classes=NUM_CLASSES) -> dict[str, np.ndarray]:
    """Random values under the names and shapes the original `models/resnet.py` creates."""
    values = {}

    def conv(scope, size, cin, cout):
        values[f"{scope}/conv2d/kernel"] = rng.normal(0, (size * size * cin) ** -0.5, (size, size, cin, cout))

    def bn(scope, channels):
        prefix = f"{scope}/batch_normalization/"
        values[prefix + "gamma"] = rng.uniform(0.5, 1.5, channels)
        values[prefix + "beta"] = rng.normal(0, 0.1, channels)
        values[prefix + "moving_mean"] = rng.normal(0, 0.1, channels)
        values[prefix + "moving_variance"] = rng.uniform(0.5, 1.5, channels)

    conv("init/init_conv", 7, 3, 64)
    channels = 64
    for stage, (width, count) in enumerate(zip(WIDTHS, blocks)):
        for block in range(count):
            scope = f"stages_{stage}_block_{block}"
            if block == 0:
                bn(f"{scope}/conv1_b1_bn", channels)
                conv(f"{scope}/conv1_b1", 1, channels, width)
            bn(f"{scope}/conv1_b2_bn", channels)
            conv(f"{scope}/conv1_b2", 1, channels, width // 4)
            bn(f"{scope}/conv2_b2_bn", width // 4)
            conv(f"{scope}/conv2_b2", 3, width // 4, width // 4)
            bn(f"{scope}/conv3_b2_bn", width // 4)
            conv(f"{scope}/conv3_b2", 1, width // 4, width)
            channels = width
    bn("global_pool/bn", 2048)
    values["logits/dense/kernel"] = rng.normal(0, 0.05, (2048, num_classes))
    values["logits/dense/bias"] = rng.normal(0, 0.1, num_classes)
    return {name: value.astype("float32") for name, value in values.items()}


def write_tf1_checkpoint(prefix, values: dict[str, np.ndarray], momentum_slots: bool = True,
                         extras: dict[str, np.ndarray] | None = None, step: int | None = None) -> str:
    """A TF1 Saver checkpoint with these variables, Momentum slots and global_step, like the original's.

    `extras` are more variables saved beside them (e.g. the original train.py's loss counters).
    """
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1
        for name, value in values.items():
            v1.get_variable(name, initializer=value)
            if momentum_slots:
                v1.get_variable(f"{name}/Momentum", initializer=np.zeros_like(value))
        for name, value in (extras or {}).items():
            v1.get_variable(name, initializer=value)
        v1.train.get_or_create_global_step()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return v1.train.Saver().save(session, str(prefix), global_step=step)


def reference_logits(values, images, blocks=BLOCKS):
    """The original network's inference forward pass, written with plain tf ops from the variables."""

    def conv(x, scope, size, stride):
        kernel = values[f"{scope}/conv2d/kernel"]
        if stride == 1:
            return tf.nn.conv2d(x, kernel, 1, "SAME")
        pad = ((size - 1) // 2, size - 1 - (size - 1) // 2)
        return tf.nn.conv2d(tf.pad(x, [(0, 0), pad, pad, (0, 0)]), kernel, stride, "VALID")

    def bn_relu(x, scope):
        get = lambda n: values[f"{scope}/batch_normalization/{n}"]  # noqa: E731
        x = (x - get("moving_mean")) / tf.sqrt(get("moving_variance") + 1e-5) * get("gamma") + get("beta")
        return tf.nn.relu(x)

    x = conv(tf.constant(images), "init/init_conv", 7, 2)
    for stage, count in enumerate(blocks):
        for block in range(count):
            scope, stride = f"stages_{stage}_block_{block}", 2 if block == 0 else 1
            shortcut = conv(bn_relu(x, f"{scope}/conv1_b1_bn"), f"{scope}/conv1_b1", 1, 2) if block == 0 else x
            y = conv(bn_relu(x, f"{scope}/conv1_b2_bn"), f"{scope}/conv1_b2", 1, 1)
            y = conv(bn_relu(y, f"{scope}/conv2_b2_bn"), f"{scope}/conv2_b2", 3, stride)
            y = conv(bn_relu(y, f"{scope}/conv3_b2_bn"), f"{scope}/conv3_b2", 1, 1)
            x = y + shortcut
    features = tf.reduce_mean(bn_relu(x, "global_pool/bn"), axis=[1, 2])
    return (features @ values["logits/dense/kernel"] + values["logits/dense/bias"]).numpy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    values = make_original_variables(np.random.default_rng(0))
    prefix = write_tf1_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.ckpt", values)
    return prefix, values


def test_loaded_model_matches_reference_forward_pass(checkpoint):
    prefix, values = checkpoint
    model = tf1_import.load_tf1_classifier(prefix, NUM_CLASSES, allow_custom_blocks=True)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 40, 40, 3)).astype("float32")  # odd sizes after /8
    want = reference_logits(values, images)
    np.testing.assert_allclose(np.asarray(model(images, training=False)), want, rtol=1e-4, atol=1e-4)


def test_table_covers_every_weight_once():
    from mlimages.models import resnet

    blocks = (2, 1, 3, 1)  # identity blocks in several stages
    model = resnet.build_classifier(resnet.build_backbone(50, blocks, width_multiplier=0.125), 10)
    table = tf1_import.make_name_table(blocks)
    assert len(table) == len(model.weights) == len(set(table.values()))
    # stem, 33 blocks of 3 BN + 3 conv, 4 projections of BN + conv, final BN, dense kernel and bias
    assert len(tf1_import.make_name_table((3, 4, 23, 3))) == 1 + 33 * 15 + 4 * 5 + 4 + 2


def test_unknown_class_count_and_depth_are_input_errors(checkpoint):
    prefix, _ = checkpoint
    with pytest.raises(InputError, match=r"logits of shape \(7,\), expected \(1000,\)"):
        tf1_import.load_tf1_classifier(prefix, 1000, allow_custom_blocks=True)
    with pytest.raises(InputError, match="not those of ResNet-50/101/152"):
        tf1_import.load_tf1_classifier(prefix, NUM_CLASSES)


@pytest.mark.parametrize("fault", ["missing", "shape"])
def test_missing_or_misshaped_network_variables_fail_with_their_names(tmp_path, fault):
    values = make_original_variables(np.random.default_rng(2), blocks=(1, 1, 1, 1), num_classes=3)
    name = "stages_1_block_0/conv2_b2/conv2d/kernel"
    if fault == "missing":
        del values[name]
    else:
        values[name] = np.zeros((3, 3, 128, 64), "float32")
    prefix = write_tf1_checkpoint(tmp_path / "bad.ckpt", values, momentum_slots=False)
    expected = "lacks 1 network variable" if fault == "missing" else r"shape mismatch.*\(3, 3, 128, 64\) vs \(3, 3, 128, 128\)"
    with pytest.raises(InputError, match=expected) as error:
        tf1_import.load_tf1_classifier(prefix, 3, allow_custom_blocks=True)
    assert name in str(error.value)


def test_variables_the_network_does_not_use_are_skipped_and_named(tmp_path, caplog):
    """The original train.py also saves its loss counters `Variable`, `Variable_1` ([num_classes])."""
    values = make_original_variables(np.random.default_rng(3), blocks=(1, 1, 1, 1), num_classes=3)
    extras = {"Variable": np.arange(3, dtype="float32"), "Variable_1": np.ones(3, "float32"),
              "stages_1_block_0/conv2_b2/conv2d/bias": np.zeros(128, "float32")}
    prefix = write_tf1_checkpoint(tmp_path / "train.ckpt", values, extras=extras, step=440000)
    with caplog.at_level("INFO", logger=tf1_import.__name__):
        model = tf1_import.load_tf1_classifier(prefix, 3, allow_custom_blocks=True)
    np.testing.assert_array_equal(model.get_layer("logits").weights[1], values["logits/dense/bias"])
    (line,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    skipped = len(extras) + 1 + len(values)  # + global_step + one Momentum slot per network variable
    assert f"skipped {skipped} variables the network does not use" in line
    for name in ("Variable", "Variable_1", "global_step", "stages_1_block_0/conv2_b2/conv2d/bias",
                 f"{len(values)} optimizer slots (*/Momentum)"):
        assert name in line


def test_folder_whose_checkpoint_file_names_another_machines_paths(tmp_path):
    values = make_original_variables(np.random.default_rng(4), blocks=(1, 1, 1, 1), num_classes=3)
    folder = tmp_path / "ckpt-resnet101-mlimages"
    write_tf1_checkpoint(folder / "model.ckpt", values, momentum_slots=False, step=100)
    write_tf1_checkpoint(folder / "model.ckpt", {**values, "logits/dense/bias": values["logits/dense/bias"] + 1},
                         momentum_slots=False, step=440000)
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "/data1/someone/train/ckpt-resnet101-mlimages/model.ckpt-440000"\n'
        'all_model_checkpoint_paths: "/data1/someone/train/ckpt-resnet101-mlimages/model.ckpt-440000"\n')
    assert tf.train.latest_checkpoint(str(folder)) is None  # TensorFlow's own lookup gives up
    assert tf1_import.find_checkpoint_prefix(folder) == str(folder / "model.ckpt-440000")
    model = tf1_import.load_tf1_classifier(folder, 3, allow_custom_blocks=True)
    np.testing.assert_allclose(model.get_layer("logits").weights[1], values["logits/dense/bias"] + 1)
    (folder / "checkpoint").write_text('model_checkpoint_path: "D:\\\\train\\\\gone.ckpt-7"\n')
    assert tf1_import.find_checkpoint_prefix(folder) == str(folder / "model.ckpt-440000")  # highest step
    (folder / "checkpoint").unlink()
    (folder / "other.ckpt.index").write_bytes(b"")
    with pytest.raises(InputError, match="several checkpoints, give one prefix"):
        tf1_import.find_checkpoint_prefix(folder)


def test_folder_without_a_checkpoint_is_input_error(tmp_path):
    with pytest.raises(InputError, match=r"no checkpoint in this folder \(no \*\.index file\)"):
        tf1_import.load_tf1_classifier(tmp_path, 3)


def test_missing_checkpoint_is_input_error(tmp_path):
    with pytest.raises(InputError, match="not a readable TF checkpoint"):
        tf1_import.load_tf1_classifier(tmp_path / "nothing.ckpt", 10)


def test_cli_writes_keras_model_and_registers(checkpoint, tmp_path, monkeypatch):
    prefix, values = checkpoint
    loader = functools.partial(tf1_import.load_tf1_classifier, allow_custom_blocks=True)
    monkeypatch.setattr(tf1_import, "load_tf1_classifier", loader)
    registered = []
    registry = types.ModuleType("mlimages.tracking.registry")
    registry.register_keras_model = lambda path, name: registered.append((path, name))
    monkeypatch.setitem(sys.modules, "mlimages.tracking.registry", registry)
    out = tmp_path / "model.keras"
    args = ["import-tf1", prefix, "--num-classes", str(NUM_CLASSES), "--out", str(out), "--register", "imported"]
    assert cli.main(args) == 0
    assert registered == [(str(out), "imported")]
    model = keras.saving.load_model(out)
    np.testing.assert_allclose(model.get_layer("logits").weights[1], values["logits/dense/bias"])


def test_cli_register_without_registry_support_exits_2(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlimages.tracking.registry", types.ModuleType("mlimages.tracking.registry"))
    args = ["import-tf1", checkpoint[0], "--num-classes", "7", "--out", str(tmp_path / "m.keras"), "--register", "x"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert "registry support is unavailable" in capsys.readouterr().err
    assert not (tmp_path / "m.keras").exists()
