"""A cohort written as an upload folder (core.io.export) reads back as the same cohort."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.io.export import upload_folder_zip
from core.io.upload import read_cohort
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort

MEASURES = ["fmue_total_w12", "updrs3_total_w12"]


@pytest.fixture(scope="module")
def source():
    # Some patients lack a modality, so missing files are part of the round trip.
    return generate_cohort(CohortConfig(name="example", n_patients=12, seed=11, missing_rate={"dti": 0.2, "emg": 0.2, "kin": 0.2}), n_jobs=1)


@pytest.fixture(scope="module")
def uploaded(source):
    return read_cohort(upload_folder_zip(source, measures=MEASURES), "example.zip", cohort_name="back").cohort


def test_a_written_cohort_reads_back_with_the_same_features_outcomes_and_gaps(source, uploaded):
    assert list(uploaded.patients.index) == list(source.patients.index)
    assert sorted(uploaded.features.columns) == sorted(source.features.columns)
    back = uploaded.features[source.features.columns].astype(float)
    expected = source.features.astype(float)
    pd.testing.assert_frame_equal(back.isna(), expected.isna())  # a missing modality has no file, so NaN again
    assert expected.isna().any().any()
    clinical, emg, kin, dti = (source.features_of(m) for m in ("clin", "emg", "kin", "dti"))
    np.testing.assert_array_equal(back[clinical], expected[clinical])
    np.testing.assert_allclose(back[kin], expected[kin], rtol=1e-6)
    np.testing.assert_allclose(back[emg], expected[emg], rtol=1e-3)  # EDF's 16 bits
    np.testing.assert_allclose(back[dti], expected[dti], atol=0.01)  # FA stored in 8 bits (1/255)
    for column in ("indication", "site", "affected_hemisphere"):
        assert uploaded.patients[column].tolist() == source.patients[column].tolist()
    np.testing.assert_allclose(uploaded.outcomes["improvement_pct"], source.outcomes["improvement_pct"], atol=0.005)
    assert uploaded.outcomes["responder"].tolist() == source.outcomes["responder"].tolist()
    # The measures are recognised by name as outcome-bank measures, never as features.
    assert set(uploaded.measure_specs()) == set(MEASURES)
    for key in MEASURES:
        np.testing.assert_array_equal(uploaded.outcomes[key], source.outcomes[key])


def test_the_folder_is_laid_out_as_documented_and_its_bytes_repeat(source):
    ids = list(source.patients.index[[3, 0]])
    data = upload_folder_zip(source, ids, measures=[])
    assert data == upload_folder_zip(source, ids, measures=[])
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "cohort/participants.tsv" in names
    for pid in ids:
        raw = source.raw_data(pid)
        expected = {f"cohort/sub-{pid}/dwi/sub-{pid}_desc-FA_dwimap.nii.gz": raw.fa, f"cohort/sub-{pid}/emg/sub-{pid}_emg.edf": raw.emg,
                    f"cohort/sub-{pid}/motion/sub-{pid}_motion.c3d": raw.trajectory}
        assert {name for name, data in expected.items() if data is not None} == {n for n in names if f"sub-{pid}/" in n}
    table = pd.read_csv(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("cohort/participants.tsv")), sep="\t")
    assert table["participant_id"].tolist() == [f"sub-{pid}" for pid in ids]
    assert "indication_pd" not in table  # rebuilt from the indication column


def test_unknown_patients_and_measures_are_refused_by_name(source):
    with pytest.raises(InputError, match=r"example: \[patient_ids\] patient\(s\) P99999 are not in the cohort"):
        upload_folder_zip(source, ["P00001", "P99999"])
    with pytest.raises(InputError, match=r"\[measures\] the cohort holds no outcome measure 'wmft_s'; it holds fmue_total_w4, "):
        upload_folder_zip(source, measures=["wmft_s"])
