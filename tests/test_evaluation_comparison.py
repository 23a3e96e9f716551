"""Models compared on the same folds: paired differences, shared bootstrap resamples, patterns, oracle, calibration."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from core.errors import InputError
from core.evaluation.comparison import COMPARED_METRICS, DECISION_THRESHOLDS, PAIRED_METRICS, calibration_slope_intercept, compare_models
from core.evaluation.metrics import binary_metrics, binary_metrics_ci
from core.modelling.validation import CohortSplitter, CVResult
from core.synth.config import presets
from core.synth.generator import generate_cohort

N_BOOT = 200  # fewer than the page's 1000: every check here is exact or far from its limit


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(dataclasses.replace(presets()["default"], n_patients=400), n_jobs=1)


@pytest.fixture(scope="module")
def folds(cohort):
    return CohortSplitter(n_splits=5, n_repeats=2).split(cohort.outcomes["responder"].astype(int))


def make_run(cohort, folds, by_repeat) -> CVResult:
    """A CVResult holding the given out-of-fold probabilities, shape (n_patients, n_repeats)."""
    table = pd.DataFrame(np.asarray(by_repeat, dtype=float), index=cohort.features.index, columns=[f"repeat_{r}" for r in range(np.shape(by_repeat)[1])])
    return CVResult(outcome="responder", features=list(cohort.features.columns), prediction=table.mean(axis=1).rename("prediction"), prediction_by_repeat=table,
                    explanation=None, interaction=None, folds=folds, fold_models=[], scheme="2 x 5-fold cross-validation, stratified by outcome")


@pytest.fixture(scope="module")
def runs(cohort, folds):
    """An informed model (the oracle's log-odds plus noise) and an uninformed one (noise only)."""
    rng = np.random.default_rng(0)
    n = cohort.n_patients
    truth = logit(np.clip(cohort.outcomes["true_response_probability"].to_numpy(float), 1e-6, 1 - 1e-6))
    informed = expit(truth[:, None] + rng.normal(0.0, 1.0, (n, 2)))
    noise = rng.uniform(0.2, 0.8, (n, 2))
    return {"noise": make_run(cohort, folds, noise), "informed": make_run(cohort, folds, informed)}


@pytest.fixture(scope="module")
def comparison(cohort, runs):
    return compare_models(cohort, runs, n_boot=N_BOOT, seed=0)


def row(table, **where):
    mask = np.ones(len(table), bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    (index,) = np.flatnonzero(mask)
    return table.iloc[index]


# --- calibration slope and intercept -------------------------------------------------------------


def test_a_calibrated_prediction_has_slope_one_and_intercept_zero():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.98, 50_000)
    y = rng.random(p.size) < p
    slope, intercept = calibration_slope_intercept(y, p)
    assert abs(slope - 1) < 0.05 and abs(intercept) < 0.05
    # Squeezed towards 0.5, the prediction is too timid: the outcome needs a steeper slope.
    squeezed_slope, squeezed_intercept = calibration_slope_intercept(y, 0.5 + 0.5 * (p - 0.5))
    assert squeezed_slope > 1.5 and abs(squeezed_intercept) < 0.05
    # Spread away from 0.5 (over-fitting), it is too extreme: slope below 1.
    assert calibration_slope_intercept(y, expit(2 * logit(p)))[0] < 0.6
    # Predicting too few responses everywhere (log-odds 0.5 too low): calibration in the large is +0.5.
    assert calibration_slope_intercept(y, expit(logit(p) - 0.5))[1] == pytest.approx(0.5, abs=0.05)


def test_the_slope_is_the_maximum_likelihood_fit_and_nan_under_separation():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 800)
    y = rng.random(z.size) < expit(0.4 * z - 0.3)
    p = expit(z)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(logit(p)[:, None], y)
    slope, _ = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], rel=1e-5)
    # A prediction that separates the classes has no finite maximum-likelihood slope.
    labels = np.r_[np.zeros(20), np.ones(20)]
    slope, intercept = calibration_slope_intercept(labels, labels)
    assert np.isnan(slope) and np.isfinite(intercept)
    with pytest.raises(InputError, match="both classes"):
        calibration_slope_intercept(np.ones(5), np.full(5, 0.5))
    with pytest.raises(InputError, match="between 0 and 1"):
        calibration_slope_intercept([0, 1], [0.5, 1.5])


# --- the comparison ------------------------------------------------------------------------------


