"""The Upload page driven through AppTest: a multi-patient zip becomes a saved cohort; bad files are refused.

Every test runs app.py (navigation + sidebar) and switches to pages/upload.py on a private copy of
the "tiny" workspace (conftest.py). Files go in through the real ``st.file_uploader``: AppTest
(Streamlit >= 1.50) uploads them with ``at.file_uploader(key=...).set_value(...)``, so the page
needs no test seam. The zip is a synthetic cohort's raw data written by core.io.export;
:func:`cohort_zip` is shared with the browser test.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.anatomy import load_anatomy
from core.io.diffusion import diffusion_to_mni
from core.io.export import upload_folder_zip
from core.io.writers import nifti_gz_bytes
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.app_support import APP, no_exception
from tests.io_support import dwi_files, nifti_bytes, write_c3d
from tests.test_io_upload import _emg_csv, _emg_edf, _fa_map

PAGE = "pages/upload.py"
UPLOADER = "upload-files"

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


# --- a multi-patient upload made from synthetic patients -----------------------------------------


def fa_nifti_gz(fa: np.ndarray, *, native: bool = False) -> bytes:
    """An FA map on the MNI152 2 mm grid, as the exporter writes it (8-bit, labelled MNI).

    ``native``: cropped to a grid no MNI template uses, moved 6 mm and labelled scanner space, so
    that it must be registered (and the registration checked).
    """
    affine, code = load_anatomy().affine.copy(), 4
    fa = np.asarray(fa, np.float32)
    if native:
        fa, code = fa[2:-2, 2:-3, 1:-4], 1
        affine[:3, 3] += affine[:3, :3] @ [2, 2, 1] + [6.0, -6.0, 4.0]
    return nifti_gz_bytes(fa, affine, space_code=code)


MEASURE = "fmue_total_w12"  # an outcome-bank measure in the table: guessed as a measure, never a feature


@lru_cache(maxsize=4)
def cohort_zip(n_patients: int, seed: int = 5, missing: tuple = (), native: tuple = ()) -> tuple[bytes, pd.DataFrame]:
    """A zip of a BIDS-like folder (:func:`core.io.export.upload_folder_zip`): ``participants.tsv`` plus,
    per patient, an FA map, an EDF and a C3D.

    ``missing``: (patient id, modality) pairs whose file is left out; ``native``: patients whose FA
    map is in scanner space. Returns the zip and the source cohort's features of the patients in
    it (to compare with what the page reads).
    """
    config = CohortConfig(name="upload-source", n_patients=max(n_patients, 10), seed=seed, missing_rate={"dti": 0.0, "emg": 0.0, "kin": 0.0})
    source = generate_cohort(config, n_jobs=1)
    ids = list(source.patients.index[:n_patients])
    folders = {"dti": "dwi", "emg": "emg", "kin": "motion"}
    dropped = {f"cohort/sub-{pid}/{folders[modality]}/" for pid, modality in missing}
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(upload_folder_zip(source, ids, measures=[MEASURE]))) as written, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in written.namelist():
            if any(name.startswith(prefix) for prefix in dropped):
                continue
            pid = name.split("/")[1].removeprefix("sub-")
            data = fa_nifti_gz(source.raw_data(pid).fa, native=True) if name.endswith("_desc-FA_dwimap.nii.gz") and pid in native else written.read(name)
            archive.writestr(name, data)
    return buffer.getvalue(), source.features.loc[ids]


SMALL = 5
MISSING = (("P00003", "emg"), ("P00004", "kin"))


@pytest.fixture(scope="module")
def small_zip():
    return cohort_zip(SMALL, missing=MISSING)


@pytest.fixture
def workspace(app_workspace, monkeypatch):
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    return app_workspace


# --- helpers ------------------------------------------------------------------------------------


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).switch_page(PAGE).run()
    no_exception(at)
    assert at.title[0].value == "Upload patient data"
    return at


def upload(at, *files) -> AppTest:
    """Put ``files`` ((name, bytes), ...) in the uploader, replacing what it held, and rerun."""
    at.file_uploader(key=UPLOADER).set_value([(name, data, "application/octet-stream") for name, data in files]).run()
    no_exception(at)
    return at


REPORT_COLUMNS = ["status", "source", "patient_id", "modality", "field", "message"]


def reports(at) -> list[pd.DataFrame]:
    """The validation reports on the page, in order (st.dataframe keeps no key without selections)."""
    return [t for t in (d.value for d in at.dataframe) if list(t.columns) == REPORT_COLUMNS]


def report(at) -> pd.DataFrame:
    """The cohort's report: the last one on the page (single files come first)."""
    return reports(at)[-1]


