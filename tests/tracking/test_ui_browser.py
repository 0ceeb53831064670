"""The registry as a person sees it: `mlflow ui` on a throwaway store, in headless Chromium.

The champion's top-1 must be on the first screen of the registered model's page and of the models
list, without a scroll or a click (mlimages.tracking.champion puts it in the model's description
and in a `champion` tag), and a version's metric tags come before its lineage tags wherever the
UI lists them: in the versions table (the order of the REST response) and on the version's page
(a table sorted by key). Skips, saying why, where Debian's Chromium or Playwright is missing.
"""

from __future__ import annotations

import pytest

from mlimages.tracking.ui_browser import chromium_page, find_chromium, mlflow_ui

pytest.importorskip("playwright", reason="playwright not installed (pip install -e '.[test]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="no system Chromium (make chromium, or apt-get install chromium)"),
]

CHAMPION_TEXT = "top1_224 50.00%"  # served_model's champion: version 1 with top1_224 = 0.5
TOP1_TAG = "eval.top1_224"
LINEAGE_TAGS = ("mlimages.training_data", "git_commit", "mlimages.data_version")


def assert_on_first_screen(page, text: str) -> None:
    """`text` is shown inside the viewport of the page as loaded (no scrolling)."""
    from playwright.sync_api import expect

    found = page.get_by_text(text, exact=False).first
    expect(found).to_be_visible(timeout=60_000)
    expect(found).to_be_in_viewport()
    box, height = found.bounding_box(), page.viewport_size["height"]
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, (text, box, height)
    assert page.evaluate("window.scrollY") == 0


@pytest.fixture(scope="module")
def ui_address(tracking_store, served_model):
    with mlflow_ui(tracking_store) as address:
        yield address


@pytest.fixture(scope="module")
def page():
    with chromium_page() as page:
        yield page


def test_champion_top1_is_on_the_first_screen_of_the_model_page(ui_address, page, served_model):
    page.goto(f"{ui_address}/#/models/{served_model}")
    assert_on_first_screen(page, CHAMPION_TEXT)
    assert_on_first_screen(page, "Champion: version 1")


def test_champion_top1_is_on_the_models_list(ui_address, page, served_model):
    page.goto(f"{ui_address}/#/models")
    page.get_by_text(served_model).first.wait_for(timeout=60_000)
    assert_on_first_screen(page, CHAMPION_TEXT)


def screen_position(page, text: str) -> tuple[float, float]:
    """Where `text` first shows, as a reader meets it: top to bottom, then left to right."""
    found = page.get_by_text(text, exact=True).first
    found.wait_for(timeout=60_000)
    box = found.bounding_box()
    assert box is not None, text
    return (round(box["y"]), box["x"])


def assert_top1_before_lineage(page) -> None:
    top1 = screen_position(page, TOP1_TAG)
    for key in LINEAGE_TAGS:
        assert top1 < screen_position(page, key), (key, top1)


def test_versions_table_lists_the_top1_tag_before_the_lineage(ui_address, page, served_model):
    page.goto(f"{ui_address}/#/models/{served_model}")
    assert_top1_before_lineage(page)


def test_version_page_lists_the_top1_tag_before_the_lineage(ui_address, page, served_model):
    page.goto(f"{ui_address}/#/models/{served_model}/versions/1")
    assert_top1_before_lineage(page)
