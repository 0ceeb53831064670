"""`dvc plots show` pages that draw without internet (scripts/offline_plots.py, mlimages.plots_page).

The browser test opens the written page in headless Chromium with every request that is not a
local file refused, as on a machine without internet, and counts the charts Vega drew; DVC's own
page, opened the same way, draws none (its libraries come from a CDN).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlimages.plots_page import make_offline_page
from mlimages.tracking.ui_browser import chromium_page, find_chromium

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_page_inlines_the_libraries_and_loads_nothing():
    page = make_offline_page()
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page  # DVC's CDN tags go into {scripts}
    assert "<script src" not in page and "window.vegaEmbed=" in page.replace(" ", "")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def plots_project(tmp_path_factory) -> Path:
    """A DVC project with two plots like dataset_stats' (CSV, x and y named in dvc.yaml)."""
    project = tmp_path_factory.mktemp("plots")
    run(project, str(BIN / "dvc"), "init", "--no-scm", "-q")
    (project / "images_per_class.csv").write_text("rank,images\n" + "".join(f"{i},{100 - 3 * i}\n" for i in range(30)))
    (project / "tags_per_image.csv").write_text("tags,images\n2,40\n3,25\n4,10\n")
    (project / "dvc.yaml").write_text(
        "plots:\n  - images_per_class.csv:\n      x: rank\n      y: images\n"
        "  - tags_per_image.csv:\n      x: tags\n      y: images\n")
    return project


def count_drawn_charts(page, html: Path) -> int:
    """Open `html` offline (only file:// requests pass) and count the charts Vega drew."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(3000)
    return page.locator("canvas, svg.marks").count()


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no system Chromium (make chromium, or apt-get install chromium)")
def test_plots_draw_without_internet(plots_project):
    pytest.importorskip("playwright", reason="playwright not installed (pip install -e '.[test]')")
    run(plots_project, sys.executable, str(REPO / "scripts" / "offline_plots.py"), "-o", "offline")
    run(plots_project, str(BIN / "dvc"), "plots", "show", "-o", "default")
    with chromium_page() as page:
        assert count_drawn_charts(page, plots_project / "offline" / "index.html") == 2
    with chromium_page() as page:
        assert count_drawn_charts(page, plots_project / "default" / "index.html") == 0  # the CDN is out of reach
