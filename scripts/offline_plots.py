"""`dvc plots show` that works without internet: the Vega libraries inlined in the page.

    python scripts/offline_plots.py [-o dvc_plots] [DVC PLOTS SHOW ARGUMENTS ...]

Writes the page template (mlimages.plots_page) to OUT/offline-template.html, then runs
`dvc plots show --html-template ... -o OUT`; open OUT/index.html in any browser, online or not.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from mlimages.errors import exit_on_input_error
from mlimages.plots_page import write_offline_page


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="dvc_plots", help="folder for index.html (default: dvc_plots)")
    args, rest = parser.parse_known_args(argv)
    template = write_offline_page(Path(args.out) / "offline-template.html")
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    command = [dvc, "plots", "show", "--html-template", str(template.resolve()), "-o", args.out, *rest]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
