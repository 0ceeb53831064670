"""mlimages: Tencent ML-Images rebuilt as a tracked, reproducible experiment platform."""

__version__ = "0.1.0"