def file_table(at) -> pd.DataFrame:
    (table,) = [t for t in (d.value for d in at.dataframe) if t.index.name == "patient_id" and set(t.columns) <= {"dti", "emg", "kin"}]
    return table


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def save(at) -> AppTest:
    (button,) = [b for b in at.button if b.label == "Save to workspace"]
    button.click().run()
    no_exception(at)
    return at


def build(at) -> AppTest:
    at.button(key="upl-build").click().run()
    no_exception(at)
    return at


# --- tests ----------------------------------------------------------------------------------------


def test_zip_to_saved_cohort_with_nan_for_missing_files(workspace, small_zip):
    data, source = small_zip
    at = upload(open_page(), ("cohort.zip", data))
    assert not errors(at)
    # The guessed mapping is preselected; the file table lists each patient's files and the gaps.
    assert at.selectbox(key=next(k for k in _keys(at) if k.endswith("-patient_id"))).value == "participant_id"
    assert _role(at, "outcome") == "improvement_pct" and _role(at, "affected_hemisphere") == "affected_hemisphere" and _role(at, "site") == "site"
    files = file_table(at)
    assert list(files.index) == [f"P0000{i}" for i in range(1, SMALL + 1)]
    assert files.at["P00003", "emg"] == "missing" and files.at["P00004", "kin"] == "missing"
    assert files.at["P00001", "dti"] == "cohort/sub-P00001/dwi/sub-P00001_desc-FA_dwimap.nii.gz"
    assert any("1 patient(s) have no EMG file" in c.value for c in at.caption)
    # A column named as a bank measure starts as that outcome measure, not as a feature.
    assert at.multiselect(key=next(w.key for w in at.multiselect if w.key.endswith("-measures"))).value == [MEASURE]
    assert at.selectbox(key=next(k for k in _keys(at) if k.endswith(f"-measure-{MEASURE}"))).value == MEASURE

    build(at)
    frame = report(at)
    assert set(frame["status"]) <= {"ok", "warning"} and (frame["status"] == "ok").sum() > 20
    for pid, modality in MISSING:  # listed, never dropped silently
        row = frame[(frame["patient_id"] == pid) & (frame["modality"] == modality)]
        assert row["status"].tolist() == ["warning"] and f"no {modality.upper()} file for this patient" in row["message"].iloc[0]
    assert {"cohort/sub-P00001/emg/sub-P00001_emg.edf", "cohort/sub-P00002/motion/sub-P00002_motion.c3d"} <= set(frame["source"])
    assert any(c.value.startswith(f"**{SMALL} patients**") for c in at.caption)

    # One patient's files as read: the FA map in the slice viewer, and what is missing said so.
    at.toggle(key="upl-show-patient").set_value(True).run()
    no_exception(at)
    assert any(m.label == "FA at crosshair" for m in at.metric)
    at.selectbox(key="upl-patient").set_value("P00003").run()
    no_exception(at)
    assert any(i.value.startswith("No EMG data for P00003") for i in at.info)

    at.text_input(key="upl-name").set_value("from-upload")
    save(at)
    assert any("from-upload" in s.value and "current cohort" in s.value for s in at.success)
    assert at.sidebar.selectbox[0].value == "from-upload"  # the sidebar follows: it is the current cohort

    saved = Workspace(workspace).load("from-upload")
    assert list(saved.patients.index) == list(source.index) and saved.provenance["kind"] == "upload"
    assert saved.modalities == ["dti", "emg", "kin", "clin"]
    emg = saved.features_of("emg")
    assert saved.features.loc["P00003", emg].isna().all() and saved.features.loc[["P00001", "P00002"], emg].notna().all().all()
    assert saved.features.loc["P00004", saved.features_of("kin")].isna().all()
    np.testing.assert_allclose(saved.features["clin.age"], source["clin.age"])
    assert MEASURE in saved.measure_specs() and not any("fmue" in c for c in saved.features.columns)
    np.testing.assert_allclose(saved.features.loc["P00001", emg].astype(float), source.loc["P00001", emg].astype(float), rtol=2e-4)
    assert Workspace(workspace).get_setting("last_cohort") == "from-upload"


