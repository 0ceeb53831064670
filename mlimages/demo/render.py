"""Draw demo images with numpy: shapes as masks, textures as two-tone patterns, backgrounds.

Everything is computed on pixel-centre coordinates, so a drawing depends only on its parameters
(and not on the order or number of other images). Masks are evaluated on a grid twice the image
size, centred on it, so the share of an object cut off by the border is known exactly: labels of
mostly hidden objects are weakened or left out by the scene sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from mlimages.demo.world import COLOURS


@dataclass(frozen=True)
class DrawnObject:
    """One object: its tags, where it is, and the free parameters of its look."""

    shape: str
    colour: str
    texture: str
    centre_x: float
    centre_y: float
    radius: float
    angle_deg: float  # orientation of stripes
    period_px: int  # stripe / check / dot spacing
    tint: tuple[int, int, int]  # colour jitter added to the base colour


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of `shape` with radius `r`, given offsets from its centre (y grows downwards)."""
    ax, ay = np.abs(dx), np.abs(dy)
    d = np.hypot(dx, dy)
    if shape == "circle":
        return d <= r
    if shape == "ring":
        return (d <= r) & (d >= 0.55 * r)
    if shape == "triangle":
        return (dy <= 0.8 * r) & (ax <= (dy + r) / 1.8)
    if shape == "square":
        return np.maximum(ax, ay) <= 0.8 * r
    if shape == "diamond":
        return ax + ay <= r
    if shape == "hexagon":
        return (ay <= 0.866 * r) & (1.732 * ax + ay <= 1.732 * r)
    if shape == "star":
        theta = np.arctan2(dy, dx) + np.pi / 2
        return d <= r * (0.45 + 0.55 * ((np.cos(5 * theta) + 1) / 2) ** 2)
    if shape == "cross":
        return (np.maximum(ax, ay) <= 0.85 * r) & (np.abs(ax - ay) <= 0.3 * r)
    if shape == "plus sign":
        return (np.maximum(ax, ay) <= r) & (np.minimum(ax, ay) <= 0.25 * r)
    raise ValueError(f"unknown shape {shape!r}")


def texture_mask(texture: str, x: np.ndarray, y: np.ndarray, angle_deg: float, period: int) -> np.ndarray:
    """True where a pixel takes the object's base colour, False where it takes the darker shade."""
    if texture == "solid":
        return np.ones_like(x, dtype=bool)
    if texture == "striped":
        a = np.deg2rad(angle_deg)
        return np.floor((x * np.cos(a) + y * np.sin(a)) / (period / 2)) % 2 == 0
    if texture == "checkered":
        half = max(2, round(period * 0.75))  # larger than the dots' spacing, so the two differ
        return (np.floor(x / half) + np.floor(y / half)) % 2 == 0
    if texture == "dotted":
        fx, fy = (x % period) - period / 2, (y % period) - period / 2
        return np.hypot(fx, fy) > period / 3.5
    raise ValueError(f"unknown texture {texture!r}")


def make_background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) float background: light, dark, or smooth random blotches."""
    if kind == "light background":
        return np.broadcast_to(rng.uniform(210, 245, 3), (size, size, 3)).copy()
    if kind == "dark background":
        return np.broadcast_to(rng.uniform(10, 45, 3), (size, size, 3)).copy()
    if kind == "noisy background":
        coarse = rng.uniform(60, 200, (6, 6, 3)).astype(np.uint8)
        smooth = Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(smooth, dtype=np.float64)
    raise ValueError(f"unknown background {kind!r}")


def draw_scene(background: np.ndarray, objects: list[DrawnObject], rng: np.random.Generator):
    """Draw `objects` in order onto `background`.

    Returns:
        ``(image, visible)``: the (size, size, 3) uint8 image and, per object, the share of its
        full area that is in the frame and not covered by a later object.
    """
    size = background.shape[0]
    image = background.copy()
    coords = np.arange(-size // 2, size + size // 2) + 0.5  # padded grid, frame at [size//2, size//2 + size)
    gx, gy = np.meshgrid(coords, coords)
    frame = slice(size // 2, size // 2 + size)
    owner = np.full((size, size), -1)
    areas = []
    for k, obj in enumerate(objects):
        full = shape_mask(obj.shape, gx - obj.centre_x, gy - obj.centre_y, obj.radius)
        areas.append(max(1, int(full.sum())))
        inside = full[frame, frame]
        base = np.clip(np.array(COLOURS[obj.colour]) + np.array(obj.tint), 0, 255)
        tone = texture_mask(obj.texture, gx[frame, frame], gy[frame, frame], obj.angle_deg, obj.period_px)
        pixels = np.where(tone[..., None], base, base * 0.35)  # (size, size, 3)
        image[inside] = pixels[inside]
        owner[inside] = k
    visible = [float((owner == k).sum()) / area for k, area in enumerate(areas)]
    image = image + rng.normal(0.0, 5.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), visible
