"""demo_world stage: make the embedded demo world (hierarchy, URL lists, images, finetune task).

    python pipelines/make_demo_world.py --out data/demo [--params params.yaml]
"""

from __future__ import annotations

import argparse
import logging

from mlimages.config import load_params
from mlimages.demo import DemoConfig, make_demo_world
from mlimages.errors import exit_on_input_error


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder of the demo world (replaced)")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `demo` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    make_demo_world(load_params("demo", DemoConfig, args.params), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