def test_the_informed_model_beats_noise_on_paired_folds(comparison):
    auc = comparison.metrics.set_index(["model", "metric"])["estimate"]
    assert auc["informed", "auc"] > 0.85 and 0.4 < auc["noise", "auc"] < 0.6
    paired = row(comparison.paired, model="informed", metric="auc")
    assert paired["reference"] == "noise" and paired["n_folds"] == 10
    assert paired["ci_low"] > 0.2 and paired["p"] < 0.001
    assert row(comparison.paired, model="informed", metric="brier")["ci_high"] < 0  # a lower Brier score is better
    sentence = comparison.summary_sentence()
    assert sentence.startswith(f"informed's AUC is {paired['mean']:.3f} higher than noise's")
    assert f"95% CI {paired['ci_low']:.3f} to {paired['ci_high']:.3f}" in sentence and "over 10 test folds" in sentence
    assert sentence.endswith("the interval excludes zero.")


def test_paired_differences_are_each_folds_metric_from_that_repeats_predictions(cohort, runs, comparison, folds):
    y = cohort.outcomes["responder"].to_numpy(int)
    per_fold = comparison.paired_per_fold
    assert len(per_fold) == len(folds) * len(PAIRED_METRICS)
    fold = folds[7]  # repeat 1, fold 2
    assert (fold.repeat, fold.fold) == (1, 2)
    expected = {name: binary_metrics(y[fold.test], run.prediction_by_repeat["repeat_1"].to_numpy()[fold.test]) for name, run in runs.items()}
    for metric in PAIRED_METRICS:
        got = row(per_fold, repeat=1, fold=2, model="informed", metric=metric)
        assert got["difference"] == pytest.approx(expected["informed"][metric] - expected["noise"][metric], abs=1e-12)
    mean_auc = per_fold[(per_fold["metric"] == "auc")]["difference"].mean()
    assert row(comparison.paired, model="informed", metric="auc")["mean"] == pytest.approx(mean_auc)


def test_a_model_beside_an_identical_copy_differs_by_nothing(cohort, runs):
    twin = compare_models(cohort, {"informed": runs["informed"], "informed again": runs["informed"]}, n_boot=N_BOOT, seed=3)
    assert (twin.paired["mean"] == 0).all() and (twin.paired["p"] == 1).all()
    assert (twin.paired_per_fold["difference"] == 0).all()
    # The same resampled patients for every model: identical intervals under both names.
    metrics = twin.metrics.set_index(["model", "metric"])
    for metric in COMPARED_METRICS:
        np.testing.assert_array_equal(metrics.loc[("informed", metric)].to_numpy(), metrics.loc[("informed again", metric)].to_numpy())
    curves = twin.decision_curves.set_index("model")
    np.testing.assert_array_equal(curves.loc["informed", ["net_benefit", "ci_low", "ci_high"]].to_numpy(), curves.loc["informed again", ["net_benefit", "ci_low", "ci_high"]].to_numpy())
    patterns = twin.by_pattern.set_index("model")
    np.testing.assert_array_equal(patterns.loc["informed", ["auc", "ci_low", "ci_high"]].to_numpy(), patterns.loc["informed again", ["auc", "ci_low", "ci_high"]].to_numpy())
    assert twin.summary_sentence().endswith("the data do not show a difference.")


def test_the_shared_resamples_are_binary_metrics_ci_resamples(cohort, comparison):
    """The oracle's AUC interval (from the comparison's own resamples) equals binary_metrics_ci's with the same seed."""
    y = cohort.outcomes["responder"].to_numpy(int)
    truth = cohort.outcomes["true_response_probability"].to_numpy(float)
    reference = binary_metrics_ci(y, truth, n_boot=N_BOOT, seed=0).loc["auc"]
    oracle = comparison.oracle.loc["informed"]
    assert oracle["oracle_ci_low"] == pytest.approx(reference["ci_low"], abs=1e-12)
    assert oracle["oracle_ci_high"] == pytest.approx(reference["ci_high"], abs=1e-12)
    assert oracle["oracle_auc"] == pytest.approx(reference["estimate"], abs=1e-12)


