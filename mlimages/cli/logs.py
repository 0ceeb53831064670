"""What the console script prints on stderr: its own messages, not TensorFlow's.

TensorFlow's C++ core logs start-up notes (CPU instructions, oneDNN, XLA services) to stderr,
which bury the one line a user needs. Most obey ``TF_CPP_MIN_LOG_LEVEL``, read when TensorFlow is
first imported, so it is set here before any command module runs. Two do not: each of
TensorFlow's native libraries prints the oneDNN note through absl before absl's logging is
initialised, whatever the level. Those are written while ``import tensorflow`` runs, so that one
import happens with the process's stderr (file descriptor 2) pointed at a temporary file, which
is replayed only if the import fails. ``--verbose`` leaves all of this alone, and a level the
user exported wins.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile

# Environment read by TensorFlow's C++ logging (2: errors only) and by gRPC, when first imported.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}
# Python loggers of libraries that log notes on import or model load.
QUIET_LOGGERS = ("absl", "tensorflow", "h5py")


def configure_logging(verbose: bool) -> None:
    """Our messages at INFO (DEBUG when verbose); TensorFlow's and absl's silenced unless verbose."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    if verbose:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with native stderr captured; replay what it printed if the import fails."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
