"""Figures of merit: checked against sklearn, hand calculations, plain loops and known populations."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm, pearsonr
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    mean_absolute_error,
    precision_recall_curve,
    r2_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)

from core.errors import InputError
from core.evaluation.metrics import (
    METRICS,
    _binary_figures_of_resamples,
    _regression_figures_of_resamples,
    _wilson,
    binary_metrics,
    binary_metrics_ci,
    bootstrap_ci,
    calibration_curve,
    confusion_at,
    decision_curve,
    expected_calibration_error,
    fold_spread,
    metrics_for,
    metrics_with_ci,
    pr_curve_points,
    regression_metrics,
    roc_auc,
    roc_auc_ci,
    roc_curve_points,
)


def calibrated_set(n, seed):
    """Probabilities uniform on [0, 1] and outcomes drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    return rng.uniform(size=n) < p, p


def scored_set(n, seed, decimals=None, prevalence=0.35):
    """Labels and probabilities that separate the classes a little; ``decimals`` rounds them (ties)."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=n) < prevalence
    p = np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1)
    return y, (p if decimals is None else np.round(p, decimals))


def metrics_with_ci_draws(strata, n_boot, seed, block=64):
    """The resamples of metrics_with_ci, written out: per block of 64, one integer draw per stratum."""
    rng = np.random.default_rng(seed)
    rows = []
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        rows.append(np.concatenate([s[rng.integers(0, s.size, size=(size, s.size))] for s in strata], axis=1))
    return np.concatenate(rows)


def class_strata(y):
    """Non-responders, then responders: the strata metrics_with_ci uses for binary labels by default."""
    y = np.asarray(y, bool)
    return [np.flatnonzero(~y), np.flatnonzero(y)]


def percentile_table(values: dict, n_boot, level=0.95):
    """Interval and number of defined resamples of each figure, from a plain list per figure."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v, float)
        ok = v[np.isfinite(v)]
        low, high = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2]) if ok.size >= n_boot / 2 else (np.nan, np.nan)
        out[name] = (low, high, ok.size)
    return out


def assert_table_matches(table, expected, atol=1e-12):
    for name, (low, high, n_valid) in expected.items():
        assert table.loc[name, "n_valid"] == n_valid, name
        np.testing.assert_allclose(table.loc[name, ["ci_low", "ci_high"]].to_numpy(float), [low, high], rtol=0, atol=atol, err_msg=name)


def sklearn_binary_figures(y, p, threshold):
    """binary_metrics' figures of one sample from sklearn's own functions (ECE from the plain loop)."""
    tn, fp, fn, tp = confusion_matrix(y, p >= threshold, labels=[False, True]).ravel()
    ratio = lambda a, b: a / b if b else np.nan
    sensitivity, specificity = ratio(tp, tp + fn), ratio(tn, tn + fp)
    return {
        "auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "brier": brier_score_loss(y, p),
        "ece": ece_by_loop(y, p, 10, "quantile"),
        "n": len(y),
        "prevalence": np.mean(y),
    }


def sklearn_regression_figures(y, f):
    """regression_metrics' figures of one sample: sklearn, and scipy's Pearson r; NaN for a constant array."""
    y_constant, f_constant = np.ptp(y) == 0, np.ptp(f) == 0
    return {
        "mae": mean_absolute_error(y, f),
        "rmse": root_mean_squared_error(y, f),
        "r2": np.nan if y_constant else r2_score(y, f),
        "pearson_r": np.nan if y_constant or f_constant else pearsonr(y, f)[0],
        "n": len(y),
    }


