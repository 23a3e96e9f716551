"""Figures of merit: checked against sklearn, hand calculations and known populations."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, pearsonr
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from core.errors import InputError
from core.evaluation.metrics import (
    binary_metrics,
    calibration_curve,
    confusion_at,
    decision_curve,
    expected_calibration_error,
    fold_spread,
    metrics_with_ci,
    pr_curve_points,
    regression_metrics,
    roc_auc,
    roc_curve_points,
)


def calibrated_set(n, seed):
    """Probabilities uniform on [0, 1] and outcomes drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    return rng.uniform(size=n) < p, p


def labels_with_counts(tp, fp, tn, fn):
    """Labels and probabilities whose confusion matrix at threshold 0.5 is exactly (tp, fp, tn, fn)."""
    y = np.r_[np.ones(tp), np.zeros(fp), np.zeros(tn), np.ones(fn)].astype(bool)
    p = np.r_[np.full(tp, 0.9), np.full(fp, 0.5), np.full(tn, 0.1), np.full(fn, 0.49)]
    return y, p


# --- discrimination ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed, n, prevalence, decimals", [(0, 500, 0.5, None), (1, 300, 0.1, 2), (2, 1000, 0.8, 1)])
def test_auc_and_pr_auc_equal_sklearn_including_ties(seed, n, prevalence, decimals):
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=n) < prevalence
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    if decimals is not None:
        p = np.round(p, decimals)  # many tied probabilities
    m = binary_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["n"] == n and m["prevalence"] == pytest.approx(y.mean())


def test_curve_points_are_sklearns_and_integrate_to_the_auc():
    rng = np.random.default_rng(3)
    y = rng.uniform(size=400) < 0.3
    s = rng.normal(size=400) + y  # any score, not only probabilities
    roc = roc_curve_points(y, s)
    fpr, tpr, thr = roc_curve(y, s)
    np.testing.assert_array_equal(roc["fpr"], fpr)
    np.testing.assert_array_equal(roc["tpr"], tpr)
    np.testing.assert_array_equal(roc["threshold"], thr)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc_auc(y, s), abs=1e-12)
    pr = pr_curve_points(y, s)
    precision, recall, thr = precision_recall_curve(y, s)
    np.testing.assert_array_equal(pr["precision"], precision)
    np.testing.assert_array_equal(pr["recall"], recall)
    np.testing.assert_array_equal(pr["threshold"].iloc[:-1], thr)
    assert np.isnan(pr["threshold"].iloc[-1])


# --- classification at a threshold ------------------------------------------------------------------


def test_sensitivity_specificity_ppv_npv_of_a_hand_made_confusion_matrix():
    y, p = labels_with_counts(tp=30, fp=10, tn=50, fn=20)
    assert confusion_at(y, p, 0.5) == {"tp": 30, "fp": 10, "tn": 50, "fn": 20}  # p == threshold counts as positive
    m = binary_metrics(y, p, threshold=0.5)
    assert m["sensitivity"] == 30 / 50
    assert m["specificity"] == 50 / 60
    assert m["ppv"] == 30 / 40
    assert m["npv"] == 50 / 70
    assert m["balanced_accuracy"] == pytest.approx((30 / 50 + 50 / 60) / 2)
    assert m["prevalence"] == 50 / 110 and m["n"] == 110


def test_division_by_zero_gives_nan_without_warnings():
    y, p = labels_with_counts(tp=3, fp=2, tn=4, fn=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nobody = binary_metrics(y, p, threshold=0.95)  # no predicted responder
        everybody = binary_metrics(y, p, threshold=0.0)  # no predicted non-responder
    assert np.isnan(nobody["ppv"]) and nobody["sensitivity"] == 0 and nobody["specificity"] == 1
    assert np.isnan(everybody["npv"]) and everybody["sensitivity"] == 1 and everybody["ppv"] == 4 / 10


# --- calibration -----------------------------------------------------------------------------------


def test_ece_small_for_a_calibrated_model_and_large_for_a_miscalibrated_one():
    y, p = calibrated_set(20_000, seed=4)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, p, strategy="uniform") < 0.02
    # squaring the probability under-predicts response: E|p - p^2| = 1/6 for uniform p
    assert expected_calibration_error(y, p**2) > 0.1
    assert binary_metrics(y, p)["ece"] == expected_calibration_error(y, p, n_bins=10, strategy="quantile")


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_curve_matches_sklearn_and_weights_sum_to_n(strategy):
    y, p = calibrated_set(3000, seed=5)
    p = p**1.5
    curve = calibration_curve(y, p, n_bins=8, strategy=strategy)
    prob_true, prob_pred = sk_calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(curve["observed_rate"], prob_true, atol=1e-12)
    np.testing.assert_allclose(curve["mean_predicted"], prob_pred, atol=1e-12)
    assert list(curve.columns) == ["bin", "mean_predicted", "observed_rate", "n", "ci_low", "ci_high"]
    assert curve["n"].sum() == 3000
    ece = (curve["n"] * (curve["observed_rate"] - curve["mean_predicted"]).abs()).sum() / 3000
    assert expected_calibration_error(y, p, n_bins=8, strategy=strategy) == pytest.approx(ece)


