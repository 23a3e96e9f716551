"""The Upload page in a real browser: a multi-patient zip is dropped, mapped, built, saved, then trained on.

The server, the Chromium launch settings and the helpers come from tests/test_browser.py; the zip
(40 synthetic patients as a BIDS-like folder: participants.tsv, an FA map, an EDF and a C3D per
patient, two files left out) from tests/test_page_upload.py. Screenshots: tests/artifacts/upload.png,
tests/artifacts/upload-prediction.png, and a tall tests/artifacts/upload-tall.png for README's assets/screenshots/upload.png.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from playwright.sync_api import expect

from core.store.workspace import Workspace
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, choose, settle, streamlit_server
from tests.test_page_upload import cohort_zip

N_PATIENTS = 40
MISSING = (("P00003", "emg"), ("P00007", "kin"))
NAME = "uploaded-browser"
# A tall shot for README; written beside the other artifacts so a test run never edits tracked files
# (copy it to assets/screenshots/upload.png by hand when the page changes).
README_SHOT = Path(__file__).resolve().parent / "artifacts" / "upload-tall.png"

pytestmark = BROWSER_ONLY


def test_upload_a_folder_map_it_save_it_and_train_on_it(page, app_workspace_template, tmp_path, artifacts):
    data, _ = cohort_zip(N_PATIENTS, missing=MISSING)
    workspace = shutil.copytree(app_workspace_template, tmp_path / "workspace")
    with streamlit_server(workspace, tmp_path / "streamlit.log") as url:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/upload")
        page.get_by_role("heading", name="Upload patient data").wait_for()
        page.wait_for_selector(IDLE)

        # Drop the zip.
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
            files=[{"name": "cohort.zip", "mimeType": "application/zip", "buffer": data}]
        )
        page.get_by_role("heading", name="Cohort from cohort.zip").wait_for()
        settle(page)
        assert_page_readable(page)
        main = page.locator("[data-testid=stMain]")
        expect(main.get_by_text("1 patient(s) have no EMG file", exact=False)).to_have_count(1)

        # Map the columns: the guesses are preselected; confirm the outcome and lower the threshold.
        expect(page.locator('input[aria-label="Patient id"]')).to_have_value("participant_id")
        choose(page, "Outcome (improvement %)", "improvement_pct")
        threshold = page.locator('input[aria-label="Responder threshold (% improvement)"]')
        threshold.fill("40")
        threshold.press("Enter")
        settle(page)
        main.get_by_text(re.compile(rf"^{N_PATIENTS} patients · \d+ clinical feature column")).wait_for()

        # Build: every patient's files are read, with a progress bar.
        page.get_by_role("button", name="Read the files and build the cohort").click()
        main.get_by_text(f"Read {N_PATIENTS} patients").wait_for()
        settle(page)
        assert_page_readable(page)
        main.get_by_text(re.compile(rf"^{N_PATIENTS} patients · \d+ features · modalities: dti, emg, kin, clin")).wait_for()
        page.get_by_role("heading", name="Validation report").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "upload.png"))

        # Save under a name: it becomes the current cohort.
        page.locator('input[aria-label="Cohort name"]').fill(NAME)
        page.get_by_role("button", name="Save to workspace").click()
        main.get_by_text("is saved and is the current cohort").wait_for()
        settle(page)
        expect(page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')).to_have_value(NAME)
        saved = Workspace(workspace).load(NAME)
        assert len(saved.patients) == N_PATIENTS and saved.responder_threshold_pct == 40.0
        assert saved.features.loc["P00003", saved.features_of("emg")].isna().all()
        assert saved.features.loc["P00007", saved.features_of("kin")].isna().all()

        # The README's tall screenshot: the page with one patient's files as read.
        page.locator("[data-testid=stCheckbox]").filter(has_text="Show a patient's files as read").click()
        main.locator(".js-plotly-plot").filter(has_text="FA over MNI152").wait_for()
        settle(page)
        page.set_viewport_size({"width": 1400, "height": 4000})
        page.locator("[data-testid=stMain]").evaluate("e => e.scrollTo(0, 0)")
        page.wait_for_timeout(1_000)
        assert_page_readable(page)
        page.screenshot(path=str(README_SHOT))
        page.set_viewport_size({"width": 1400, "height": 3200})

        # Train on it from the Prediction page (2 repeats to stay quick).
        page.get_by_role("link", name="Prediction").click()
        page.get_by_role("heading", name="Treatment-response prediction").wait_for()
        settle(page)
        expect(main.locator("[data-testid=stCaptionContainer]").filter(has_text="patients ·").first).to_contain_text(f"{NAME} · {N_PATIENTS} patients")
        repeats = page.locator('input[aria-label="Repeats"]')
        repeats.fill("2")
        repeats.press("Enter")
        settle(page)
        page.get_by_role("button", name=re.compile(r"^Train \(2 x 5 CV\)")).click()
        main.get_by_text(re.compile(r"trained and saved")).first.wait_for()
        settle(page)
        assert_page_readable(page)
        main.locator(".js-plotly-plot").filter(visible=True).first.wait_for()
        page.wait_for_timeout(1_000)
        assert Workspace(workspace).load(NAME) is not None
        page.screenshot(path=str(artifacts / "upload-prediction.png"))
        assert_page_readable(page, every_tab=True)
