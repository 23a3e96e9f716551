"""Browser benchmark: from committing a what-if value to the edited waterfall redrawn with it.

``python -m tests.bench_browser`` prints one JSON line (as tests/bench.py's ``emit``):

- ``whatif_slider_to_waterfall_ms``: a real ``streamlit run`` server on a 200-patient cohort with a
  saved 5 x 5 responder run (the workspace of tests/test_browser_prediction.py), driven by headless
  Chromium. On the Prediction page's what-if tab, one Parkinson's patient's levodopa response is
  typed into its number input; the clock runs from the Enter that commits it until the edited
  waterfall's drawn SVG shows the bar label with the new value *and* the app is idle again (the
  what-if fragment's rerun finished). Median and 90th percentile over 15 edits, after one warm-up
  edit. Every value is chosen beforehand to change the shown prediction, so each edit is a full
  update. Wall time in this process, so it includes Playwright's round trips (a few ms).

The name says "slider" for the figure in README's table; the editor's inputs are number inputs.
Without /usr/bin/chromium it prints a line with "skipped" instead.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

FIGURE = "whatif_slider_to_waterfall_ms"
BAR_MS = 300
N_EDITS = 15
CHROMIUM = Path("/usr/bin/chromium")

# True once the edited waterfall's drawn y-axis shows ``label`` and no script is running.
REDRAWN = """label => {
    const app = document.querySelector('[data-testid=stApp]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const plot = document.querySelector('.st-key-fig-wi-waterfall-edited .js-plotly-plot');
    if (!plot) return false;
    return [...plot.querySelectorAll('.ytick text')].some(t => t.textContent === label);
}"""


def bench_whatif_redraw(n_edits: int = N_EDITS) -> dict | None:
    if not CHROMIUM.exists():
        print(json.dumps({"figure": FIGURE, "skipped": f"no {CHROMIUM}"}), flush=True)
        return None

    from playwright.sync_api import sync_playwright

    from tests.bench import emit
    from tests.browser_support import CHROMIUM_ARGS, streamlit_server
    from tests.test_browser_prediction import FEATURE, feature_input, open_whatif, pick_edit, prediction_workspace, waterfall_label

    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        workspace = prediction_workspace(Path(tmp) / "workspace")
        patient, values = pick_edit(workspace, n_edits + 1)  # the first edit warms up
        with streamlit_server(workspace, Path(tmp) / "streamlit.log") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 3000})
                open_whatif(page, url, patient)
                box = feature_input(page)
                times = []
                for value in values:
                    box.fill(f"{value:g}")  # typed, not committed yet
                    start = time.perf_counter()
                    box.press("Enter")
                    page.wait_for_function(REDRAWN, arg=waterfall_label(FEATURE, value), polling="raf", timeout=30_000)
                    times.append(1000 * (time.perf_counter() - start))
                if page.locator("[data-testid=stException]").count():
                    raise AssertionError(f"the page shows an exception: {page.locator('[data-testid=stException]').all_inner_texts()}")
            finally:
                browser.close()
    runs = times[1:]
    p90 = statistics.quantiles(runs, n=10, method="inclusive")[-1]
    extra = dict(runs=len(runs), p90_ms=round(p90, 1), min_ms=round(min(runs), 1), max_ms=round(max(runs), 1), warmup_ms=round(times[0], 1),
                 feature=FEATURE, patient=patient, browser="chromium --headless")
    emit(FIGURE, statistics.median(runs), "ms", bar=BAR_MS, **extra)
    return {"value": statistics.median(runs), **extra}


if __name__ == "__main__":
    bench_whatif_redraw()