def ece_by_loop(y, p, n_bins, strategy):
    """Expected calibration error, one patient and one bin at a time."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, n_bins + 1) if strategy == "uniform" else np.quantile(p, np.linspace(0, 1, n_bins + 1))
    bin_of = [sum(pi >= e for e in edges[1:-1]) for pi in p]  # on an inner edge: the upper bin
    total = 0.0
    for b in range(n_bins):
        members = [i for i in range(len(p)) if bin_of[i] == b]
        if members:
            total += abs(sum(y[i] for i in members) - sum(p[i] for i in members))
    return total / len(p)


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


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
@pytest.mark.parametrize("seed, n, n_bins, decimals", [(20, 300, 10, None), (21, 157, 7, 2), (22, 90, 5, 1), (23, 40, 12, None)])
def test_ece_equals_a_plain_loop_over_bins(strategy, seed, n, n_bins, decimals):
    y, p = scored_set(n, seed, decimals)
    assert expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy) == pytest.approx(ece_by_loop(y, p, n_bins, strategy), abs=1e-12)
    if strategy == "quantile" and n_bins == 10:
        assert binary_metrics(y, p)["ece"] == pytest.approx(ece_by_loop(y, p, 10, "quantile"), abs=1e-12)


def test_wilson_intervals_equal_scipy_binomtest():
    y, p = scored_set(700, seed=24, decimals=2)
    curve = calibration_curve(y, p, n_bins=9)
    for _, row in curve.iterrows():
        k = round(row["observed_rate"] * row["n"])
        ci = binomtest(k, int(row["n"])).proportion_ci(confidence_level=0.95, method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    rng = np.random.default_rng(25)
    n = rng.integers(1, 400, 40)
    k = rng.integers(0, n + 1)
    k[0], k[-1] = 0, n[-1]  # none and all of them
    for level in (0.8, 0.95, 0.99):
        low, high = _wilson(k, n, level)
        for i in range(n.size):
            ci = binomtest(int(k[i]), int(n[i])).proportion_ci(confidence_level=level, method="wilson")
            assert (low[i], high[i]) == pytest.approx((ci.low, ci.high), abs=1e-12)


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


@pytest.mark.parametrize("seed, decimals", [(26, None), (27, 1)])
def test_decision_curve_equals_a_plain_loop_over_thresholds(seed, decimals):
    y, p = scored_set(250, seed, decimals)
    thresholds = np.r_[np.linspace(0.01, 0.99, 37), np.unique(p)[1:-1][:20]]  # some exactly on a probability
    thresholds = thresholds[(thresholds > 0) & (thresholds < 1)]
    curve = decision_curve(y, p, thresholds=thresholds)
    n, prevalence = len(y), np.mean(y)
    for i, pt in enumerate(thresholds):
        tp = sum(1 for yi, pi in zip(y, p) if yi and pi >= pt)
        fp = sum(1 for yi, pi in zip(y, p) if not yi and pi >= pt)
        odds = pt / (1 - pt)
        assert curve["threshold"].iloc[i] == pt
        assert curve["net_benefit_model"].iloc[i] == pytest.approx(tp / n - fp / n * odds, abs=1e-12)
        assert curve["net_benefit_treat_all"].iloc[i] == pytest.approx(prevalence - (1 - prevalence) * odds, abs=1e-12)
    assert (curve["net_benefit_treat_none"] == 0).all()


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


@pytest.mark.parametrize("decimals", [None, 1])
def test_vectorised_binary_figures_equal_sklearn_on_each_resample(decimals):
    y, p = scored_set(120, seed=30, decimals=decimals)
    threshold = 0.4 if decimals is None else float(np.median(p))  # with ties: a threshold on a probability
    idx = metrics_with_ci_draws(class_strata(y), n_boot=150, seed=3)
    order = np.argsort(p, kind="stable")
    counts = np.array([np.bincount(rows, minlength=len(y)) for rows in idx])[:, order]
    figures = _binary_figures_of_resamples(counts, y[order], p[order], threshold)
    for r, rows in enumerate(idx):
        expected = sklearn_binary_figures(y[rows], p[rows], threshold)
        for name, value in expected.items():
            assert figures[name][r] == pytest.approx(value, abs=1e-12, nan_ok=True), (name, r)


def test_vectorised_binary_figures_when_every_score_is_tied():
    y = np.r_[np.ones(15, bool), np.zeros(25, bool)]
    p = np.full(40, 0.3)
    idx = metrics_with_ci_draws(class_strata(y), n_boot=70, seed=4)
    for threshold in (0.3, 0.5):
        counts = np.array([np.bincount(rows, minlength=40) for rows in idx])
        figures = _binary_figures_of_resamples(counts, y, p, threshold)
        for r, rows in enumerate(idx):
            for name, value in sklearn_binary_figures(y[rows], p[rows], threshold).items():
                assert figures[name][r] == pytest.approx(value, abs=1e-12, nan_ok=True), (name, r)
        assert np.all(figures["auc"] == 0.5) and np.allclose(figures["pr_auc"], 15 / 40)


@pytest.mark.parametrize("decimals", [None, 0])
def test_vectorised_regression_figures_equal_sklearn_on_each_resample(decimals):
    rng = np.random.default_rng(31)
    y = rng.normal(30, 10, 60)
    f = y + rng.normal(0, 5, 60)
    if decimals is not None:  # few distinct values: ties, and resamples of one value
        y, f = np.round(y / 10, decimals), np.round(f / 10, decimals)
        y[:55], f[:50] = 3.0, 3.0
    idx = metrics_with_ci_draws([np.arange(60)], n_boot=130, seed=5)
    counts = np.array([np.bincount(rows, minlength=60) for rows in idx])
    figures = _regression_figures_of_resamples(counts, y, f)
    for r, rows in enumerate(idx):
        for name, value in sklearn_regression_figures(y[rows], f[rows]).items():
            assert figures[name][r] == pytest.approx(value, abs=1e-9, nan_ok=True), (name, r)
    if decimals is not None:
        assert np.isnan(figures["r2"]).any() and np.isnan(figures["pearson_r"]).any()


@pytest.mark.parametrize("decimals, threshold, stratify", [(None, 0.4, None), (1, 0.5, None), (2, 0.3, False)])
def test_binary_metrics_ci_equals_a_plain_loop_over_the_same_resamples(decimals, threshold, stratify):
    y, p = scored_set(150, seed=32, decimals=decimals, prevalence=0.5)
    n_boot, seed = 130, 6
    strata = class_strata(y) if stratify is None else [np.arange(len(y))]
    values = {}
    for rows in metrics_with_ci_draws(strata, n_boot, seed):
        for name, value in sklearn_binary_figures(y[rows], p[rows], threshold).items():
            values.setdefault(name, []).append(value)
    expected = percentile_table(values, n_boot)
    table = binary_metrics_ci(y, p, threshold, n_boot=n_boot, seed=seed, stratify=stratify)
    assert_table_matches(table, expected)
    pd.testing.assert_frame_equal(table, metrics_with_ci(lambda a, b: binary_metrics(a, b, threshold), y, p, n_boot=n_boot, seed=seed, stratify=stratify),
                                  check_exact=False, rtol=0, atol=1e-12)
    if threshold == 0.5:
        pd.testing.assert_frame_equal(metrics_with_ci(binary_metrics, y, p, n_boot=n_boot, seed=seed, stratify=stratify), table)


def test_metrics_with_ci_equals_a_plain_loop_for_any_metric_and_strata():
    rng = np.random.default_rng(33)
    y = rng.normal(30, 10, 90)
    f = y + rng.normal(0, 5, 90)
    site = rng.choice(["a", "b", "c"], 90)
    strata = [np.flatnonzero(site == s) for s in ("a", "b", "c")]
    n_boot, seed, level = 110, 7, 0.9
    metric = lambda yy, ff: {"median_abs_error": float(np.median(np.abs(ff - yy))), "max_error": float(np.max(np.abs(ff - yy)))}
    values = {"median_abs_error": [], "max_error": []}
    regression_values = {}
    for rows in metrics_with_ci_draws(strata, n_boot, seed):
        for name, value in metric(y[rows], f[rows]).items():
            values[name].append(value)
        for name, value in sklearn_regression_figures(y[rows], f[rows]).items():
            regression_values.setdefault(name, []).append(value)
    assert_table_matches(metrics_with_ci(metric, y, f, n_boot=n_boot, seed=seed, stratify=site, level=level), percentile_table(values, n_boot, level))
    assert_table_matches(metrics_with_ci(regression_metrics, y, f, n_boot=n_boot, seed=seed, stratify=site, level=level),
                         percentile_table(regression_values, n_boot, level), atol=1e-9)


def test_bootstrap_ci_and_roc_auc_ci_equal_a_plain_loop_over_the_same_resamples():
    y, p = scored_set(140, seed=34, decimals=1)
    rng = np.random.default_rng(8)
    aucs, means = [], []
    for _ in range(120):
        rows = np.concatenate([rng.choice(s, len(s)) for s in class_strata(y)])
        aucs.append(roc_auc_score(y[rows], p[rows]))
    rng = np.random.default_rng(8)
    for _ in range(120):
        rows = rng.choice(np.arange(len(y)), len(y))
        means.append(np.mean(p[rows][y[rows]]) - np.mean(p[rows][~y[rows]]))
    auc, low, high = roc_auc_ci(y, p, n_boot=120, seed=8, level=0.9)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert (low, high) == pytest.approx(tuple(np.quantile(aucs, [0.05, 0.95])), abs=1e-12)
    gap = lambda yy, pp: np.mean(pp[yy]) - np.mean(pp[~yy])
    estimate, low, high = bootstrap_ci(gap, y, p, n_boot=120, seed=8)
    assert estimate == pytest.approx(gap(y, p)) and (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)


def test_fold_spread_by_hand():
    folds = pd.DataFrame({"repeat": [0, 0, 1, 1], "fold": [0, 1, 0, 1], "auc": [0.6, 0.7, 0.8, np.nan], "brier": [0.2, 0.2, 0.2, 0.2]})
    out = fold_spread(folds, ["auc", "brier"])
    assert out.loc["auc", "mean"] == pytest.approx(0.7)
    assert out.loc["auc", "sd"] == pytest.approx(0.1)
    assert (out.loc["auc", "min"], out.loc["auc", "max"], out.loc["auc", "n"]) == (0.6, 0.8, 3)
    assert out.loc["brier", "sd"] == 0


# --- one registry of figures -------------------------------------------------------------------------


def test_metrics_registry_names_every_figure_in_order_and_the_ablation_keeps_its_own():
    y, p = scored_set(50, seed=35)
    binary = [k for k in binary_metrics(y, p) if k not in ("n", "prevalence")]
    continuous = [k for k in regression_metrics(p, p + y) if k != "n"]
    assert [n for n, m in METRICS.items() if m.outcome_kind == "binary"] == binary
    assert [n for n, m in METRICS.items() if m.outcome_kind == "continuous"] == continuous
    assert all(name == spec.name and spec.label for name, spec in METRICS.items())
    assert metrics_for("responder") == ["auc", "pr_auc", "brier"] and metrics_for("improvement_pct") == ["r2", "mae", "rmse"]
    assert [n for n, m in METRICS.items() if m.chance is None] == ["balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "ece", "pearson_r"]
    assert not METRICS["ece"].higher_is_better and METRICS["sensitivity"].higher_is_better


def test_an_unstratified_resample_with_one_class_is_the_auc_input_error():
    y = np.r_[True, np.zeros(9, bool)]  # one responder: some plain resamples miss them
    p = np.linspace(0.1, 0.9, 10)
    with pytest.raises(InputError, match=re.escape("AUC needs both classes; found 0 responders and 10 non-responders.")):
        binary_metrics_ci(y, p, n_boot=50, stratify=False)
    with pytest.raises(InputError, match=re.escape("AUC needs both classes; found 0 responders and 10 non-responders.")):
        metrics_with_ci(lambda a, b: binary_metrics(a, b), y, p, n_boot=50, stratify=False)


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
