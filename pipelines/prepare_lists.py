"""prepare_lists stage: close, merge, filter and shuffle the raw lists into data/lists/{train,val}.tsv.

    python pipelines/prepare_lists.py --hierarchy H --train T --val V --out data/lists --report reports/lists.json
"""

from __future__ import annotations

import argparse
import logging

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.files import write_report
from mlimages.lists import ListsConfig, prepare_lists


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hierarchy", required=True, help="dictionary_and_semantic_hierarchy.txt")
    parser.add_argument("--train", required=True, help="raw training list (ML-Images format)")
    parser.add_argument("--val", required=True, help="raw validation list (ML-Images format)")
    parser.add_argument("--out", required=True, help="folder for train.tsv and val.tsv")
    parser.add_argument("--report", required=True, help="JSON report (DVC metrics)")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `lists` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = load_params("lists", ListsConfig, args.params)
    report = prepare_lists(args.hierarchy, args.train, args.val, args.out, config)
    write_report(report, args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
