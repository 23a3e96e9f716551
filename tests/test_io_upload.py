"""Multi-patient uploads: a BIDS-like folder (and the same as a zip) becomes a Cohort."""

import io
import pathlib
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given

from core.anatomy import load_anatomy
from core.errors import InputError
from core.io.diffusion import diffusion_to_mni, dti_feature_row
from core.io.upload import build_cohort, classify_file, read_cohort, scan_upload
from tests.io_support import FUZZ, assert_only_input_error, continuous_emg, csv_bytes, dwi_files, mutated, nifti_bytes, synthetic_cohort, write_c3d, write_edf


def _fa_map(cohort, pid):
    from core.synth.config import CohortConfig
    from core.synth.fa_phantom import fa_volume
    from core.synth.latents import fa_parameters

    config = CohortConfig.from_dict(cohort.provenance["config"])
    return fa_volume(fa_parameters(cohort.ground_truth.latents.loc[pid], config))


def _emg_edf(path, emg, *, bdf=False):
    x, pulses, onset, duration = continuous_emg(emg)
    notes = [(p, -1, "TMS") for p in pulses] + [(onset, duration, "voluntary")]
    return write_edf(path, {"FDI": x[0], "ECR": x[1]}, emg.fs_hz, bdf=bdf, annotations=notes)


def _emg_csv(path, emg):
    x, pulses, onset, duration = continuous_emg(emg)
    t = np.arange(x.shape[1]) / emg.fs_hz
    trigger = np.zeros_like(t)
    for p in pulses:
        trigger[int(round(p * emg.fs_hz))] = 1.0
    voluntary = ((t >= onset) & (t < onset + duration)).astype(float)
    path.write_bytes(csv_bytes(pd.DataFrame({"time": t, "FDI_uV": x[0], "ECR_uV": x[1], "trigger": trigger, "voluntary": voluntary})))