def test_wilson_interval_by_hand():
    # 0 responders of 10: Wilson 95% upper limit z^2 / (n + z^2) = 0.2775
    curve = calibration_curve(np.zeros(10), np.full(10, 0.2), n_bins=1)
    assert curve["ci_low"].iloc[0] == 0
    assert curve["ci_high"].iloc[0] == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)


def test_calibration_interval_covers_the_true_rate_95_percent_of_the_time():
    # y ~ Bernoulli(p): the true response rate of a bin is the mean probability of its patients
    covered, total = 0, 0
    for seed in range(200):
        y, p = calibrated_set(500, seed=100 + seed)
        curve = calibration_curve(y, p, n_bins=5)
        covered += int(((curve["ci_low"] <= curve["mean_predicted"]) & (curve["mean_predicted"] <= curve["ci_high"])).sum())
        total += len(curve)
    assert total == 1000
    assert 0.93 <= covered / total <= 0.985


# --- decision curve --------------------------------------------------------------------------------


def test_decision_curve_references_and_a_perfect_model():
    rng = np.random.default_rng(6)
    y = rng.uniform(size=1000) < 0.3
    prevalence = y.mean()
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.15, 1000), 0, 1)
    curve = decision_curve(y, p, thresholds=[0.1, prevalence, 0.5])
    assert curve["net_benefit_treat_all"].iloc[1] == pytest.approx(0, abs=1e-12)
    assert (curve["net_benefit_treat_none"] == 0).all()
    # by hand at pt = 0.1: TP/n - FP/n * 0.1/0.9
    tp, fp = np.sum(y & (p >= 0.1)), np.sum(~y & (p >= 0.1))
    assert curve["net_benefit_model"].iloc[0] == pytest.approx(tp / 1000 - fp / 1000 / 9)
    perfect = decision_curve(y, y.astype(float))
    np.testing.assert_allclose(perfect["net_benefit_model"], prevalence, atol=1e-12)
    assert len(perfect) == 99 and perfect["threshold"].iloc[0] == pytest.approx(0.01)


# --- continuous outcome ------------------------------------------------------------------------------


def test_regression_metrics_by_hand():
    y = [1.0, 2.0, 3.0, 4.0]
    f = [2.0, 2.0, 2.0, 6.0]  # errors 1, 0, -1, 2
    m = regression_metrics(y, f)
    assert m["mae"] == 1.0
    assert m["rmse"] == pytest.approx(np.sqrt(6 / 4))
    assert m["r2"] == pytest.approx(1 - 6 / 5)  # SS_tot = 5
    assert m["pearson_r"] == pytest.approx(6 / np.sqrt(5 * 12))
    assert m["pearson_r"] == pytest.approx(pearsonr(y, f)[0])
    assert m["n"] == 4
    assert np.isnan(regression_metrics([3, 3, 3], [1, 2, 3])["r2"])


# --- uncertainty -----------------------------------------------------------------------------------


def test_bootstrap_ci_of_auc_covers_the_binormal_truth_with_hanley_mcneil_width():
    d, n_pos, n_neg = 1.0, 800, 1200
    true_auc = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    score = np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]
    table = metrics_with_ci(binary_metrics, y, norm.cdf(score), n_boot=1000, seed=0)  # monotone map keeps AUC
    auc = table.loc["auc"]
    assert auc["ci_low"] < true_auc < auc["ci_high"]
    a = auc["estimate"]
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg))
    assert (auc["ci_high"] - auc["ci_low"]) == pytest.approx(2 * 1.96 * se, rel=0.3)
    # stratified by class: prevalence and n never move
    assert table.loc["prevalence", "ci_low"] == table.loc["prevalence", "ci_high"] == 0.4
    assert list(table.columns[:3]) == ["estimate", "ci_low", "ci_high"]


