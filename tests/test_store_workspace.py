import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.store.workspace import Workspace


def test_cohort_survives_a_workspace_round_trip_and_a_restart(tmp_path, small_cohort):
    Workspace(tmp_path).save(small_cohort)
    reopened = Workspace(tmp_path)  # a new process would do exactly this
    assert reopened.names() == ["small"]
    loaded = reopened.load("small")
    pd.testing.assert_frame_equal(loaded.features, small_cohort.features)
    pd.testing.assert_frame_equal(loaded.outcomes, small_cohort.outcomes)
    pd.testing.assert_frame_equal(loaded.patients, small_cohort.patients)
    pd.testing.assert_frame_equal(loaded.ground_truth.feature_effects, small_cohort.ground_truth.feature_effects)
    assert loaded.digest == small_cohort.digest
    assert loaded.provenance == small_cohort.provenance
    # Raw data are regenerated from the saved config, identical to the original.
    pid = small_cohort.patients.index[3]
    a, b = small_cohort.raw_data(pid), loaded.raw_data(pid)
    for attr in ("fa", "lesion_mask"):
        if getattr(a, attr) is not None:
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    np.testing.assert_array_equal(a.emg.mep_sweeps_uv, b.emg.mep_sweeps_uv)


def test_settings_persist(tmp_path):
    Workspace(tmp_path).set_setting("last_cohort", "demo")
    assert Workspace(tmp_path).get_setting("last_cohort") == "demo"
    assert Workspace(tmp_path).get_setting("absent", "x") == "x"


def test_bad_names_and_unknown_cohorts_get_clear_errors(tmp_path, small_cohort):
    ws = Workspace(tmp_path)
    with pytest.raises(InputError, match=r"cohort name '\.\./escape' is not allowed"):
        ws.load("../escape")
    with pytest.raises(InputError, match=r"no saved cohort named 'nope'; saved cohorts: none"):
        ws.load("nope")
    ws.save(small_cohort)
    with pytest.raises(InputError, match="a cohort named 'small' is already saved"):
        ws.save(small_cohort, overwrite=False)


def test_cohort_describes_itself_in_one_line(small_cohort):
    assert small_cohort.describe() == "300 patients · modalities: dti, emg, kin, clin · responder = improvement >= 50% · source: synthetic"