def test_intervals_contain_their_estimates(comparison):
    metrics = comparison.metrics
    assert list(metrics.columns) == ["model", "metric", "estimate", "ci_low", "ci_high"]
    assert len(metrics) == 2 * len(COMPARED_METRICS)
    assert metrics[["estimate", "ci_low", "ci_high"]].notna().all().all()
    assert ((metrics["ci_low"] <= metrics["estimate"]) & (metrics["estimate"] <= metrics["ci_high"])).all()
    paired = comparison.paired
    assert ((paired["ci_low"] <= paired["mean"]) & (paired["mean"] <= paired["ci_high"])).all()
    curves = comparison.decision_curves
    assert ((curves["ci_low"] <= curves["net_benefit"] + 1e-12) & (curves["net_benefit"] <= curves["ci_high"] + 1e-12)).all()
    estimated = comparison.by_pattern.dropna(subset=["auc"])
    assert len(estimated) and ((estimated["ci_low"] <= estimated["auc"]) & (estimated["auc"] <= estimated["ci_high"])).all()
    oracle = comparison.oracle
    assert ((oracle["ci_low"] <= oracle["fraction"]) & (oracle["fraction"] <= oracle["ci_high"])).all()


def test_scores_and_patterns_cover_every_patient(cohort, comparison):
    scores = comparison.scores
    assert list(scores.columns) == ["observed", "noise", "informed", "pattern", "oracle"]
    assert scores.index.equals(cohort.features.index)
    # The pattern's modalities are those with any feature present.
    availability = cohort.modality_availability()
    expected = availability.apply(lambda r: "+".join(m for m in availability.columns if r[m]), axis=1)
    assert (scores["pattern"] == expected).all()
    assert set(scores["pattern"]) >= {"dti+emg+kin+clin", "emg+kin+clin", "dti+kin+clin"}
    by_pattern = comparison.by_pattern
    for name in ("noise", "informed"):
        part = by_pattern[by_pattern["model"] == name]
        assert part["n"].sum() == cohort.n_patients == 400
        assert part["n_responders"].sum() == int(cohort.outcomes["responder"].sum())
    # Rare patterns have no AUC, and say why.
    small = by_pattern[(by_pattern[["n_responders"]].to_numpy()[:, 0] < 10) | (by_pattern["n"] - by_pattern["n_responders"] < 10)]
    assert len(small) and small["auc"].isna().all() and small["note"].str.contains("at least 10 of each class").all()
    assert (by_pattern.loc[by_pattern["auc"].notna(), "note"] == "").all()


def test_the_oracle_is_its_own_ceiling(cohort, folds, runs):
    truth = cohort.outcomes["true_response_probability"].to_numpy(float)
    oracle_run = make_run(cohort, folds, np.column_stack([truth, truth]))
    table = compare_models(cohort, {"oracle model": oracle_run, "informed": runs["informed"]}, n_boot=N_BOOT).oracle
    assert table.loc["oracle model", "fraction"] == 1.0
    assert table.loc["oracle model", "ci_low"] == table.loc["oracle model", "ci_high"] == 1.0
    assert 0.8 < table.loc["informed", "fraction"] < 1.0 and table.loc["informed", "ci_high"] <= 1.01
    # Without the ground truth there is no oracle.
    real = dataclasses.replace(cohort, outcomes=cohort.outcomes.drop(columns="true_response_probability"))
    plain = compare_models(real, {"informed": runs["informed"]}, n_boot=50)
    assert plain.oracle is None and "oracle" not in plain.scores and "oracle" not in plain.to_csv_tables()
    assert plain.paired.empty and plain.summary_sentence().startswith("informed's AUC is")


def test_the_decision_curve_of_a_perfect_predictor_is_the_prevalence(cohort, folds, runs):
    y = cohort.outcomes["responder"].to_numpy(float)
    perfect = make_run(cohort, folds, np.column_stack([y, y]))
    curves = compare_models(cohort, {"informed": runs["informed"], "perfect": perfect}, n_boot=N_BOOT).decision_curves
    prevalence = y.mean()
    mine = curves[curves["model"] == "perfect"]
    np.testing.assert_allclose(mine["threshold"], DECISION_THRESHOLDS)
    np.testing.assert_allclose(mine["net_benefit"], prevalence, atol=1e-12)
    np.testing.assert_allclose(mine[["ci_low", "ci_high"]], prevalence, atol=1e-12)  # the resamples keep the prevalence
    treat_all = curves[curves["model"] == "treat all"].set_index("threshold")["net_benefit"]
    assert treat_all[0.3] == pytest.approx(prevalence - (1 - prevalence) * 0.3 / 0.7)
    assert (curves.loc[curves["model"] == "treat none", ["net_benefit", "ci_low", "ci_high"]] == 0).all().all()
    assert set(curves["model"]) == {"informed", "perfect", "treat all", "treat none"}