def test_metrics_with_ci_is_deterministic_and_copes_with_undefined_resamples():
    y, p = calibrated_set(200, seed=8)  # one patient (a responder) has p >= 0.99
    fn = lambda yy, pp: binary_metrics(yy, pp, threshold=0.99)  # noqa: E731
    first = metrics_with_ci(fn, y, p, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(first, metrics_with_ci(fn, y, p, n_boot=200, seed=1))
    assert not first.equals(metrics_with_ci(fn, y, p, n_boot=200, seed=2))
    # PPV is defined only in resamples that drew that patient: about 1 - (1 - 1/98)^98 = 63%
    assert 110 <= first.loc["ppv", "n_valid"] <= 150
    assert first.loc["ppv", ["ci_low", "ci_high"]].tolist() == [1.0, 1.0]
    assert first.loc["auc", "n_valid"] == 200
    nobody = metrics_with_ci(lambda yy, pp: binary_metrics(yy, pp, threshold=0.999), y, p, n_boot=50)
    assert nobody.loc["ppv", "n_valid"] == 0 and nobody.loc["ppv", ["estimate", "ci_low", "ci_high"]].isna().all()


def test_metrics_with_ci_for_a_continuous_outcome():
    rng = np.random.default_rng(9)
    y = rng.normal(30, 10, 300)
    f = y + rng.normal(0, 5, 300)
    table = metrics_with_ci(regression_metrics, y, f, n_boot=300)
    assert table.loc["rmse", "ci_low"] < 5 < table.loc["rmse", "ci_high"]
    assert table.loc["mae", "ci_low"] < table.loc["mae", "estimate"] < table.loc["mae", "ci_high"]


def test_fold_spread_by_hand():
    folds = pd.DataFrame({"repeat": [0, 0, 1, 1], "fold": [0, 1, 0, 1], "auc": [0.6, 0.7, 0.8, np.nan], "brier": [0.2, 0.2, 0.2, 0.2]})
    out = fold_spread(folds, ["auc", "brier"])
    assert out.loc["auc", "mean"] == pytest.approx(0.7)
    assert out.loc["auc", "sd"] == pytest.approx(0.1)
    assert (out.loc["auc", "min"], out.loc["auc", "max"], out.loc["auc", "n"]) == (0.6, 0.8, 3)
    assert out.loc["brier", "sd"] == 0


# --- errors for people -----------------------------------------------------------------------------


def test_one_class_only_is_an_input_error_with_the_roc_auc_message():
    message = "[responder] AUC needs both classes; found 10 responders and 0 non-responders."
    for call in (binary_metrics, roc_auc, roc_curve_points):
        with pytest.raises(InputError, match=re.escape(message)) as info:
            call(np.ones(10), np.full(10, 0.5))
        assert info.value.field == "responder"


def test_probabilities_outside_unit_interval_are_an_input_error():
    with pytest.raises(InputError) as info:
        binary_metrics([0, 1, 1, 0], [0.2, 1.3, -0.1, 0.5])
    assert str(info.value) == "[probability] Probabilities must lie between 0 and 1; found 2 of 4 outside (lowest -0.1, highest 1.3)."
    assert info.value.field == "probability"


def test_length_mismatch_is_an_input_error():
    with pytest.raises(InputError) as info:
        binary_metrics([0, 1, 1], [0.2, 0.3])
    assert str(info.value) == "[probability] Expected one probability per patient; found 3 responder labels and 2 probabilities."
    with pytest.raises(InputError, match=re.escape("found 3 observed outcomes and 2 predictions")):
        regression_metrics([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    "labels, fragment",
    [([0, 1, 2], "must be 0/1 or True/False; found 2."), ([0, 1, np.nan], "found 1 missing label among 3 patients"), (["yes", "no", "no"], "found 'yes', 'no'")],
)
def test_labels_other_than_0_1_are_an_input_error(labels, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        binary_metrics(labels, [0.1, 0.2, 0.3])
