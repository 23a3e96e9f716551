"""Load benchmark: 10 browser sessions on one server, editing what-if values and switching pages, while a background CV job runs.

``python -m tests.bench_load [seconds] [sessions]`` prints JSON lines (as tests/bench.py's ``emit``):

- ``load_whatif_edit_ms``: p50 and p90 (and max) of the time from committing a what-if value to the
  edited waterfall showing it, over every edit of every session. 10 Chromium pages (one browser,
  10 contexts: 10 separate Streamlit sessions) on one ``streamlit run`` server, each for the given
  time (default 120 s) in a loop: commit a value, wait for its waterfall; every third edit, switch
  to the Cohort page and back and reopen the patient. Meanwhile a background cross-validation job
  (core.jobs, its own process: xgboost, 5 folds x 5 repeats on a 2,000-patient cohort) runs on the
  same workspace.
- ``load_errors``: edits or page switches that failed (a timeout, an exception shown on a page),
  and ``crossed_edits``: times a session saw a value it did not type itself. Each session types
  values of its own (disjoint sets), so seeing another session's value would show a leak.
- ``load_background_job``: the job's state and time; ``load_baseline_edit_ms``: the same edit loop
  with one session and no job, measured first in the same run.
- ``load_bomb_uploads_s``: then 10 sessions at once drop a 2 GiB gzip bomb named ``fa.nii.gz``
  (2 MB on the wire, a valid 8x8x8 NIfTI header followed by zeros) on the Upload page: the time
  from the drop to the refusal shown (median and max), and ``load_after_bombs_edit_ms``, one
  session's what-if edits right after, which show the server still serving.

Without /usr/bin/chromium it prints a line with "skipped" instead. Not a test: nothing is asserted
here; the figures go into README's Benchmarks table.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tests.bench_browser import REDRAWN

N_SESSIONS = 10
DURATION_S = 120.0
SWITCH_EVERY = 3
EDIT_TIMEOUT_MS = 60_000
CHROMIUM = Path("/usr/bin/chromium")
JOB_COHORT = "load"  # the cohort the background CV job trains on
JOB_OWNER = "local"

# The what-if feature's label on the edited waterfall, whatever its value.
_SHOWN_VALUES = """prefix => {
    const plot = document.querySelector('.st-key-fig-wi-waterfall-edited .js-plotly-plot');
    if (!plot) return [];
    return [...plot.querySelectorAll('.ytick text')].map(t => t.textContent).filter(t => t.startsWith(prefix));
}"""


async def _settle(page, started_within_ms: int = 3_000) -> None:
    from tests.browser_support import IDLE, RUNNING, TIMEOUT_MS

    try:
        await page.wait_for_selector(RUNNING, timeout=started_within_ms)
    except Exception:  # noqa: BLE001 - the rerun may have finished before we looked
        pass
    await page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


async def _open_prediction(page, url: str | None) -> None:
    from tests.browser_support import IDLE

    if url:
        await page.goto(url)
        await page.wait_for_selector(IDLE)
    await page.locator("[data-testid=stSidebarNav] a").filter(has_text="Prediction").click()
    await page.get_by_role("heading", name="Treatment-response prediction").wait_for()
    await page.wait_for_selector(IDLE)


async def _open_whatif(page, patient: str, feature: str) -> None:
    """The async twin of tests.test_browser_prediction.open_whatif, from an open Prediction page."""
    from core.data.schema import MODALITY_LABELS, modality_of
    from tests.test_browser_prediction import WHATIF_TAB

    await page.get_by_text("(loaded saved run)").wait_for()
    await page.get_by_role("tab", name=WHATIF_TAB, exact=True).click()
    panel = page.locator("[data-testid=stMain] [data-testid=stTabs] [role=tabpanel]").filter(visible=True).first
    chooser = panel.locator('input[aria-label^="Patient ("]')
    await chooser.click()
    await chooser.fill(patient)
    await page.get_by_role("option", name=re.compile(rf"^{re.escape(patient)} ")).click()
    await _settle(page)
    await panel.locator("[data-testid=stButtonGroup]").get_by_role("radio", name=MODALITY_LABELS[modality_of(feature)], exact=True).click()
    await _feature_input(page, feature).wait_for()


def _feature_input(page, feature: str):
    panel = page.locator("[data-testid=stMain] [data-testid=stTabs] [role=tabpanel]").filter(visible=True).first
    return panel.locator(f'input[aria-label="{feature.split(".", 1)[1]}"]').filter(visible=True)


async def _session(browser, url: str, patient: str, feature: str, values: list[float], deadline: float, switch_every: int) -> dict:
    """One user: edit, check, sometimes switch pages, until ``deadline``. Returns its timings and failures."""
    from tests.browser_support import TIMEOUT_MS
    from tests.test_browser_prediction import waterfall_label

    context = await browser.new_context(viewport={"width": 1400, "height": 3000})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    own = {waterfall_label(feature, v) for v in values}
    prefix = f"{feature} = "
    out = {"edit_ms": [], "errors": [], "crossed": 0, "switches": 0}
    try:
        await _open_prediction(page, url)
        await _open_whatif(page, patient, feature)
        i = 0
        while time.monotonic() < deadline:
            value = values[i % len(values)]
            i += 1
            try:
                box = _feature_input(page, feature)
                await box.fill(f"{value:g}")
                start = time.perf_counter()
                await box.press("Enter")
                await page.wait_for_function(REDRAWN, arg=waterfall_label(feature, value), polling="raf", timeout=EDIT_TIMEOUT_MS)
                out["edit_ms"].append(1000 * (time.perf_counter() - start))
                shown = set(await page.evaluate(_SHOWN_VALUES, prefix))
                out["crossed"] += len(shown - own)
                if await page.locator("[data-testid=stException]").count():
                    out["errors"].append("exception shown: " + " | ".join(await page.locator("[data-testid=stException]").all_inner_texts())[:300])
                if switch_every and i % switch_every == 0 and time.monotonic() < deadline:
                    await page.locator("[data-testid=stSidebarNav] a").filter(has_text="Cohort").click()
                    await page.get_by_role("heading", name=re.compile("Cohort")).first.wait_for()
                    await _settle(page)
                    await _open_prediction(page, None)
                    await _open_whatif(page, patient, feature)
                    out["switches"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported, then the session goes on from the app's start
                out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                try:
                    await _open_prediction(page, url)
                    await _open_whatif(page, patient, feature)
                except Exception as again:  # noqa: BLE001
                    out["errors"].append(f"reopen failed: {type(again).__name__}")
                    break
    finally:
        await context.close()
    return out


async def _drop_bomb(browser, url: str, bomb: bytes) -> dict:
    """One user drops a bomb on the Upload page; the seconds until the page shows its refusal, and the message."""
    from tests.browser_support import IDLE, TIMEOUT_MS

    context = await browser.new_context(viewport={"width": 1400, "height": 2000})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(f"{url}/upload")
        await page.get_by_role("heading", name="Upload patient data").wait_for()
        await page.wait_for_selector(IDLE)
        start = time.perf_counter()
        await page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
            files=[{"name": "fa.nii.gz", "mimeType": "application/gzip", "buffer": bomb}])
        error = page.locator("[data-testid=stAlertContentError]").first
        await error.wait_for()
        return {"seconds": time.perf_counter() - start, "message": (await error.inner_text()).strip()}
    except Exception as exc:  # noqa: BLE001 - reported as an error of the run
        return {"seconds": float("nan"), "message": "", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    finally:
        await context.close()


async def _drop_bombs(url: str, bomb: bytes, n_sessions: int) -> list[dict]:
    from playwright.async_api import async_playwright

    from tests.browser_support import CHROMIUM_ARGS

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(_drop_bomb(browser, url, bomb) for _ in range(n_sessions)))
        finally:
            await browser.close()


async def _drive(url: str, patient: str, feature: str, values: list[float], n_sessions: int, duration_s: float, switch_every: int) -> list[dict]:
    from playwright.async_api import async_playwright

    from tests.browser_support import CHROMIUM_ARGS

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # Sessions open one after another (as users arrive) and then all edit until the same deadline.
            deadline = time.monotonic() + duration_s
            shares = [values[k::n_sessions] for k in range(n_sessions)]  # disjoint values per session
            return await asyncio.gather(*(_session(browser, url, patient, feature, shares[k], deadline, switch_every) for k in range(n_sessions)))
        finally:
            await browser.close()


def _quantiles(ms: list[float]) -> dict:
    if len(ms) < 2:
        return {"edits": len(ms)}
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[-1]
    return {"p50_ms": round(statistics.median(ms), 1), "p90_ms": round(p90, 1), "max_ms": round(max(ms), 1), "edits": len(ms)}


def main(duration_s: float = DURATION_S, n_sessions: int = N_SESSIONS) -> None:
    from core.jobs import JobRunner, cv_job
    from core.modelling.validation import CVSettings
    from core.store.workspace import Workspace
    from core.synth.config import presets
    from core.synth.generator import generate_cohort
    from tests.bench import emit
    from tests.bomb_support import gzip_bomb, nifti_header
    from tests.browser_support import streamlit_server
    from tests.test_browser_prediction import FEATURE, pick_edit, prediction_workspace

    if not CHROMIUM.exists():
        print(json.dumps({"figure": "load_whatif_edit_ms", "skipped": f"no {CHROMIUM}"}), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        # The job's cohort first: the app opens the newest cohort, the one with the saved run.
        Workspace(Path(tmp) / "workspace").save(generate_cohort(replace(presets()["default"], name=JOB_COHORT)))
        workspace = prediction_workspace(Path(tmp) / "workspace")
        patient, values = pick_edit(workspace, 4 * N_SESSIONS)
        ws = Workspace(workspace)
        with streamlit_server(workspace, Path(tmp) / "streamlit.log") as url:
            baseline = asyncio.run(_drive(url, patient, FEATURE, values[: 2 * SWITCH_EVERY], 1, min(30.0, duration_s), 0))
            emit("load_baseline_edit_ms", _quantiles(baseline[0]["edit_ms"]).get("p50_ms", float("nan")), "ms", sessions=1, background_job=False,
                 **_quantiles(baseline[0]["edit_ms"]), errors=len(baseline[0]["errors"]))

            runner = JobRunner(workspace)
            cohort = ws.load(JOB_COHORT)
            params, key = cv_job(cohort, CVSettings(n_splits=5, n_repeats=5))
            job = runner.submit("cv", params, owner=JOB_OWNER, key=key)
            sessions = asyncio.run(_drive(url, patient, FEATURE, values, n_sessions, duration_s, SWITCH_EVERY))
            at_end_of_load = runner.status(job.id)
            job_state = runner.wait(job.id, timeout_s=900) if at_end_of_load.active else at_end_of_load

            bomb = gzip_bomb(Path(tmp) / "fa.nii.gz", 2 << 30, nifti_header((8, 8, 8))).read_bytes()
            refusals = asyncio.run(_drop_bombs(url, bomb, n_sessions))
            after = asyncio.run(_drive(url, patient, FEATURE, values[: 2 * SWITCH_EVERY], 1, min(20.0, duration_s), 0))
            log = (Path(tmp) / "streamlit.log").read_text(errors="replace")
        edits = [ms for s in sessions for ms in s["edit_ms"]]
        errors = [e for s in sessions for e in s["errors"]]
        emit("load_whatif_edit_ms", _quantiles(edits).get("p50_ms", float("nan")), "ms", sessions=n_sessions, duration_s=duration_s,
             background_job="cv 5x5, 2,000 patients", **_quantiles(edits), per_session_edits=[len(s["edit_ms"]) for s in sessions],
             page_switches=sum(s["switches"] for s in sessions))
        emit("load_errors", float(len(errors)), "errors", crossed_edits=sum(s["crossed"] for s in sessions), examples=errors[:5],
             server_tracebacks=log.count("Traceback"))
        seconds = [r["seconds"] for r in refusals if "error" not in r]
        refused = sum("decompression bomb" in r["message"] for r in refusals)
        emit("load_bomb_uploads_s", statistics.median(seconds) if seconds else float("nan"), "s", sessions=n_sessions, bomb="2 GiB of zeros behind a valid NIfTI header",
             max_s=round(max(seconds), 3) if seconds else None, refused_as_bombs=refused, errors=[r["error"] for r in refusals if "error" in r][:3],
             message=refusals[0]["message"][:200])
        emit("load_after_bombs_edit_ms", _quantiles(after[0]["edit_ms"]).get("p50_ms", float("nan")), "ms", sessions=1, **_quantiles(after[0]["edit_ms"]),
             errors=len(after[0]["errors"]))
        emit("load_background_job", float(job_state.status == "done"), "done (1) or not (0)", status=job_state.status, job_kind="cv",
             status_when_load_ended=at_end_of_load.status, progress_when_load_ended=f"{at_end_of_load.done}/{at_end_of_load.total}",
             started=job_state.started, finished=job_state.finished, message=(job_state.message or "")[:200])


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else DURATION_S, int(sys.argv[2]) if len(sys.argv) > 2 else N_SESSIONS)