def _make_folder(root: pathlib.Path):
    """Five patients of the synthetic cohort in a BIDS-like layout, with a known set of problems:

    P1 FA + EDF + C3D; P2 FA + BDF + reach CSV; P3 FA + EMG CSV + C3D (all fine);
    P4 FA + a truncated EDF (error) and no kinematics (missing);
    P5 dipy's 10 x 10 x 10 DWI set (fit, then registration refused: field of view too small) + EDF + C3D;
    plus files of a patient absent from the table.
    """
    import dipy.data

    cohort = synthetic_cohort()
    ids = list(cohort.patients.index[:5])
    latents = cohort.ground_truth.latents
    rows = []
    for k, pid in enumerate(ids):
        raw = cohort.raw_data(pid)
        sub = root / f"sub-{pid}"
        for folder in ("dwi", "emg", "motion"):
            (sub / folder).mkdir(parents=True)
        if k < 4:
            (sub / "dwi" / f"sub-{pid}_desc-FA_dwimap.nii.gz").write_bytes(nifti_bytes(_fa_map(cohort, pid), load_anatomy().affine, compress=True))
        else:
            files = pathlib.Path(dipy.data.__file__).parent / "files"
            for ext in (".nii", ".bval", ".bvec"):
                shutil.copy(files / f"small_64D{ext}", sub / "dwi" / f"sub-{pid}_dwi{ext}")
        if k in (0, 4):
            _emg_edf(sub / "emg" / f"sub-{pid}_emg.edf", raw.emg)
        elif k == 1:
            _emg_edf(sub / "emg" / f"sub-{pid}_emg.bdf", raw.emg, bdf=True)
        elif k == 2:
            _emg_csv(sub / "emg" / f"sub-{pid}_emg.csv", raw.emg)
        else:
            data = _emg_edf(sub / "emg" / f"sub-{pid}_emg.edf", raw.emg).read_bytes()
            (sub / "emg" / f"sub-{pid}_emg.edf").write_bytes(data[: len(data) // 2])
        position = raw.trajectory.position_mm.astype(np.float64)
        if k == 1:
            table = pd.DataFrame({"time_s": np.arange(len(position)) / 100.0, "hand_x": position[:, 0], "hand_y": position[:, 1], "hand_z": position[:, 2]})
            (sub / "motion" / f"sub-{pid}_reach.csv").write_bytes(csv_bytes(table))
        elif k != 3:
            write_c3d(sub / "motion" / f"sub-{pid}_motion.c3d", {"RHAND": position}, 100.0)
        clin = cohort.features.loc[pid]
        rows.append({
            "participant_id": f"sub-{pid}",
            "age": clin["clin.age"],
            "sex": "M" if clin["clin.sex_male"] == 1 else "F",
            "indication": cohort.patients.at[pid, "indication"],
            "site": cohort.patients.at[pid, "site"],
            "affected_hemisphere": latents.at[pid, "affected_hemisphere"],
            "improvement_pct": cohort.outcomes.at[pid, "improvement_pct"],
        })
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "sub-P99999" / "emg").mkdir(parents=True)
    (root / "sub-P99999" / "emg" / "sub-P99999_emg.edf").write_bytes(b"not read")
    (root / "README").write_text("a BIDS-like test cohort")
    return cohort, ids


@pytest.fixture(scope="module")
def upload_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("upload") / "cohort"
    cohort, ids = _make_folder(root)
    return root, cohort, ids


@pytest.fixture(scope="module")
def uploaded(upload_folder):
    root, _, _ = upload_folder
    return read_cohort(root, cohort_name="bids-test")


def test_file_classification():
    assert classify_file("sub-01/dwi/sub-01_desc-FA_dwimap.nii.gz") == "fa"
    assert classify_file("P1/P1_fa.nii") == "fa"
    assert classify_file("sub-01/dwi/sub-01_dwi.nii.gz") == "dwi"
    assert classify_file("sub-01/dwi/sub-01_dwi.bvec") == "bvec"
    assert classify_file("sub-01/anat/sub-01_T1w.nii.gz") == "other"
    assert classify_file("P1_emg.csv") == "emg" and classify_file("x/P1.bdf") == "emg"
    assert classify_file("P1_reach.csv") == "kin" and classify_file("P1.c3d") == "kin"
    assert classify_file("participants.tsv") == "table" and classify_file("clinical.xlsx") == "table"


def test_scan_lists_files_per_patient(upload_folder):
    root, _, ids = upload_folder
    scan = scan_upload(root)
    assert scan.table_path == "participants.tsv"
    assert scan.mapping.patient_id == "participant_id" and scan.mapping.outcome == "improvement_pct"
    assert scan.mapping.affected_hemisphere == "affected_hemisphere"
    files = scan.file_table()
    assert list(files.index) == ids
    assert files.loc[ids[0]].tolist() == [f"sub-{ids[0]}/dwi/sub-{ids[0]}_desc-FA_dwimap.nii.gz", f"sub-{ids[0]}/emg/sub-{ids[0]}_emg.edf", f"sub-{ids[0]}/motion/sub-{ids[0]}_motion.c3d"]
    assert files.at[ids[3], "kin"] == "" and files.at[ids[4], "dti"].endswith("_dwi.nii")


def test_upload_becomes_a_cohort_with_the_generators_features(uploaded, upload_folder):
    _, cohort, ids = upload_folder
    result = uploaded
    got = result.cohort
    assert got.name == "bids-test" and got.n_patients == 5 and list(got.patients.index) == ids
    assert got.modalities == ["dti", "emg", "kin", "clin"]
    assert got.provenance["kind"] == "upload" and got.provenance["table"] == "participants.tsv"
    for modality, rtol in (("dti", 1e-6), ("emg", 2e-4), ("kin", 1e-5)):
        columns = [c for c in cohort.features.columns if c.startswith(modality + ".")]
        assert got.features_of(modality) == columns
        good = ids[:3]
        np.testing.assert_allclose(got.features.loc[good, columns].to_numpy(dtype=float), cohort.features.loc[good, columns].to_numpy(dtype=float), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(got.features["clin.age"], cohort.features.loc[ids, "clin.age"])
    np.testing.assert_array_equal(got.features["clin.sex_male"], cohort.features.loc[ids, "clin.sex_male"])
    np.testing.assert_allclose(got.outcomes["improvement_pct"], cohort.outcomes.loc[ids, "improvement_pct"])
    assert got.outcomes["responder"].tolist() == cohort.outcomes.loc[ids, "responder"].tolist()
    assert got.patients["site"].tolist() == cohort.patients.loc[ids, "site"].tolist()


def test_problems_give_nan_and_report_entries_never_dropped_patients(uploaded, upload_folder):
    _, _, ids = upload_folder
    got, frame = uploaded.cohort, uploaded.report_frame()
    availability = got.modality_availability()
    assert availability.loc[ids[3]].to_dict() == {"dti": True, "emg": False, "kin": False, "clin": True}
    assert availability.loc[ids[4]].to_dict() == {"dti": False, "emg": True, "kin": True, "clin": True}
    errors = frame[frame.status == "error"]
    assert errors[["patient_id", "modality"]].values.tolist() == [[ids[3], "emg"], [ids[4], "dti"]]
    assert "the file is truncated" in errors.iloc[0].message
    assert "the field of view is [20, 20, 20] mm; registration to a whole-brain template needs at least 60 mm" in errors.iloc[1].message
    missing = frame[(frame.patient_id == ids[3]) & (frame.modality == "kin")]
    assert missing.status.tolist() == ["warning"] and "no KIN file for this patient" in missing.message.iloc[0]
    stray = frame[frame.source == "sub-P99999/emg/sub-P99999_emg.edf"]
    assert stray.status.tolist() == ["warning"] and "belongs to no patient" in stray.message.iloc[0]
    assert got.provenance["errors"] == 2


def test_zip_upload_matches_the_folder(upload_folder, uploaded, tmp_path):
    root, _, _ = upload_folder
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, f"cohort/{path.relative_to(root).as_posix()}")
    from_zip = read_cohort(buffer.getvalue(), "cohort.zip", cohort_name="bids-test")
    pd.testing.assert_frame_equal(from_zip.cohort.features, uploaded.cohort.features)
    pd.testing.assert_frame_equal(from_zip.cohort.outcomes, uploaded.cohort.outcomes)
    # Saved and reloaded from a workspace: provenance is plain JSON, tables are Parquet.
    from core.store.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    workspace.save(from_zip.cohort)
    pd.testing.assert_frame_equal(workspace.load("bids-test").features, from_zip.cohort.features, check_freq=False)


def test_raw_data_of_uploaded_patients(uploaded, upload_folder):
    _, cohort, ids = upload_folder
    raw = uploaded.cohort.raw_data(ids[0])
    np.testing.assert_allclose(raw.fa[load_anatomy().brain_mask], _fa_map(cohort, ids[0])[load_anatomy().brain_mask], atol=1e-7)
    assert raw.emg.mep_sweeps_uv.shape == (2, 10, 200) and raw.trajectory.position_mm.shape == (1500, 3)
    assert uploaded.cohort.raw_data(ids[3]).emg is None


def test_diffusion_series_give_the_features_of_diffusion_to_mni(tmp_path):
    """P1: a series in MNI space; P2: one in native space (registered); P3: a series without its .bval."""
    root = tmp_path / "dwi-cohort"
    for pid, native in (("P1", False), ("P2", True), ("P3", False)):
        folder = root / f"sub-{pid}" / "dwi"
        folder.mkdir(parents=True)
        for name, data in dwi_files(native=native, stem=f"sub-{pid}_dwi").items():
            if not (pid == "P3" and name.endswith(".bval")):
                (folder / name).write_bytes(data)
    pd.DataFrame({"participant_id": ["sub-P1", "sub-P2", "sub-P3"], "affected_hemisphere": ["left", "right", "left"],
                  "improvement_pct": [60.0, 20.0, 40.0]}).to_csv(root / "participants.tsv", sep="\t", index=False)
    result = read_cohort(root, cohort_name="dwi")
    brain = load_anatomy().brain_mask
    for pid, native, hemisphere in (("P1", False, "left"), ("P2", True, "right")):
        files = dwi_files(native=native, stem=f"sub-{pid}_dwi")
        diffusion = diffusion_to_mni(*files.values(), names=tuple(files))
        expected = dti_feature_row(diffusion.fa_mni, hemisphere, pid)
        np.testing.assert_array_equal(result.cohort.features.loc[pid, expected.columns].to_numpy(float), expected.loc[pid].to_numpy(float))
        np.testing.assert_array_equal(result.cohort.raw_data(pid).fa[brain], diffusion.fa_mni[brain])
        messages = result.report_frame().query("patient_id == @pid and modality == 'dti'")["message"].tolist()
        assert messages == [e.message for e in diffusion.report]
    assert list(result.registrations) == ["P2"]
    np.testing.assert_array_equal(result.registrations["P2"].transform, diffusion.registration.transform)
    frame = result.report_frame()
    (error,) = frame[frame.status == "error"].itertuples()
    assert (error.source, error.patient_id, error.modality, error.field) == ("sub-P3/dwi/sub-P3_dwi.nii.gz", "P3", "dti", "bval")
    assert error.message == "found no .bval file for this diffusion series; expected sub-P3_dwi.bval beside it (upload the series, its .bval and its .bvec together)."
    assert result.cohort.features.loc["P3", result.cohort.features_of("dti")].isna().all()


def test_flat_layout_and_a_confirmed_mapping(tmp_path):
    cohort = synthetic_cohort()
    pid = cohort.patients.index[5]
    raw = cohort.raw_data(pid)
    _emg_edf(tmp_path / f"{pid}_emg.edf", raw.emg)
    pd.DataFrame({"Subject": [pid, "P77"], "ARAT gain %": [70.0, 10.0], "Centre": ["X", "Y"]}).to_csv(tmp_path / "clinical.csv", index=False)
    scan = scan_upload(tmp_path)
    mapping = scan.mapping
    assert (mapping.patient_id, mapping.outcome) == ("Subject", None)  # "ARAT gain %" is no known outcome name...
    mapping.outcome = "ARAT gain %"  # ... so the user picks it (it stays listed as a feature)
    mapping.responder_threshold_pct = 60.0
    result = build_cohort(scan, mapping, name="flat")
    assert result.cohort.outcomes["responder"].tolist() == [True, False]
    assert "clin.arat_gain" not in result.cohort.features  # an outcome never becomes a feature
    assert any("have a role and are not used as features" in e.message for e in result.report)
    assert result.cohort.features_of("emg") and np.isnan(result.cohort.features.loc["P77", "emg.mep_present"])
    assert result.cohort.features_of("dti") == [] and result.cohort.features_of("kin") == []


def test_upload_without_a_table_or_with_duplicates(tmp_path):
    (tmp_path / "sub-01").mkdir()
    (tmp_path / "sub-01" / "x_emg.edf").write_bytes(b"0")
    with pytest.raises(InputError, match="no clinical table at the top of the upload"):
        scan_upload(tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\toutcome\nsub-01\t50\n01\t60\n")
    scan = scan_upload(tmp_path)
    with pytest.raises(InputError, match=r"^participants\.tsv: \[participant_id\] duplicate patient id '01' on lines \[2, 3\]"):
        build_cohort(scan)


def _seed_zip():
    buffer = io.BytesIO()
    x = "time,FDI,ECR,trigger\n" + "".join(f"{i / 2000},{np.sin(i):.2f},{np.cos(i):.2f},{int(i == 100)}\n" for i in range(1200))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("c/participants.tsv", "participant_id\timprovement\taffected_side\nsub-01\t60\tL\nsub-02\t20\tR\n")
        archive.writestr("c/sub-01/emg/sub-01_emg.csv", x)
        archive.writestr("c/sub-02/motion/sub-02_reach.csv", "time,x,y,z\n" + "".join(f"{i / 100},{i},{0},{0}\n" for i in range(300)))
    return buffer.getvalue()


_ZIP = _seed_zip()


@FUZZ
@given(mutated(_ZIP, hot=len(_ZIP)))
def test_malformed_cohort_zips_give_only_input_errors(data):
    assert_only_input_error(lambda raw: read_cohort(raw, "fuzz.zip"), data)


def test_uploaded_raw_data_survive_a_restart_and_feed_the_fusion_model(uploaded, upload_folder, tmp_path):
    from core.features.tensors import inputs_from_raw
    from core.store.workspace import Workspace

    _, _, ids = upload_folder
    Workspace(tmp_path / "ws").save(uploaded.cohort)
    reopened = Workspace(tmp_path / "ws").load("bids-test")  # a new process would see only the files
    for pid in ids[:4]:
        before, after = uploaded.cohort.raw_data(pid), reopened.raw_data(pid)
        for name in ("fa", "lesion_mask"):
            assert (getattr(before, name) is None) == (getattr(after, name) is None)
            if getattr(before, name) is not None:
                np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
        assert (before.emg is None) == (after.emg is None) and (before.trajectory is None) == (after.trajectory is None)
        if before.emg is not None:
            np.testing.assert_array_equal(after.emg.mep_sweeps_uv, before.emg.mep_sweeps_uv)
            assert after.emg.muscles == tuple(before.emg.muscles) and after.emg.fs_hz == before.emg.fs_hz
        if before.trajectory is not None:
            np.testing.assert_array_equal(after.trajectory.position_mm, before.trajectory.position_mm)
    inputs = Workspace(tmp_path / "ws").fusion_inputs(reopened)
    expected = inputs_from_raw([uploaded.cohort.raw_data(pid) for pid in reopened.patients.index])
    np.testing.assert_array_equal(inputs.fa, expected.fa)
    np.testing.assert_array_equal(inputs.mep, expected.mep)
    assert {m: v.tolist() for m, v in inputs.mask.items()} == {m: v.tolist() for m, v in expected.mask.items()}
