"""The TMS threshold-maps page in a real browser: open /tms, move the coil, see the map redraw.

The server, the Chromium launch settings and the helpers come from tests/test_browser.py. The
workspace is empty: the page needs no cohort. Screenshots: tests/artifacts/tms.png (after moving
the coil) and tests/artifacts/tms_default.png (before); the README's tall
tests/artifacts/tms-tall.png (README's assets/screenshots/tms.png) shows the threshold map after the move.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, settle, streamlit_server

pytestmark = BROWSER_ONLY

# A tall shot for README; written beside the other artifacts so a test run never edits tracked files
# (copy it to assets/screenshots/tms.png by hand when the page changes).
README_SHOT = Path(__file__).resolve().parent / "artifacts" / "tms-tall.png"
CENTRE = re.compile(r"coil centre \(([-\d, ]+)\) mm")


def set_number(page, label: str, value: str) -> None:
    box = page.locator(f'input[aria-label="{label}"]')
    box.fill(value)
    box.press("Enter")
    settle(page)


def surface(page):
    return page.locator(".js-plotly-plot").filter(has_text="hemisphere ·").first


def coil_centre(page) -> str:
    text = page.locator("[data-testid=stCaptionContainer]").filter(has_text="coil centre").first.inner_text()
    return CENTRE.search(text).group(1)


def test_move_the_coil_and_the_map_redraws(page, tmp_path, artifacts):
    with streamlit_server(tmp_path / "workspace", tmp_path / "streamlit.log") as url:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/tms")
        page.wait_for_selector(IDLE)
        page.get_by_role("heading", name="TMS threshold maps").wait_for()
        surface(page).locator("canvas").first.wait_for(state="attached")
        page.wait_for_selector(IDLE)
        assert_page_readable(page)
        before = coil_centre(page)
        title_before = surface(page).locator(".gtitle").text_content()
        page.wait_for_timeout(1_000)  # let plotly finish drawing
        page.screenshot(path=str(artifacts / "tms_default.png"))

        # Move the coil 10 mm forwards and turn the handle: the map is recomputed and redrawn.
        set_number(page, "Anterior offset (mm)", "10")
        set_number(page, "Handle angle (°)", "90")
        expect(page.locator("[data-testid=stCaptionContainer]").filter(has_text="coil centre").first).not_to_have_text(
            re.compile(re.escape(f"({before})")))
        assert coil_centre(page) != before
        assert page.locator('input[aria-label="Handle angle (°)"]').input_value() == "90.00"
        figure = surface(page)
        figure.locator("canvas").first.wait_for(state="attached")
        assert figure.locator(".gtitle").text_content() == title_before  # same view, new placement
        page.wait_for_selector(IDLE)
        assert_page_readable(page)
        page.wait_for_timeout(1_500)  # plotly's WebGL redraw
        page.screenshot(path=str(artifacts / "tms.png"))

        # The threshold map, for the README.
        page.locator("[data-testid=stRadio] label").filter(has_text="Threshold (A/µs)").click()
        settle(page)
        expect(surface(page).locator(".gtitle")).to_contain_text("Threshold (A/µs)")
        assert_page_readable(page)
        page.set_viewport_size({"width": 1400, "height": 3000})
        page.wait_for_timeout(1_500)
        page.screenshot(path=str(README_SHOT))
