"""core.modelling.explanation: one Explanation object, sliced by patient and summed by modality."""

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.modelling.explanation import Explanation, output_of_margin

FEATURES = ("dti.cst_fa_affected", "dti.wm_fa_mean", "emg.mep_present", "clin.age")


@pytest.fixture
def explanation():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(6, 4))
    data = rng.normal(size=(6, 4))
    data[2, 0] = np.nan
    return Explanation(values, rng.normal(size=6), data, FEATURES, "log-odds", pd.Index([f"P{i}" for i in range(6)]))


def test_a_patient_slice_keeps_local_accuracy_and_the_link(explanation):
    one = explanation["P3"]
    assert one.is_single and one.values.shape == (4,) and one.index is None
    assert one.margin == pytest.approx(explanation.values[3].sum() + explanation.base_values[3])
    assert one.output == pytest.approx(1 / (1 + np.exp(-one.margin)))
    np.testing.assert_array_equal(one.data, explanation.data[3])
    pd.testing.assert_series_equal(one.to_series(), pd.Series(explanation.values[3], index=list(FEATURES), name="shap"))
    two = explanation[["P5", "P1"]]
    np.testing.assert_array_equal(two.values, explanation.values[[5, 1]])
    assert list(two.index) == ["P5", "P1"]
    mask = explanation[np.array([True, False] * 3)]
    assert list(mask.index) == ["P0", "P2", "P4"]
    with pytest.raises(InputError, match="no patient 'P9'"):
        explanation["P9"]


def test_mean_abs_by_feature_and_by_modality(explanation):
    by_feature = explanation.mean_abs()
    np.testing.assert_allclose(by_feature[list(FEATURES)], np.abs(explanation.values).mean(axis=0))
    assert list(by_feature) == sorted(by_feature, reverse=True)
    by_modality = explanation.mean_abs(by="modality")
    assert by_modality["dti"] == pytest.approx(by_feature["dti.cst_fa_affected"] + by_feature["dti.wm_fa_mean"])
    assert set(by_modality.index) == {"dti", "emg", "clin"}


def test_by_modality_sums_each_patients_values_and_keeps_the_margin(explanation):
    modal = explanation.by_modality()
    assert modal.feature_names == ("dti", "emg", "clin")
    np.testing.assert_allclose(modal.values[:, 0], explanation.values[:, 0] + explanation.values[:, 1])
    np.testing.assert_allclose(modal.margin, explanation.margin)
    assert modal.data[2, 0] == 0.5  # one of the patient's two DTI features is missing


def test_the_mean_of_explanations_averages_values_and_base_values(explanation):
    other = Explanation(explanation.values + 1.0, explanation.base_values - 1.0, explanation.data, FEATURES, "log-odds", explanation.index)
    mean = Explanation.mean_of([explanation, other])
    np.testing.assert_allclose(mean.values, explanation.values + 0.5)
    np.testing.assert_allclose(mean.base_values, explanation.base_values - 0.5)


def test_shapes_and_spaces_that_do_not_match_are_refused():
    with pytest.raises(InputError, match=r"SHAP values of shape \(2, 3\) do not match 4 feature names"):
        Explanation(np.zeros((2, 3)), np.zeros(2), np.zeros((2, 3)), FEATURES, "log-odds")
    with pytest.raises(InputError, match=r"base values of shape \(3,\) do not match"):
        Explanation(np.zeros((2, 4)), np.zeros(3), np.zeros((2, 4)), FEATURES, "log-odds")
    with pytest.raises(InputError, match="unknown output space 'probability'"):
        Explanation(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 4)), FEATURES, "probability")


def test_the_output_of_a_margin_is_a_probability_for_log_odds_and_the_margin_for_percent():
    assert output_of_margin(0.0, "log-odds") == 0.5
    np.testing.assert_allclose(output_of_margin(np.array([-2.0, 2.0]), "log-odds"), [0.11920292, 0.88079708])
    assert output_of_margin(37.5, "% improvement") == 37.5