def _keys(at) -> list[str]:
    return [w.key for w in at.selectbox if w.key]


def _role(at, role) -> str:
    return at.selectbox(key=next(k for k in _keys(at) if k.endswith(f"-{role}"))).value


def test_a_bad_file_shows_its_error_and_the_loaded_upload_survives(workspace, small_zip):
    data, _ = small_zip
    at = upload(open_page(), ("cohort.zip", data))
    build(at)
    before = report(at)

    # A truncated gzip replaces the zip in the uploader: its InputError shows, the cohort stays.
    fa = nifti_bytes(np.zeros((91, 109, 91), np.float32), load_anatomy().affine, compress=True)
    upload(at, ("broken_FA.nii.gz", fa[: len(fa) // 2]))
    assert any(e.startswith("broken_FA.nii.gz:") and "truncated" in e for e in errors(at)), errors(at)
    assert any("Still using **cohort.zip**" in i.value for i in at.info)
    pd.testing.assert_frame_equal(report(at), before)
    single = reports(at)[0]
    assert single["status"].tolist() == ["error"] and single["source"].tolist() == ["broken_FA.nii.gz"]

    # A zip whose entry climbs out of the folder: refused, and still the first upload in use.
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("participants.tsv", "participant_id\timprovement_pct\nsub-01\t60\n")
        archive.writestr("../../etc/evil.edf", b"x")
    upload(at, ("evil.zip", hostile.getvalue()))
    assert any(e.startswith("evil.zip:") and ".." in e for e in errors(at)), errors(at)
    assert any("Still using **cohort.zip**" in i.value for i in at.info)
    pd.testing.assert_frame_equal(report(at), before)

    # ... and it can still be saved.
    save(at)
    assert "cohort" in Workspace(workspace).names()


def test_single_files_are_checked_and_previewed(workspace):
    source = generate_cohort(CohortConfig(name="single", n_patients=10, seed=5), n_jobs=1)
    pid = source.patients.index[0]
    raw = source.raw_data(pid)
    with tempfile.TemporaryDirectory() as tmp:
        edf = _emg_edf(Path(tmp) / "a.edf", raw.emg).read_bytes()
        c3d = write_c3d(Path(tmp) / "a.c3d", {"RHAND": raw.trajectory.position_mm.astype(float)}, raw.trajectory.fs_hz).read_bytes()
    at = upload(open_page(), ("P1_desc-FA.nii.gz", fa_nifti_gz(_fa_map(source, pid))), ("P1_emg.edf", edf), ("P1_motion.c3d", c3d),
                ("lonely.bval", b"0 1000 1000\n"))
    assert not errors(at)
    (frame,) = reports(at)
    assert set(frame["source"]) == {"P1_desc-FA.nii.gz", "P1_emg.edf", "P1_motion.c3d", "lonely.bval"}
    assert frame.loc[frame["source"] == "lonely.bval", "status"].tolist() == ["warning"]
    # The FA map: the cohort page's slice viewer with threshold and colour map.
    assert at.slider(key=f"upl-{_digest(at, 'P1_desc-FA.nii.gz')}-thr").value == pytest.approx(0.15)
    assert any(m.label == "FA at crosshair" for m in at.metric)
    preview = at.selectbox(key="upl-preview")
    preview.set_value(_digest(at, "P1_emg.edf", full=True)).run()
    no_exception(at)
    preview.set_value(_digest(at, "P1_motion.c3d", full=True)).run()
    no_exception(at)
    assert "upl-build" not in [b.key for b in at.button]  # no cohort: nothing to build

    # A CSV whose name says nothing is taken for a clinical table; "Read as EMG" makes it a recording.
    with tempfile.TemporaryDirectory() as tmp:
        _emg_csv(Path(tmp) / "recording.csv", raw.emg)
        csv = (Path(tmp) / "recording.csv").read_bytes()
    upload(at, ("recording.csv", csv))
    assert any(h.value == "Cohort from recording.csv" for h in at.subheader)
    at.selectbox(key="upl-as-recording.csv").set_value("emg").run()
    no_exception(at)
    assert not any(h.value.startswith("Cohort from") for h in at.subheader)
    (frame,) = reports(at)
    assert "10 TMS pulses from channel trigger" in " ".join(frame["message"]), frame["message"].tolist()
    assert any(c.proto.id and "upl-" in c.proto.id for c in at.get("plotly_chart"))


def test_the_page_says_how_to_lay_out_an_upload_and_honours_the_size_cap(workspace, monkeypatch):
    monkeypatch.setenv("NEUROPREDICT_MAX_UPLOAD_MB", "5")
    at = open_page()
    assert "sub-P01/" in at.code[0].value and "participants.tsv" in at.code[0].value
    formats = [m.value for m in at.markdown if m.value.startswith("| Data | Accepted |")]
    assert len(formats) == 1 and all(f"| {row} |" in formats[0] for row in ("Volumes", "Diffusion", "EMG", "Kinematics", "Clinical", "Uploads"))
    assert at.file_uploader(key=UPLOADER).proto.max_upload_size_mb == 5
    monkeypatch.setenv("NEUROPREDICT_MAX_UPLOAD_MB", "lots")
    at = AppTest.from_file(str(APP), default_timeout=120).switch_page(PAGE).run()
    no_exception(at)
    assert any("NEUROPREDICT_MAX_UPLOAD_MB" in e for e in errors(at))


def _digest(at, name, full=False) -> str:
    import hashlib

    (f,) = [f for f in at.file_uploader(key=UPLOADER).value if f.name == name]
    digest = hashlib.sha256(f.getvalue()).hexdigest()
    return digest if full else digest[:12]


def test_a_registered_map_must_be_checked_and_a_rejected_one_gives_nan(workspace):
    data, source = cohort_zip(3, native=("P00002",))
    at = build(upload(open_page(), ("native.zip", data)))
    frame = report(at)
    assert "registered to the MNI152 template" in frame.loc[frame["patient_id"] == "P00002", "message"].str.cat()
    assert any(h.value == "Registrations to check" for h in at.subheader)
    assert any("Not checked yet: P00002" in w.value for w in at.warning)
    assert "Save to workspace" not in [b.label for b in at.button]  # not before every overlay was checked
    assert any(m.label.startswith("Similarity to the template") for m in at.metric)

    (verdict,) = [r for r in at.radio if r.label == "Registration"]
    verdict.set_value("reject").run()
    no_exception(at)
    save(at)
    saved = Workspace(workspace).load("native")
    dti = saved.features_of("dti")
    assert saved.features.loc["P00002", dti].isna().all() and saved.features.loc[["P00001", "P00003"], dti].notna().all().all()
    assert saved.provenance["rejected_registrations"] == ["P00002"]


def test_a_diffusion_series_with_its_bval_and_bvec_is_fitted_and_shown_as_fa(workspace):
    """A 4-D series on SPM's 3 mm MNI grid: one b0 and 6 directions, one fibre direction (x) inside a brain-sized ellipsoid."""
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    ijk = np.indices((61, 73, 61)).reshape(3, -1).T
    xyz = ijk * 3.0 + affine[:3, 3]
    inside = ((((xyz - [0, -18, 15]) / [68, 85, 62]) ** 2).sum(1) <= 1).reshape(61, 73, 61)
    directions = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float)
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    tensor = np.diag([1.7e-3, 0.3e-3, 0.3e-3])  # mm²/s: FA 0.8
    weights = [1.0] + [np.exp(-1000 * g @ tensor @ g) for g in directions]
    noise = 1 + 0.01 * np.random.default_rng(0).standard_normal((61, 73, 61, 7))
    series = (1000 * inside[..., None] * np.array(weights) * noise).astype(np.float32)
    bvec = "\n".join(" ".join(f"{v:.6f}" for v in np.r_[0.0, directions[:, i]]) for i in range(3)) + "\n"
    at = upload(open_page(), ("sub-01_dwi.nii.gz", nifti_bytes(series, affine, compress=True)), ("sub-01_dwi.bval", b"0 1000 1000 1000 1000 1000 1000\n"),
                ("sub-01_dwi.bvec", bvec.encode()))
    assert not errors(at)
    (frame,) = reports(at)
    assert set(frame["status"]) == {"ok"}
    assert any(m.startswith("tensor fitted in") for m in frame["message"])
    assert frame.loc[frame["source"].isin(["sub-01_dwi.bval", "sub-01_dwi.bvec"]), "message"].str.contains("read with its diffusion series").sum() == 2
    (fa,) = [m for m in at.metric if m.label == "FA at crosshair"]
    assert float(fa.value) == pytest.approx(0.8, abs=0.05)  # the origin lies inside the ellipsoid


def test_a_native_diffusion_series_goes_the_engines_way_and_an_unpaired_one_says_what_it_needs(workspace):
    files = dwi_files(native=True)
    at = upload(open_page(), *files.items())
    assert not errors(at)
    (item,) = [i for i in at.session_state["neuropredict.upload"].loaded.values() if i.kind == "diffusion"]
    expected = diffusion_to_mni(*files.values(), names=tuple(files))
    np.testing.assert_array_equal(item.data["fa"], expected.fa_mni)
    assert [(e.status, e.message) for e in item.report] == [(e.status, e.message) for e in expected.report]
    assert any(m.label.startswith("Similarity to the template") for m in at.metric)  # the b0's registration, to review
    (verdict,) = [r for r in at.radio if r.label == "Registration"]
    verdict.set_value("accept").run()
    no_exception(at)
    assert any(m.label == "FA at crosshair" for m in at.metric)

    series, bvec = "sub-01_dwi.nii.gz", "sub-01_dwi.bvec"
    upload(at, (series, files[series]), (bvec, files[bvec]))
    assert errors(at) == [("sub-01_dwi.nii.gz: [bval] found no .bval file for this diffusion series; expected sub-01_dwi.bval beside it "
                           "(upload the series, its .bval and its .bvec together).")]


def test_the_example_folder_is_the_clis_and_the_page_reads_it(workspace, tmp_path):
    import shlex

    from components.panels.upload import example_upload_zip
    from core.cli import example_upload_commands
    from core.io.export import EXAMPLE_UPLOAD
    from tests.test_cli import run_cli

    at = open_page()
    (button,) = [b for b in at.get("download_button") if b.proto.id.endswith("upl-example")]
    assert button.proto.label.startswith(f"Example folder: {EXAMPLE_UPLOAD['n_patients']} synthetic patients")
    example = example_upload_zip()
    # The commands the button's help gives write the same bytes.
    for command in example_upload_commands(str(tmp_path / "ws"), str(tmp_path / "example.zip")):
        status, _, err = run_cli(*shlex.split(command)[3:])
        assert status == 0, err
    assert (tmp_path / "example.zip").read_bytes() == example

    at = build(upload(at, ("example-upload.zip", example)))
    assert not errors(at)
    measures = at.multiselect(key=next(w.key for w in at.multiselect if w.key.endswith("-measures"))).value
    assert measures == list(EXAMPLE_UPLOAD["measures"])  # guessed as outcome measures from their names
    assert any(c.value.startswith(f"**{EXAMPLE_UPLOAD['n_patients']} patients**") for c in at.caption)
