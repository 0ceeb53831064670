"""What the demo world is made of: the tag hierarchy and the finetune classes.

Four trees, as in ML-Images: shapes, colours, textures and backgrounds. Only leaves are drawn;
inner nodes ("polygon", "warm colour", "pattern") are reached through the hierarchy closure.
Finetune classes are (texture, shape) compositions drawn in any colour on any background, so the
pretraining tags are exactly the parts a finetune classifier needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlimages.hierarchy import Category

# (name, children). The longest root-to-leaf path (shape > polygon > quadrilateral > square) has 3 edges.
TREES = (
    ("shape", (
        ("round shape", (("circle", ()), ("ring", ()))),
        ("polygon", (
            ("triangle", ()),
            ("quadrilateral", (("square", ()), ("diamond", ()))),
            ("hexagon", ()),
            ("star", ()),
        )),
        ("line figure", (("cross", ()), ("plus sign", ()))),
    )),
    ("colour", (
        ("warm colour", (("red", ()), ("orange", ()), ("yellow", ()))),
        ("cool colour", (("green", ()), ("blue", ()), ("purple", ()))),
        ("neutral colour", (("grey", ()), ("brown", ()))),
    )),
    ("texture", (
        ("plain", (("solid", ()),)),
        ("pattern", (
            ("linear pattern", (("striped", ()), ("checkered", ()))),
            ("point pattern", (("dotted", ()),)),
        )),
    )),
    ("background", (("light background", ()), ("dark background", ()), ("noisy background", ()))),
)

SHAPES = ("circle", "ring", "triangle", "square", "diamond", "hexagon", "star", "cross", "plus sign")
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 50, 190),
    "grey": (128, 128, 128),
    "brown": (130, 80, 40),
}
TEXTURES = ("solid", "striped", "checkered", "dotted")
BACKGROUNDS = ("light background", "dark background", "noisy background")

FINETUNE_SHAPES = ("circle", "triangle", "square", "star")
FINETUNE_TEXTURES = ("striped", "checkered", "dotted")


@dataclass(frozen=True)
class FinetuneClass:
    wnid: str
    name: str
    shape: str
    texture: str


def make_categories() -> tuple[Category, ...]:
    """The hierarchy, indexed breadth first (roots 0..3), with WordNet-style ids n9xxxxxxx."""
    categories: list[Category] = []
    level = [(name, children, -1) for name, children in TREES]
    while level:
        next_level = []
        for name, children, parent in level:
            index = len(categories)
            categories.append(Category(index, f"n{90000000 + index:08d}", parent, name))
            next_level.extend((child, grandchildren, index) for child, grandchildren in children)
        level = next_level
    return tuple(categories)


def make_finetune_classes() -> tuple[FinetuneClass, ...]:
    """The single-label classes, in sorted-wnid order (= their index in dictionary.txt)."""
    pairs = [(texture, shape) for shape in FINETUNE_SHAPES for texture in FINETUNE_TEXTURES]
    return tuple(
        FinetuneClass(f"n{80000001 + i:08d}", f"{texture} {shape}", shape, texture)
        for i, (texture, shape) in enumerate(pairs)
    )
