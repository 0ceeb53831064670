"""The registry as a person sees it: `mlflow ui` on a throwaway store, in headless Chromium.

The champion's top-1 must be on the first screen of the registered model's page and of the models
list, without a scroll or a click (mlimages.tracking.champion puts it in the model's description
and in a `champion` tag). Skips, saying why, where Debian's Chromium or Playwright is missing.
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
