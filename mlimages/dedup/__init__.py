"""Data hygiene: perceptual hashes, near-duplicate groups and train -> evaluation leakage.

Modules, in the order the stage uses them: `phash` (the 64-bit hash of a decoded image),
`hashes` (a set of images as hash columns, backfilling missing hashes from the stored images),
`search` (exact multi-index Hamming search), `groups` (union-find), `analysis` (groups and
leaks), `outputs` (the stage's files and their readers), `sheet` (the contact sheet), `stage`.
"""

from mlimages.dedup.config import DedupConfig
from mlimages.dedup.phash import compute_phash, format_phash

__all__ = ["DedupConfig", "compute_phash", "format_phash"]
