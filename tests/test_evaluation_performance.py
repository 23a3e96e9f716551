"""core.evaluation.performance: the Prediction page's numbers, checked against the metrics they are made of."""

import numpy as np
import pandas as pd
import pytest

from core.evaluation.metrics import binary_metrics, binary_metrics_ci, metrics_with_ci, regression_metrics, roc_auc
from core.evaluation.performance import (
    CLINICAL,
    MODEL,
    MODEL_STROKE,
    PREP2,
    PREP2_MIN_PATIENTS,
    binary_ci_tables,
    calibration_line,
    prep2_probability,
    prep2_usable,
    regression_ci_tables,
    repeat_spread,
    score_table,
)
from core.modelling.baselines import clinical_baseline, prep2_score
from core.modelling.validation import CohortSplitter, cross_validate
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort

N_BOOT = 200  # fewer resamples than the page's 1000: the comparisons are exact either way


@pytest.fixture(scope="module")
def cohort():
    """150 patients of both indications (about 60 stroke patients with PREP2's inputs)."""
    return generate_cohort(CohortConfig(name="performance", n_patients=150, seed=4), n_jobs=1)


@pytest.fixture(scope="module")
def runs(cohort):
    """A 2 x 5-fold run of each outcome, 100 trees at most."""
    splitter = CohortSplitter(n_repeats=2)
    return {outcome: cross_validate(cohort, outcome, splitter=splitter, params={"n_estimators": 100}, interactions=False, n_jobs=1)
            for outcome in ("responder", "improvement_pct")}


@pytest.fixture(scope="module")
def binary_scores(cohort, runs):
    return score_table(cohort, runs["responder"])


@pytest.fixture(scope="module")
def continuous_scores(cohort, runs):
    return score_table(cohort, runs["improvement_pct"])


def test_score_table_holds_the_outcome_beside_each_out_of_fold_prediction(cohort, runs, binary_scores, continuous_scores):
    result = runs["responder"]
    assert list(binary_scores.columns) == ["indication", "responder", "observed", "model", "clinical", "prep2_score", "error"]
    assert binary_scores.index.equals(cohort.features.index)
    np.testing.assert_array_equal(binary_scores["observed"], cohort.outcomes["responder"].astype(float))
    np.testing.assert_array_equal(binary_scores["model"], result.prediction)
    np.testing.assert_allclose(binary_scores["clinical"], clinical_baseline(cohort, "responder", result.folds))  # refitted on the run's folds
    pd.testing.assert_series_equal(binary_scores["prep2_score"], prep2_score(cohort), check_names=False)
    np.testing.assert_allclose(binary_scores["error"], np.abs(result.prediction - cohort.outcomes["responder"]))
    assert list(binary_scores["indication"]) == list(cohort.patients["indication"])

    assert "prep2_score" not in continuous_scores  # PREP2 predicts a category, not an improvement in %
    np.testing.assert_array_equal(continuous_scores["observed"], cohort.outcomes["improvement_pct"])
    np.testing.assert_allclose(continuous_scores["error"], np.abs(runs["improvement_pct"].prediction - cohort.outcomes["improvement_pct"]))


def test_binary_ci_tables_are_binary_metrics_ci_of_the_same_columns(binary_scores):
    y = binary_scores["observed"].to_numpy()
    for threshold in (0.5, 0.3):
        tables = binary_ci_tables(binary_scores, threshold, n_boot=N_BOOT)
        assert list(tables) == [MODEL, CLINICAL, PREP2, MODEL_STROKE]
        pd.testing.assert_frame_equal(tables[MODEL], binary_metrics_ci(y, binary_scores["model"].to_numpy(), threshold, n_boot=N_BOOT))
        pd.testing.assert_frame_equal(tables[CLINICAL], binary_metrics_ci(y, binary_scores["clinical"].to_numpy(), threshold, n_boot=N_BOOT))
        assert tables[MODEL].loc["sensitivity", "estimate"] == pytest.approx(binary_metrics(y, binary_scores["model"], threshold)["sensitivity"])

        stroke = binary_scores[binary_scores["prep2_score"].notna()]
        assert tables[PREP2].loc["n", "estimate"] == len(stroke) >= PREP2_MIN_PATIENTS
        expected = binary_metrics_ci(stroke["observed"].to_numpy(), stroke["prep2_score"].to_numpy() / 3, threshold, n_boot=N_BOOT)
        calibration = ["brier", "ece"]
        pd.testing.assert_frame_equal(tables[PREP2].drop(index=calibration), expected.drop(index=calibration))
        assert tables[PREP2].loc[calibration, ["estimate", "ci_low", "ci_high"]].isna().all().all()  # a category carries no calibration
        assert (tables[PREP2].loc[calibration, "n_valid"] == 0).all()
        pd.testing.assert_frame_equal(tables[MODEL_STROKE], binary_metrics_ci(stroke["observed"].to_numpy(), stroke["model"].to_numpy(), threshold, n_boot=N_BOOT))


