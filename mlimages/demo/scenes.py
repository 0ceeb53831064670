"""Sample the content of demo images: which objects, where, and the labels they earn.

Each image has its own random stream seeded by (seed, stream, index), so image `i` is the same
whatever the number of images asked for, and changing one size does not reshuffle the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimages.demo.config import DemoConfig
from mlimages.demo.render import DrawnObject, draw_scene, make_background
from mlimages.demo.world import BACKGROUNDS, COLOURS, SHAPES, TEXTURES, FinetuneClass

STREAMS = {"train": 0, "val": 1, "finetune-train": 2, "finetune-val": 3}

# Share of an object that must be visible to be labelled at all, and to be labelled with confidence 1.
MIN_VISIBLE = 0.3
SURE_VISIBLE = 0.75
PARTLY_HIDDEN_CONFIDENCE = 0.7
# Textures of small objects are hard to make out: their texture tag gets this confidence at most.
SMALL_RADIUS = 0.15
SMALL_TEXTURE_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Scene:
    """A drawn image, (size, size, 3) uint8, and its leaf tags with confidences."""

    image: np.ndarray
    labels: dict[str, float]


def make_rng(config: DemoConfig, stream: str, *index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, STREAMS[stream], *index])


def sample_object(
    rng: np.random.Generator,
    size: int,
    radius_range: tuple[float, float],
    shape: str | None = None,
    texture: str | None = None,
    margin: float = 0.5,
) -> DrawnObject:
    """One object with random tags (unless given), size, place and look.

    Args:
        radius_range: radius as fractions of the image size.
        margin: how much of the radius the centre keeps from the border (< 1 lets objects be cut off).
    """
    radius = rng.uniform(*radius_range) * size
    low, high = margin * radius, size - margin * radius
    return DrawnObject(
        shape=shape or str(rng.choice(SHAPES)),
        colour=str(rng.choice(list(COLOURS))),
        texture=texture or str(rng.choice(TEXTURES)),
        centre_x=float(rng.uniform(low, high)),
        centre_y=float(rng.uniform(low, high)),
        radius=float(radius),
        angle_deg=float(rng.choice([0.0, 45.0, 90.0, 135.0])),
        period_px=int(max(4, round(size / 16)) + rng.integers(0, 2)),
        tint=tuple(int(v) for v in rng.integers(-20, 21, 3)),
    )


def make_pretrain_scene(config: DemoConfig, split: str, index: int) -> Scene:
    """A multi-label image: a background and several objects, each tagged with shape, colour, texture."""
    rng = make_rng(config, split, index)
    size = config.image_size
    background = str(rng.choice(BACKGROUNDS))
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    objects = [sample_object(rng, size, (0.12, 0.22)) for _ in range(count)]
    image, visible = draw_scene(make_background(background, size, rng), objects, rng)
    labels = {background: 1.0}
    for obj, share in zip(objects, visible):
        if share < MIN_VISIBLE:
            continue
        confidence = 1.0 if share >= SURE_VISIBLE else PARTLY_HIDDEN_CONFIDENCE
        texture_confidence = confidence
        if obj.radius < SMALL_RADIUS * size:
            texture_confidence = min(confidence, SMALL_TEXTURE_CONFIDENCE)
        for tag, value in ((obj.shape, confidence), (obj.colour, confidence), (obj.texture, texture_confidence)):
            labels[tag] = max(labels.get(tag, 0.0), value)
    return Scene(image, labels)


def make_finetune_image(config: DemoConfig, split: str, class_index: int, cls: FinetuneClass, index: int) -> np.ndarray:
    """A single-label image: one object of the class's shape and texture, any colour, any background."""
    rng = make_rng(config, f"finetune-{split}", class_index, index)
    size = config.image_size
    background = str(rng.choice(BACKGROUNDS))
    obj = sample_object(rng, size, (0.22, 0.34), shape=cls.shape, texture=cls.texture, margin=1.0)
    image, _ = draw_scene(make_background(background, size, rng), [obj], rng)
    return image
