"""mlimages: Tencent ML-Images rebuilt as a tracked, reproducible experiment platform."""

import os

# TensorFlow's C++ start-up notices (oneDNN, CPU features) would bury our one-line errors on stderr.
# setdefault: a user who wants them sets TF_CPP_MIN_LOG_LEVEL=0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