def test_models_on_other_folds_are_refused_with_the_fold_named(cohort, runs):
    y = cohort.outcomes["responder"].astype(int)
    reshuffled = make_run(cohort, CohortSplitter(n_splits=5, n_repeats=2, seed=1).split(y), runs["informed"].prediction_by_repeat.to_numpy())
    with pytest.raises(InputError, match=r"'other' and 'noise' were not cross-validated on the same folds: repeat 0, fold 0 has different test patients") as error:
        compare_models(cohort, {"noise": runs["noise"], "other": reshuffled}, n_boot=10)
    assert "patients in one and not the other" in str(error.value) and "same splitter" in str(error.value)
    fewer = make_run(cohort, CohortSplitter(n_splits=4, n_repeats=2).split(y), runs["informed"].prediction_by_repeat.to_numpy())
    with pytest.raises(InputError, match=r"'other' was cross-validated on 8 folds and 'noise' on 10"):
        compare_models(cohort, {"noise": runs["noise"], "other": fewer}, n_boot=10)


def test_other_outcomes_patients_and_names_are_refused(cohort, runs):
    improvement = dataclasses.replace(runs["informed"], outcome="improvement_pct")
    with pytest.raises(InputError, match=r"'informed' was cross-validated on the outcome 'improvement_pct'"):
        compare_models(cohort, {"noise": runs["noise"], "informed": improvement}, n_boot=10)
    smaller = dataclasses.replace(cohort, patients=cohort.patients.iloc[1:], features=cohort.features.iloc[1:], outcomes=cohort.outcomes.iloc[1:])
    with pytest.raises(InputError, match=rf"'noise' was not cross-validated on cohort 'demo': 1 predicted patient is not in the cohort \(e.g. {cohort.patients.index[0]}\)"):
        compare_models(smaller, runs, n_boot=10)
    shuffled = cohort.features.index[::-1]
    reordered = dataclasses.replace(cohort, patients=cohort.patients.loc[shuffled], features=cohort.features.loc[shuffled], outcomes=cohort.outcomes.loc[shuffled])
    with pytest.raises(InputError, match="in another order"):
        compare_models(reordered, runs, n_boot=10)
    with pytest.raises(InputError, match="reserved"):
        compare_models(cohort, {"observed": runs["noise"]}, n_boot=10)
    with pytest.raises(InputError, match="at least one"):
        compare_models(cohort, {}, n_boot=10)
    broken = runs["noise"].prediction_by_repeat.copy()
    broken.iloc[3, 1] = np.nan
    with pytest.raises(InputError, match="'broken' has 1 out-of-fold prediction missing or outside 0 to 1"):
        compare_models(cohort, {"noise": runs["noise"], "broken": dataclasses.replace(runs["noise"], prediction_by_repeat=broken)}, n_boot=10)


def test_tables_for_download(comparison):
    tables = comparison.to_csv_tables()
    assert set(tables) == {"scores", "metrics", "paired", "paired_per_fold", "decision_curves", "by_pattern", "oracle"}
    assert tables["scores"].columns[0] == "patient_id" and tables["oracle"].columns[0] == "model"
    assert list(tables["paired"].columns) == ["model", "reference", "metric", "mean", "ci_low", "ci_high", "p", "n_folds"]
    assert list(tables["by_pattern"].columns) == ["pattern", "model", "n", "n_responders", "auc", "ci_low", "ci_high", "note"]
    assert len(tables["decision_curves"]) == 4 * len(DECISION_THRESHOLDS)
    assert all(len(t.to_csv()) > 0 for t in tables.values())


def test_the_same_seed_gives_the_same_numbers(cohort, runs, comparison):
    again = compare_models(cohort, runs, n_boot=N_BOOT, seed=0)
    pd.testing.assert_frame_equal(again.metrics, comparison.metrics)
    pd.testing.assert_frame_equal(again.decision_curves, comparison.decision_curves)
    other = compare_models(cohort, runs, n_boot=N_BOOT, seed=1)
    assert not other.metrics["ci_low"].equals(comparison.metrics["ci_low"])
    pd.testing.assert_series_equal(other.metrics["estimate"], comparison.metrics["estimate"])
