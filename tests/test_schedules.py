"""Learning-rate schedules: golden values at chosen steps, and serialization."""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from mlimages.schedules import CosineWithWarmup, GeometricWarmupStepDecay  # noqa: E402

PAPER_GOLDEN = [
    (0, 0.01),
    (4_399, 0.01),
    (4_400, 0.01297),
    (13_200, 0.021818),  # 0.01 * 1.297**3
    (35_199, 0.061742),  # 0.01 * 1.297**7, last warmup stair
    (35_200, 0.08),
    (110_000, 0.08),  # TF1 piecewise_constant: the boundary step still has the old value
    (110_001, 0.008),
    (220_001, 0.0008),
    (330_001, 0.00008),
    (440_001, 0.000008),
    (2_000_000, 0.000008),  # at most four decays
]


@pytest.mark.parametrize("step, lr", PAPER_GOLDEN)
def test_paper_schedule_golden_values(step, lr):
    assert float(GeometricWarmupStepDecay()(step)) == pytest.approx(lr, rel=1e-4)


def test_finetune_schedule_without_warmup():
    schedule = GeometricWarmupStepDecay(base_lr=0.1, decay_steps=150_000, warmup_steps=0)
    assert [round(float(schedule(s)), 8) for s in (0, 150_000, 150_001, 300_001)] == [0.1, 0.1, 0.01, 0.001]


@pytest.mark.parametrize("step, lr", [(0, 0.0), (50, 0.05), (100, 0.1), (550, 0.05), (1000, 0.0), (5000, 0.0)])
def test_cosine_with_linear_warmup(step, lr):
    schedule = CosineWithWarmup(peak_lr=0.1, total_steps=1000, warmup_steps=100)
    assert float(schedule(step)) == pytest.approx(lr, abs=1e-6)


@pytest.mark.parametrize("schedule", [GeometricWarmupStepDecay(warmup_steps=100), CosineWithWarmup(0.2, 50, 5, 0.01)])
def test_schedules_serialize_through_keras(schedule):
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.SGD.from_config(keras.optimizers.SGD(schedule, momentum=0.9).get_config())
    saved = optimizer.get_config()["learning_rate"]
    assert saved["class_name"] == type(schedule).__name__ and saved["config"] == schedule.get_config()
