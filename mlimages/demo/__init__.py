"""The embedded demo world: a small, deterministic ML-Images-like dataset made on the spot.

Pretraining images show several coloured, textured shapes on a background and carry multi-label
annotations in a four-tree hierarchy (shape, colour, texture, background). The finetune task is a
single-label problem in ImageNet's folder layout whose classes are compositions of the same
primitives ("striped star", "dotted circle", ...), so a network pretrained on the multi-label
world should learn the finetune task from few images faster than one trained from scratch, as the
paper claims for ML-Images and ImageNet.
"""

from mlimages.demo.config import DemoConfig
from mlimages.demo.writer import make_demo_world

__all__ = ["DemoConfig", "make_demo_world"]
