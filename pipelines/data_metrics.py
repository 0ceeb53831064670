"""data_metrics stage: the small DVC metrics files a person reads, from the stages' full reports.

    python pipelines/data_metrics.py --reports reports --out metrics

Writes metrics/data/*.json (counts per split) and metrics/download/*.json (download health);
the reports keep every detail. See `mlimages.data_metrics`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mlimages.data_metrics import data_rows, write_rows
from mlimages.errors import exit_on_input_error


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", default="reports", help="folder of the stages' JSON reports")
    parser.add_argument("--out", default="metrics", help="folder for data/*.json and download/*.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    written = write_rows(data_rows(Path(args.reports)), args.out)
    logging.info("wrote %s", ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
