"""A training output folder belongs to one run key: checkpoints of other params are set aside.

The same command resumes from the folder's last checkpoint. A changed command (other params, or
a finetune source alias that now names another version) gets a new run key; restoring the old
checkpoints there would skip training or continue weights trained with other settings. The
folder remembers its key in `run_key.txt`, and a new key moves the old checkpoints to
``checkpoints-<old key>`` (kept, never deleted) so the new run starts from its first step.
"""

from __future__ import annotations

import logging
from pathlib import Path

KEY_FILE = "run_key.txt"
CHECKPOINTS = "checkpoints"

_log = logging.getLogger(__name__)


def claim_output_folder(out_dir: str | Path, run_key: str) -> None:
    """Make `out_dir` the folder of `run_key`, setting aside checkpoints written under another key.

    Checkpoints without a key file (written before folders had one) are set aside too: their params
    are unknown.
    """
    out_dir = Path(out_dir)
    key_file, checkpoints = out_dir / KEY_FILE, out_dir / CHECKPOINTS
    previous = key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else None
    if previous != run_key and checkpoints.is_dir() and any(checkpoints.iterdir()):
        aside = out_dir / f"{CHECKPOINTS}-{(previous or 'unkeyed')[:12]}"
        suffix = 1
        while aside.exists():
            aside, suffix = out_dir / f"{CHECKPOINTS}-{(previous or 'unkeyed')[:12]}-{suffix}", suffix + 1
        checkpoints.rename(aside)
        _log.info("params or source changed: earlier checkpoints moved to %s; training starts afresh", aside)
    out_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(run_key + "\n", encoding="utf-8")
