"""ResNet-101 training-step throughput on this machine's CPU: ours against keras.applications.ResNet101.

Every configuration runs in its own Python process (the Keras backend and the mixed-precision policy
are process-wide), one after the other, with the same batch, image size and step count; ours and the
baseline share one process and alternate step by step, so a busy machine slows both alike:

    ours        TensorFlow, default graph path (jit_compile=False)
    keras-app   keras.applications.ResNet101(weights=None), TensorFlow default path  <- baseline
    ours        TensorFlow + XLA (jit_compile=True; Keras's "auto" turns XLA on)
    ours        TensorFlow, mixed_bfloat16
    ours        JAX (always XLA-compiled), float32, and mixed_bfloat16

A step is `train_on_batch` with SGD (momentum 0.9) and softmax cross-entropy over 1,000 classes on a
synthetic batch; the first steps (graph building, compilation) are timed apart and not counted, and the
fastest timed step gives images/s.

    python benchmarks/bench_train_step.py            # batch 32 at 224 px, 10 timed steps
    python benchmarks/bench_train_step.py --quick    # batch 8 at 128 px, 3 timed steps (a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (labels, models, backend, jit_compile, dtype policy); models listed together run interleaved in one process.
CONFIGS = [
    (("ours, TF default", "keras.applications.ResNet101, TF default"), ("ours", "keras-app"), "tensorflow", False,
     "float32"),
    (("ours, TF + XLA",), ("ours",), "tensorflow", True, "float32"),
    (("ours, TF, bfloat16",), ("ours",), "tensorflow", False, "mixed_bfloat16"),
    (("ours, JAX (XLA)",), ("ours",), "jax", True, "float32"),
    (("ours, JAX (XLA), bfloat16",), ("ours",), "jax", True, "mixed_bfloat16"),
]


def build_model(kind: str, size: int, jit_compile: bool):
    import keras

    from mlimages.models import resnet

    if kind == "ours":
        model = resnet.build_classifier(resnet.build_backbone(101), 1000)
    else:
        model = keras.applications.ResNet101(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def run_worker(kinds: list[str], jit_compile: bool, policy: str, args: argparse.Namespace) -> list[dict]:
    """Time training steps in this process (the backend was chosen by KERAS_BACKEND before import).

    Several models alternate step by step, so a busy machine slows them alike; the fastest step counts
    (as timeit does: on a shared machine, slower steps measure the neighbours, not the model).
    """
    import keras
    import numpy as np

    from benchmarks.resnet_flops import count_train_flops

    keras.mixed_precision.set_dtype_policy(policy)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32")  # (batch, size, size, 3)
    labels = rng.integers(0, 1000, args.batch)
    models = [build_model(kind, args.size, jit_compile) for kind in kinds]
    first_s, step_s = [0.0] * len(models), [[] for _ in models]
    for i, model in enumerate(models):
        start = time.perf_counter()
        for _ in range(args.warmup):
            model.train_on_batch(images, labels)
        first_s[i] = time.perf_counter() - start
    for _ in range(args.steps):
        for i, model in enumerate(models):
            start = time.perf_counter()
            loss = model.train_on_batch(images, labels)
            step_s[i].append(time.perf_counter() - start)
    results = []
    for model, first, steps in zip(models, first_s, step_s):
        images_per_s = args.batch / min(steps)
        flops = count_train_flops(model, args.size)
        results.append({"images_per_s": images_per_s, "gflops_per_s": images_per_s * flops / 1e9,
                        "gflop_per_image": flops / 1e9, "first_steps_s": first,
                        "tensorflow_imported": "tensorflow" in sys.modules})
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    return results


def run_config(config: tuple, args: argparse.Namespace) -> list[dict]:
    labels, kinds, backend, jit, policy = config
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--worker", ",".join(kinds), "--jit", str(int(jit)), "--policy", policy,
               "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return [{"label": label, "error": done.stderr.strip().splitlines()[-1][:200]} for label in labels]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [{"label": label, **result} for label, result in zip(labels, results)]


def format_ratio(result: dict, reference: dict) -> str:
    if "images_per_s" not in reference:
        return ""
    return f"{result['images_per_s'] / reference['images_per_s']:.2f}x"


def measure_matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Float32 matrix-multiply GFLOP/s of this machine with TensorFlow: the ceiling for the GFLOP/s column."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def format_body(results: list[dict], args: argparse.Namespace, ceiling_gflops: float) -> str:
    from benchmarks.report import markdown_table

    baseline = next(r for r in results if r["label"].startswith("keras.applications"))
    ours = results[0]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "failed", "", "", "", r["error"]])
            continue
        rows.append([r["label"], f"{r['images_per_s']:.2f}", format_ratio(r, baseline), format_ratio(r, ours),
                     f"{r['gflops_per_s']:.0f}", f"{r['first_steps_s']:.0f}"])
    header = ["configuration", "images/s", "vs keras.applications", "vs ours TF default", "GFLOP/s",
              f"first {args.warmup} steps (s)"]
    notes = (
        f"Batch {args.batch} at {args.size} px, fastest of {args.steps} timed steps after {args.warmup} untimed ones "
        "(ours and keras.applications alternate step by step in one process; other rows run in their own); "
        "SGD with momentum, softmax cross-entropy, synthetic data. GFLOP/s counts 2 FLOPs per multiply-add "
        "of the convolution and dense layers, times 3 for forward + backward "
        f"({ours.get('gflop_per_image', 0):.1f} GFLOP per image for ours at this size, 47.0 at 224 px; "
        f"keras.applications: {baseline.get('gflop_per_image', 0):.1f}). "
        f"Ceiling: a float32 2048 x 2048 matrix multiply with TensorFlow ran at {ceiling_gflops:.0f} GFLOP/s "
        "on this machine in the same run."
    )
    return markdown_table(header, rows) + "\n\n" + notes


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8 at 128 px, 3 timed steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", help="besides ours and the baseline, run only configurations with this text")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.steps, args.warmup = 8, 128, 3, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker.split(","), bool(args.jit), args.policy, args)))
        return 0
    configs = [c for c in CONFIGS if c is CONFIGS[0] or not args.only or any(args.only in label for label in c[0])]
    results = []
    for config in configs:
        results.extend(run_config(config, args))
        print(json.dumps(results[-1]), flush=True)
    body = format_body(results, args, measure_matmul_gflops())
    print(body)
    if not args.no_write:
        from benchmarks.report import write_section

        command = " ".join(["python benchmarks/bench_train_step.py", *(sys.argv[1:] if argv is None else argv)])
        write_section("train_step", "ResNet-101 training step on CPU", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