def test_regression_ci_tables_are_metrics_with_ci_of_the_same_columns(continuous_scores):
    tables = regression_ci_tables(continuous_scores, n_boot=N_BOOT)
    assert list(tables) == [MODEL, CLINICAL]
    y = continuous_scores["observed"].to_numpy()
    for name, column in ((MODEL, "model"), (CLINICAL, "clinical")):
        pd.testing.assert_frame_equal(tables[name], metrics_with_ci(regression_metrics, y, continuous_scores[column].to_numpy(), n_boot=N_BOOT))
    assert tables[MODEL].loc["mae", "estimate"] == pytest.approx(np.mean(np.abs(continuous_scores["model"] - y)))


def test_prep2_is_judged_only_on_enough_patients_of_both_classes(binary_scores, continuous_scores):
    usable = prep2_usable(binary_scores)
    pd.testing.assert_series_equal(usable, binary_scores["prep2_score"].notna())
    assert prep2_usable(continuous_scores) is None

    has = binary_scores.index[binary_scores["prep2_score"].notna()]
    responders = binary_scores.loc[has, "observed"] == 1
    half = PREP2_MIN_PATIENTS // 2
    keep = list(has[responders][:half]) + list(has[~responders][: PREP2_MIN_PATIENTS - half])
    just_enough = binary_scores.copy()
    just_enough.loc[just_enough.index.difference(keep), "prep2_score"] = np.nan
    assert prep2_usable(just_enough).sum() == PREP2_MIN_PATIENTS
    too_few = just_enough.copy()
    too_few.loc[keep[0], "prep2_score"] = np.nan
    assert prep2_usable(too_few) is None
    one_class = binary_scores.copy()
    one_class.loc[has, "observed"] = 1.0
    assert prep2_usable(one_class) is None


def test_prep2_categories_scale_to_0_1_with_good_and_excellent_above_one_half():
    scaled = prep2_probability([0.0, 1.0, 2.0, 3.0, np.nan])
    np.testing.assert_allclose(scaled[:4], [0, 1 / 3, 2 / 3, 1])
    assert np.isnan(scaled[4])
    assert list(scaled[:4] >= 0.5) == [False, False, True, True]


def test_repeat_spread_is_each_repeats_auc_or_r2_and_their_spread(runs, binary_scores, continuous_scores):
    for outcome, scores, name in (("responder", binary_scores, "auc"), ("improvement_pct", continuous_scores, "r2")):
        result = runs[outcome]
        per_repeat, spread = repeat_spread(result, scores["observed"])
        figure = (lambda p: roc_auc(scores["observed"], p)) if name == "auc" else (lambda p: regression_metrics(scores["observed"], p)["r2"])
        expected = [figure(result.prediction_by_repeat[c]) for c in result.prediction_by_repeat]
        assert per_repeat.name == name and list(per_repeat.index) == list(result.prediction_by_repeat.columns)
        np.testing.assert_allclose(per_repeat, expected)
        row = spread.loc[name]
        assert row["mean"] == pytest.approx(np.mean(expected)) and row["sd"] == pytest.approx(np.std(expected, ddof=1))
        assert (row["min"], row["max"], row["n"]) == (pytest.approx(min(expected)), pytest.approx(max(expected)), 2)


def test_calibration_line_is_the_least_squares_fit_of_observed_on_predicted(continuous_scores):
    observed, predicted = continuous_scores["observed"], continuous_scores["model"]
    slope, intercept = calibration_line(observed, predicted)
    design = np.column_stack([predicted, np.ones(len(predicted))])
    (expected_slope, expected_intercept), *_ = np.linalg.lstsq(design, observed, rcond=None)
    assert slope == pytest.approx(expected_slope, rel=1e-9) and intercept == pytest.approx(expected_intercept, rel=1e-9, abs=1e-9)
    # A known line: observed = 2 + 0.5 x predicted (predictions twice as spread as the outcome).
    x = np.linspace(0, 80, 41)
    assert calibration_line(2 + 0.5 * x, x) == (pytest.approx(0.5), pytest.approx(2.0))
