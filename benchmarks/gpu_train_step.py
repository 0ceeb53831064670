"""ResNet-101 training throughput on an accelerator with Keras + JAX only (no TensorFlow needed).

GPU hosts often have JAX but not TensorFlow, so this script imports neither TensorFlow nor anything
that does: Keras runs on the JAX backend, the batch is synthetic and stays on the device, and the step
is one jitted function (forward, softmax cross-entropy, gradients, SGD with momentum) with the
model state donated. Reports images/s and achieved TFLOP/s, to compare with published per-GPU figures
(about 1,250 images/s for ResNet-101 training on one A100 with mixed precision and XLA).

    python benchmarks/gpu_train_step.py                       # batch 256, 224 px, mixed_bfloat16
    python benchmarks/gpu_train_step.py --write               # also write the BENCHMARKS.md section
    python benchmarks/gpu_train_step.py --quick               # tiny CPU check: cut-down net, 32 px
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.resnet_flops import count_train_flops  # noqa: E402
from mlimages import losses  # noqa: E402
from mlimages.models import resnet  # noqa: E402


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer):
    """A jitted pure step: (state, images, labels) -> (state, loss)."""

    def compute_loss(trainable, non_trainable, images, labels):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        return losses.softmax_cross_entropy(labels, logits), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def step(state, images, labels):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, images, labels)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), loss

    return jax.jit(step, donate_argnums=0)  # donated: the old state's buffers are reused


def measure(args: argparse.Namespace) -> dict:
    keras.mixed_precision.set_dtype_policy(args.policy)
    blocks = (1, 1, 1, 1) if args.quick else None
    model = resnet.build_classifier(resnet.build_backbone(args.depth, blocks), args.classes)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32"))
    labels = jax.device_put(rng.integers(0, args.classes, args.batch).astype("int32"))
    step = make_train_step(model, optimizer)
    start = time.perf_counter()
    for _ in range(args.warmup):
        state, loss = step(state, images, labels)
    loss.block_until_ready()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        state, loss = step(state, images, labels)
    loss.block_until_ready()
    images_per_s = args.batch * args.steps / (time.perf_counter() - start)
    flops = count_train_flops(model, args.size)
    return {
        "device": str(jax.devices()[0]),
        "images_per_s": round(images_per_s, 2),
        "tflops_per_s": round(images_per_s * flops / 1e12, 3),
        "gflop_per_image": round(flops / 1e9, 2),
        "first_steps_s": round(compile_s, 1),
        "loss": float(loss),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (the first compiles)")
    parser.add_argument("--depth", type=int, default=101)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--policy", default="mixed_bfloat16", help="Keras dtype policy (float32, mixed_bfloat16)")
    parser.add_argument("--quick", action="store_true", help="cut-down network, batch 4 at 32 px, 2 steps")
    parser.add_argument("--write", action="store_true", help="write the gpu_train_step section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.steps, args.warmup = 4, 32, 2, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = measure(args)
    print(json.dumps(result))
    if result["tensorflow_imported"]:
        print("error: TensorFlow was imported; this benchmark must run without it", file=sys.stderr)
        return 1
    if args.write:
        from benchmarks.report import markdown_table, write_section

        header = ["device", "depth", "batch", "px", "policy", "images/s", "TFLOP/s", "GFLOP/image"]
        row = [result["device"], args.depth, args.batch, args.size, args.policy, result["images_per_s"],
               result["tflops_per_s"], result["gflop_per_image"]]
        note = ("Synthetic batch kept on the device; one jitted step (forward, softmax cross-entropy, gradients, "
                "SGD momentum). FLOPs: 2 per multiply-add of conv and dense layers, x3 for forward + backward.")
        command = " ".join(["python benchmarks/gpu_train_step.py", *(sys.argv[1:] if argv is None else argv)])
        write_section("gpu_train_step", "ResNet-101 training step on one accelerator (Keras + JAX)", command,
                      markdown_table(header, [row]) + "\n\n" + note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
