"""core.modelling.transfer and core.evaluation.transfer: the distilled cheap-modality student, compared on shared folds."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import InputError
from core.evaluation.metrics import roc_auc
from core.evaluation.stats import corrected_resampled_ttest
from core.evaluation.transfer import (
    BOUND_MODELS,
    TRANSFER_MODELS,
    cheap_bayes_limit,
    distillation_bound,
    distillation_bound_sentence,
    distillation_bound_summary,
    transfer_curve,
    transfer_runs,
    transfer_sentence,
)
from core.modelling.estimators import ResponseClassifier
from core.modelling.transfer import CHEAP_MODALITIES_DEFAULT, DistilledStudent, cheap_and_privileged
from core.modelling.validation import CohortSplitter

N_TRAIN = 240  # the first patients of the 300-patient cohort train; the other 60 are new patients


@pytest.fixture(scope="module")
def data(small_cohort):
    X = small_cohort.features
    y = small_cohort.outcomes["responder"].astype(int).to_numpy()
    groups = small_cohort.groups.to_numpy()
    return X, y, groups


@pytest.fixture(scope="module")
def fitted(data):
    X, y, groups = data
    return DistilledStudent(inner_splits=3).fit(X.iloc[:N_TRAIN], y[:N_TRAIN], groups=groups[:N_TRAIN])


@pytest.fixture(scope="module")
def runs(small_cohort):
    return transfer_runs(small_cohort, n_splits=3, n_jobs=1)


def _dti(X):
    return [c for c in X.columns if c.startswith("dti.")]


def test_each_training_patient_is_taught_by_a_teacher_that_never_saw_them(data, fitted):
    X, y, groups = data
    X_train, y_train = X.iloc[:N_TRAIN], y[:N_TRAIN]
    inner = CohortSplitter(n_splits=3, n_repeats=1, seed=0).split(y_train, groups[:N_TRAIN])
    assert [f.test.tolist() for f in fitted.inner_folds_] == [f.test.tolist() for f in inner]
    assert np.array_equal(np.sort(np.concatenate([f.test for f in inner])), np.arange(N_TRAIN))  # every training patient gets one soft label
    for fold in inner:
        assert not set(fold.train) & set(fold.test)
        teacher = ResponseClassifier(seed=0).fit(X_train.iloc[fold.train], y_train[fold.train])  # the teacher reads DTI too
        np.testing.assert_allclose(fitted.teacher_probability_[fold.test], teacher.predict_proba(X_train.iloc[fold.test])[:, 1], rtol=0, atol=1e-7)
    # The check has power: a teacher fitted on the patients themselves gives other soft labels, which flatter it.
    seen = ResponseClassifier(seed=0).fit(X_train, y_train).predict_proba(X_train)[:, 1]
    assert np.abs(seen - fitted.teacher_probability_).mean() > 0.02
    assert roc_auc(y_train, seen) > roc_auc(y_train, fitted.teacher_probability_) + 0.02


def test_the_student_never_reads_dti(data, fitted):
    X, _, _ = data
    new = X.iloc[N_TRAIN:]
    dti = _dti(X)
    expected = fitted.predict_proba(new)
    assert not any(c.startswith("dti.") for c in fitted.feature_names_in_)
    assert list(fitted.privileged_features_) == dti
    rng = np.random.default_rng(0)
    variants = {
        "no DTI": new.assign(**{c: np.nan for c in dti}),
        "garbage DTI": new.assign(**{c: rng.normal(0, 1e6, len(new)) for c in dti}),
        "DTI as text": new.assign(**{c: "not scanned" for c in dti}),
        "DTI columns absent": new.drop(columns=dti),
    }
    for name, table in variants.items():
        np.testing.assert_array_equal(fitted.predict_proba(table), expected, err_msg=name)
    explanation = fitted.explain(new.drop(columns=dti))
    assert explanation.values.shape == (len(new), len(fitted.feature_names_in_))
    np.testing.assert_allclose(explanation.values.sum(1) + explanation.base_values, fitted.predict_margin(new), atol=1e-5)


def test_without_imitation_the_student_is_the_cheap_only_model(data, fitted):
    X, y, groups = data
    cheap, _ = cheap_and_privileged(X.columns, CHEAP_MODALITIES_DEFAULT)
    plain = DistilledStudent(inner_splits=3, imitation=0.0).fit(X.iloc[:N_TRAIN], y[:N_TRAIN], groups=groups[:N_TRAIN])
    cheap_only = ResponseClassifier(seed=0).fit(X.iloc[:N_TRAIN][cheap], y[:N_TRAIN])
    new = X.iloc[N_TRAIN:]
    np.testing.assert_allclose(plain.predict_proba(new), cheap_only.predict_proba(new[cheap]), atol=1e-7)
    # With imitation the teacher's probabilities change the student: the distillation is the only difference.
    assert np.abs(fitted.predict_proba(new)[:, 1] - plain.predict_proba(new)[:, 1]).mean() > 0.01


def test_the_same_seed_gives_the_same_student(data, fitted):
    X, y, groups = data
    again = DistilledStudent(inner_splits=3).fit(X.iloc[:N_TRAIN], y[:N_TRAIN], groups=groups[:N_TRAIN])
    new = X.iloc[N_TRAIN:]
    np.testing.assert_array_equal(again.teacher_probability_, fitted.teacher_probability_)
    np.testing.assert_array_equal(again.predict_proba(new), fitted.predict_proba(new))
    other = DistilledStudent(inner_splits=3, seed=1).fit(X.iloc[:N_TRAIN], y[:N_TRAIN], groups=groups[:N_TRAIN])
    assert not np.array_equal(other.predict_proba(new), fitted.predict_proba(new))


def test_full_cheap_and_student_are_scored_on_the_same_folds(small_cohort, data, runs):
    X, y, groups = data
    assert list(runs) == ["cheap_only", "student", "full"]
    expected = [(f.fold, f.train.tolist(), f.test.tolist()) for f in CohortSplitter(3, n_repeats=1, seed=0).split(y, small_cohort.groups)]
    for name, run in runs.items():
        assert [(f.fold, f.train.tolist(), f.test.tolist()) for f in run.folds] == expected, name
    assert runs["student"].features == cheap_and_privileged(X.columns)[0]
    assert runs["full"].features == list(X.columns)
    # A student's out-of-fold prediction is that of a student fitted on its training fold alone (teachers included).
    fold = runs["student"].folds[0]
    alone = DistilledStudent().fit(X.iloc[fold.train], y[fold.train], groups=groups[fold.train])
    np.testing.assert_allclose(runs["student"].prediction.to_numpy()[fold.test], alone.predict_proba(X.iloc[fold.test])[:, 1], atol=1e-6)


def test_transfer_curve_scores_each_size_with_paired_differences(small_cohort, data, runs):
    _, y, _ = data
    table = transfer_curve(small_cohort, sizes=(150, small_cohort.n_patients), n_splits=3, n_boot=200, n_jobs=1)
    assert table["n_patients"].tolist() == [150] * 3 + [300] * 3
    assert table["model"].tolist() == list(TRANSFER_MODELS) * 2
    assert (table["ci_low"] <= table["auc"]).all() and (table["auc"] <= table["ci_high"]).all()
    assert table.loc[table["model"] == "cheap_only", "diff_vs_cheap_only"].isna().all()
    whole = table[table["n_patients"] == 300].set_index("model")
    for name in TRANSFER_MODELS:  # the whole cohort is the runs' cohort: the same figures
        assert whole.at[name, "auc"] == pytest.approx(roc_auc(y, runs[name].prediction))
    folds = runs["cheap_only"].folds
    per_fold = [roc_auc(y[f.test], runs["student"].prediction.to_numpy()[f.test]) - roc_auc(y[f.test], runs["cheap_only"].prediction.to_numpy()[f.test])
                for f in folds]
    test = corrected_resampled_ttest(per_fold, np.mean([len(f.train) for f in folds]), np.mean([len(f.test) for f in folds]))
    assert whole.at["student", "diff_vs_cheap_only"] == pytest.approx(test["mean"])
    assert (whole.at["student", "diff_ci_low"], whole.at["student", "diff_ci_high"], whole.at["student", "diff_p"]) == pytest.approx(
        (test["ci_low"], test["ci_high"], test["p"]))
    assert whole.at["full", "oracle_auc"] == pytest.approx(roc_auc(y, small_cohort.outcomes["true_response_probability"]))
    # DTI carries signal in this cohort: the full model beats the cheap-only one on the whole cohort.
    assert whole.at["full", "auc"] > whole.at["cheap_only", "auc"] + 0.05


def test_the_sentence_says_whether_the_student_beats_the_cheap_only_model():
    def table(low_200):
        rows = []
        for n, diff, low, high, p in ((200, 0.03, low_200, 0.05, 0.01), (2000, 0.004, -0.002, 0.010, 0.2)):
            rows += [{"n_patients": n, "model": "full", "auc": 0.85, "diff_vs_cheap_only": 0.06, "diff_ci_low": 0.03, "diff_ci_high": 0.09, "diff_p": 0.0001},
                     {"n_patients": n, "model": "cheap_only", "auc": 0.70, "diff_vs_cheap_only": np.nan, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
                      "diff_p": np.nan},
                     {"n_patients": n, "model": "student", "auc": 0.73, "diff_vs_cheap_only": diff, "diff_ci_low": low, "diff_ci_high": high, "diff_p": p}]
        return pd.DataFrame(rows)

    assert transfer_sentence(table(0.01)) == (
        "At 200 patients the distilled student, which needs no DTI at prediction, reached AUC 0.730 against 0.700 for the cheap-only model, "
        "a paired difference of +0.030 AUC (95% CI +0.010 to +0.050, p = 0.010), so distilling from the DTI teacher helps; at 2000 patients the "
        "difference was +0.004 AUC (95% CI -0.002 to +0.010, p = 0.200), with the full model that reads DTI at 0.850 and the cheap-only model at 0.700.")
    assert "so the data do not show that distilling from the DTI teacher helps;" in transfer_sentence(table(-0.01))


def test_the_cheap_only_limit_lies_below_the_full_limit_and_the_oracle(small_config, small_cohort):
    limit = cheap_bayes_limit(small_config, n_reference=1500, cohort=small_cohort, n_boot=200)
    assert limit["reference_seed"] == small_config.seed + 1000 and limit["n_reference"] == 1500 and limit["n_patients"] == 300
    assert not any(c.startswith("dti.") for c in limit["cheap_features"])
    assert limit["cheap_limit_ci_low"] <= limit["cheap_limit_auc"] <= limit["cheap_limit_ci_high"]
    # DTI's planted term (CST integrity) is out of the cheap models' reach.
    assert limit["cheap_limit_auc"] + 0.03 < limit["full_limit_auc"] < limit["oracle_auc"]
    assert limit["oracle_auc"] == pytest.approx(roc_auc(small_cohort.outcomes["responder"], small_cohort.outcomes["true_response_probability"]))


def test_a_perfect_teacher_helps_the_student_and_bounds_what_distillation_can_add(small_cohort):
    """Taught by the true probabilities, the student must beat the cheap-only model on each subsample:
    no teacher passes on more, so this is the most distillation could add at that size."""
    table = distillation_bound(small_cohort, n_patients=200, n_subsamples=2, n_jobs=1)
    assert list(table["model"].unique()) == list(BOUND_MODELS) and table["subsample"].nunique() == 2
    assert not table["disjoint"].any()  # 2 x 200 of 300 patients: they overlap, and the summary says so
    diff = table.pivot(index="subsample", columns="model", values="diff_vs_cheap_only")
    assert (diff["cheap_only"] == 0).all()
    assert (diff["oracle_taught_alone"] > 0.02).all() and (diff["full"] > 0.03).all()  # planted: DTI carries signal, and knowing the truth helps
    summary = distillation_bound_summary(table)
    assert not summary["disjoint"].any()
    alone = diff["oracle_taught_alone"].to_numpy()
    half = stats.t.ppf(0.975, 1) * alone.std(ddof=1) / np.sqrt(2)
    assert summary.loc["oracle_taught_alone", "diff_ci_low"] == pytest.approx(alone.mean() - half)
    assert summary.loc["oracle_taught_alone", "diff_vs_cheap_only"] == pytest.approx(alone.mean())
    # How close each model's training targets are to the truth: a perfect teacher's are the truth, the labels are
    # what cheap-only and full learn from, and mixing the truth into the labels moves them closer.
    r = summary["target_truth_r"]
    assert r["oracle_taught_alone"] == pytest.approx(1.0) and r["cheap_only"] == pytest.approx(r["full"])
    assert r["cheap_only"] < r["oracle_taught"] < 1.0 and 0.3 < r["cheap_only"]
    teacher = summary["teacher_truth_r"]
    assert np.isnan(teacher["cheap_only"]) and teacher["oracle_taught"] == 1.0 and 0.3 < teacher["student"] < 1.0


def _bound_summary(student: tuple, alone: tuple) -> pd.DataFrame:
    rows = {"student": student, "oracle_taught_alone": alone}
    return pd.DataFrame([{"model": m, "diff_vs_cheap_only": v[0], "diff_ci_low": v[1], "diff_ci_high": v[2], "n_subsamples": 6} for m, v in rows.items()]).set_index("model")


def test_the_bound_sentence_says_what_share_of_the_reachable_gain_the_student_gets():
    opening = "Over 6 subsamples, the student taught by the true response probabilities (a perfect teacher) gains +0.028 AUC (95% CI +0.014 to +0.041) over the cheap-only model; "
    assert distillation_bound_sentence(_bound_summary((0.007, -0.004, 0.018), (0.028, 0.014, 0.041))) == opening + (
        "the student taught by the DTI model gains +0.007 AUC (95% CI -0.004 to +0.018), about 25% of what a perfect teacher passes on: "
        "the limit is the teacher, which learns from the same few labels, not the student's method.")
    assert distillation_bound_sentence(_bound_summary((0.02, 0.005, 0.035), (0.028, 0.014, 0.041))).endswith(
        "gains +0.020 AUC (95% CI +0.005 to +0.035), and its interval excludes zero.")
    assert distillation_bound_sentence(_bound_summary((-0.01, -0.02, 0.0), (-0.004, -0.01, -0.001))).endswith(
        "so on this cohort even a perfect teacher gives the student nothing to gain.")
    with_r = pd.concat([_bound_summary((0.007, -0.004, 0.018), (0.028, 0.014, 0.041)).assign(teacher_truth_r=[0.73, 1.0], target_truth_r=[0.85, 1.0]),
                        pd.DataFrame({"diff_vs_cheap_only": [0.0], "teacher_truth_r": [np.nan], "target_truth_r": [0.83]}, index=pd.Index(["cheap_only"], name="model"))])
    assert distillation_bound_sentence(with_r).endswith(
        "the limit is the teacher, which learns from the same few labels, not the student's method. The DTI teacher's probabilities for the "
        "training patients correlate with the true ones at r = 0.73, the 0/1 labels at r = 0.83: the teacher is further from the truth than the labels it learnt from, "
        "and the student's mixed targets reach r = 0.85 (a perfect teacher's: 1).")
    assert _message(lambda: distillation_bound_sentence(_bound_summary((0, 0, 0), (0, 0, 0)).drop(index="student"))).startswith(
        "[table] expected a distillation_bound_summary table with columns")


def _message(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return str(caught.value)


def test_bad_input_is_named(small_config, small_cohort, data, fitted):
    X, y, _ = data
    dti_and_clin = X[[c for c in X.columns if c.startswith(("dti.", "clin."))]]
    assert _message(lambda: DistilledStudent(cheap_modalities=("clin", "mri")).fit(X, y)) == (
        "[cheap_modalities] unknown modality name(s) ['mri']; expected some of ['dti', 'emg', 'kin', 'clin'].")
    assert _message(lambda: DistilledStudent(cheap_modalities="kin").fit(dti_and_clin, y)) == (
        "[cheap_modalities] no feature of the cheap modalities ['kin']; found features of ['clin', 'dti'] only.")
    assert _message(lambda: DistilledStudent(cheap_modalities=("dti", "emg", "kin", "clin")).fit(X, y)) == (
        "[cheap_modalities] every feature belongs to a cheap modality ['dti', 'emg', 'kin', 'clin']; the teacher needs a costly modality "
        "(e.g. dti) that the student does without.")
    assert _message(lambda: DistilledStudent(imitation=1.5).fit(X, y)) == "[imitation] imitation must be a number from 0 to 1, found 1.5."
    assert _message(lambda: fitted.predict_proba(X.drop(columns=["clin.age"]))) == "feature column(s) ['clin.age'] the model was trained on are missing."
    assert _message(lambda: transfer_curve(small_cohort, sizes=(100, 500, 1000))) == (
        "[sizes] size(s) [500, 1000] exceed the cohort's 300 patients; expected sizes of at most 300.")
    assert _message(lambda: transfer_curve(small_cohort, sizes=(100,), cheap_modalities=("eeg",))) == (
        "[cheap_modalities] unknown modality name(s) ['eeg']; expected some of ['dti', 'emg', 'kin', 'clin'].")
    assert _message(lambda: cheap_bayes_limit(small_config, reference_seed=small_config.seed, cohort=small_cohort)) == (
        "[reference_seed] the reference cohort needs a seed other than the evaluated cohort's (7), found 7.")
    assert _message(lambda: cheap_bayes_limit(small_config.__class__(n_patients=300, seed=8), cohort=small_cohort)) == (
        "small: [config] the cohort was not generated from this config; expected the synthetic cohort of the config given.")
    upload_like = small_cohort.subset(small_cohort.patients.index, name="upload-like")
    upload_like.outcomes = upload_like.outcomes.drop(columns=["true_response_probability"])
    assert _message(lambda: distillation_bound(upload_like, n_patients=100)) == (
        "upload-like: [true_response_probability] the bound needs each patient's true response probability, which only a synthetic cohort has; "
        "found an uploaded cohort.")
    assert _message(lambda: distillation_bound(small_cohort, n_patients=100, n_subsamples=1)) == (
        "[n_subsamples] n_subsamples must be a whole number of at least 2 (its spread is the interval), found 1.")
