"""How good is the prediction without the costly scan? The full model, the cheap-only model and the distilled
student (:class:`~core.modelling.transfer.DistilledStudent`) compared on the same folds at several cohort sizes.

At each size N the three models are cross-validated on the same nested, stratified subsample
(:func:`core.evaluation.learning.subsample`) and the same folds, and compared with
:func:`core.evaluation.comparison.compare_models`: pooled out-of-fold AUC with a bootstrap CI, and
each model minus the cheap-only model per fold with the corrected resampled t-test.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from core.errors import InputError
from core.evaluation.comparison import compare_models
from core.evaluation.learning import disjoint_subsamples, subsample
from core.evaluation.metrics import roc_auc_ci
from core.modelling.anyoutcome import signed_r
from core.modelling.estimators import ResponseClassifier
from core.modelling.transfer import CHEAP_MODALITIES_DEFAULT, SoftLabelClassifier, cheap_and_privileged, cross_validate_student
from core.modelling.validation import CohortSplitter, cross_validate, training_data
from core.parallel import kept_or_computed

__all__ = ["TRANSFER_CURVE_SIZES", "TRANSFER_MODELS", "BOUND_MODELS", "BOUND_PATIENTS", "BOUND_SUBSAMPLES", "CHEAP_LIMIT_REFERENCE", "transfer_runs", "transfer_curve",
           "cheap_bayes_limit", "distillation_bound", "distillation_bound_summary", "distillation_bound_sentence", "transfer_sentence", "transfer_key", "bound_key", "bound_patients"]

TRANSFER_CURVE_SIZES = (100, 200, 500, 1000, 2000)
# full: xgboost on every modality (DTI included; the teacher's design); cheap_only: xgboost on the cheap
# modalities; student: the distilled student, which reads the cheap modalities only at prediction.
TRANSFER_MODELS = ("full", "cheap_only", "student")
_COMPARED_WITH = "cheap_only"  # every paired difference is a model minus the cheap-only model
# distillation_bound's models: those of TRANSFER_MODELS, and the student's method taught by a perfect teacher
# (the true response probability) at the student's imitation and alone (imitation 1).
BOUND_MODELS = (*TRANSFER_MODELS, "oracle_taught", "oracle_taught_alone")
BOUND_PATIENTS = 200  # the cohort size the transfer bar is judged at
BOUND_SUBSAMPLES = 6
CHEAP_LIMIT_REFERENCE = 20_000  # patients of the independent cohort the cheap-only limit is trained on


def transfer_runs(cohort, cheap_modalities=CHEAP_MODALITIES_DEFAULT, *, n_splits: int = 5, seed: int = 0, student_params: dict | None = None,
                  n_jobs: int = -1) -> dict:
    """Out-of-fold results of the cheap-only, student and full models on ``cohort``, on the same folds.

    The folds are ``CohortSplitter(n_splits, n_repeats=1, seed).split(y, cohort.groups)``; every
    xgboost (each model's, and the student's inner teachers) is seeded with ``seed`` too.
    ``student_params``: further :class:`~core.modelling.transfer.DistilledStudent` parameters (e.g. ``imitation``).
    Returns ``{"cheap_only": CVResult, "student": CVResult, "full": CVResult}`` (the comparison's reference first).
    """
    cheap, _ = cheap_and_privileged(cohort.features.columns, cheap_modalities)
    splitter = CohortSplitter(n_splits=n_splits, n_repeats=1, seed=seed)
    xgboost_params = {"seed": seed}
    runs = {"cheap_only": cross_validate(cohort, "responder", features=cheap, splitter=splitter, params=xgboost_params, interactions=False, n_jobs=n_jobs)}
    runs["student"] = cross_validate_student(cohort, cheap_modalities, splitter=splitter, params={"seed": seed, **dict(student_params or {})}, n_jobs=n_jobs)
    runs["full"] = cross_validate(cohort, "responder", splitter=splitter, params=xgboost_params, interactions=False, n_jobs=n_jobs)
    return runs


def transfer_curve(cohort, sizes=TRANSFER_CURVE_SIZES, cheap_modalities=CHEAP_MODALITIES_DEFAULT, n_splits: int = 5, seed: int = 0, progress=None, *,
                   student_params: dict | None = None, n_boot: int = 1000, n_jobs: int = -1, checkpoint=None) -> pd.DataFrame:
    """AUC of the full, cheap-only and distilled-student models at each cohort size, on the same folds.

    Parameters
    ----------
    cohort : the cohort (responder outcome); its features name their modality.
    sizes : patient counts N; each must be at most the cohort's size. The subsample of each N is
        :func:`~core.evaluation.learning.subsample` with ``seed`` (nested: smaller inside larger);
        N equal to the cohort's size is the whole cohort.
    cheap_modalities : modalities the cheap-only model and the student read; the full model reads all.
    n_splits, seed : folds ``CohortSplitter(n_splits, n_repeats=1, seed)``, shared by the three models.
    progress : ``progress(done, total, label)`` after each size.
    student_params : further :class:`~core.modelling.transfer.DistilledStudent` parameters.
    n_boot : bootstrap resamples of the AUC intervals.
    checkpoint : :class:`~core.parallel.PieceCheckpoint` that keeps each finished size
        (piece ``n<N>``), so a stopped curve resumes with the sizes it finished.

    Returns
    -------
    DataFrame, one row per N x model (:data:`TRANSFER_MODELS` order): ``n_patients``, ``model``,
    ``auc`` (pooled out-of-fold), ``ci_low``, ``ci_high`` (95% stratified bootstrap),
    ``diff_vs_cheap_only`` (mean over folds of the model's AUC minus the cheap-only model's on the
    fold's test patients), ``diff_ci_low``, ``diff_ci_high``, ``diff_p`` (corrected resampled
    t-test; NaN on the cheap-only rows), ``n_folds`` and ``oracle_auc`` (AUC of the true response
    probabilities, NaN without a ground truth).
    """
    sizes = _checked_sizes(cohort, sizes)
    cheap_and_privileged(cohort.features.columns, cheap_modalities)  # a bad modality fails before any model is fitted
    pieces = []
    for done, n in enumerate(sizes, start=1):
        part = cohort if n == cohort.n_patients else subsample(cohort, n, seed)
        pieces.append(kept_or_computed(checkpoint, f"n{n}", lambda: {"rows": _transfer_rows(part, cheap_modalities, n_splits, seed, student_params, n_boot, n_jobs)})["rows"])
        if progress:
            progress(done, len(sizes), f"full, cheap-only and student models on {n} patients")
    return pd.concat(pieces, ignore_index=True)


def _transfer_rows(part, cheap_modalities, n_splits: int, seed: int, student_params, n_boot: int, n_jobs: int) -> pd.DataFrame:
    """:func:`transfer_curve`'s rows of one cohort size: the three models cross-validated on ``part``."""
    runs = transfer_runs(part, cheap_modalities, n_splits=n_splits, seed=seed, student_params=student_params, n_jobs=n_jobs)
    comparison = compare_models(part, runs, n_boot=n_boot, seed=seed)
    auc = comparison.metrics[comparison.metrics["metric"] == "auc"].set_index("model")
    paired = comparison.paired[comparison.paired["metric"] == "auc"].set_index("model")
    oracle = np.nan if comparison.oracle is None else float(comparison.oracle["oracle_auc"].iloc[0])
    rows = []
    for model in TRANSFER_MODELS:
        test = paired.loc[model] if model in paired.index else None
        rows.append({"n_patients": part.n_patients, "model": model, "auc": float(auc.at[model, "estimate"]), "ci_low": float(auc.at[model, "ci_low"]),
                     "ci_high": float(auc.at[model, "ci_high"]),
                     "diff_vs_cheap_only": np.nan if test is None else float(test["mean"]),
                     "diff_ci_low": np.nan if test is None else float(test["ci_low"]),
                     "diff_ci_high": np.nan if test is None else float(test["ci_high"]),
                     "diff_p": np.nan if test is None else float(test["p"]), "n_folds": len(runs[_COMPARED_WITH].folds), "oracle_auc": oracle})
    return pd.DataFrame(rows)


def _checked_sizes(cohort, sizes) -> list[int]:
    try:
        sizes = [int(n) for n in sizes]
    except (TypeError, ValueError) as exc:
        raise InputError(f"sizes must be whole numbers of patients, found {sizes!r}.", field="sizes") from exc
    if not sizes:
        raise InputError("no cohort size given; expected at least one number of patients.", field="sizes")
    too_large = [n for n in sizes if n > cohort.n_patients]
    if too_large:
        raise InputError(f"size(s) {too_large} exceed the cohort's {cohort.n_patients} patients; expected sizes of at most {cohort.n_patients}.",
                         field="sizes")
    return sizes


def cheap_bayes_limit(config, cheap_modalities=CHEAP_MODALITIES_DEFAULT, n_reference: int = CHEAP_LIMIT_REFERENCE, *, cohort=None, reference_seed: int | None = None,
                      n_boot: int = 1000, n_jobs: int = 1) -> dict:
    """A large-sample estimate of the best AUC a cheap-only model can reach on a synthetic cohort.

    xgboost is trained on the cheap features of an independent reference cohort of ``n_reference``
    patients (the same config, another seed) and scored on the evaluated cohort, so its AUC is what
    a cheap-only model approaches as training data grow. It is an estimate, not an exact Bayes
    limit: the boosted model may fall short of the best cheap-only function (an estimate from
    below), the evaluated cohort's finite size adds sampling noise (the CI), and the reference
    cohort's sites have their own site effects (drawn from its seed), so site-specific shifts the
    evaluated cohort's own models could learn are not in it. The same is done with every feature
    (``full_limit_*``), and the true probabilities give the oracle AUC, the ceiling of any model.

    Parameters
    ----------
    config : the :class:`~core.synth.config.CohortConfig` of the evaluated cohort.
    cheap_modalities : the modalities a cheap-only model reads.
    n_reference : patients in the reference cohort. Generating them dominates the time: about
        30 s for 20,000 on one busy core (1.5 ms per patient), the xgboost fits a few seconds more.
    cohort : the evaluated cohort, when already generated from ``config`` (else it is generated).
    reference_seed : the reference cohort's seed (default ``config.seed + 1000``); must differ from ``config.seed``.
    n_boot : bootstrap resamples of the AUC intervals (stratified, over the evaluated patients).
    n_jobs : processes of the generator.

    Returns
    -------
    dict: ``cheap_limit_auc``, ``cheap_limit_ci_low``, ``cheap_limit_ci_high``, ``full_limit_auc``,
    ``full_limit_ci_low``, ``full_limit_ci_high``, ``oracle_auc``, ``oracle_ci_low``, ``oracle_ci_high``,
    ``n_patients`` (evaluated), ``n_reference``, ``reference_seed``, ``cheap_features`` (list).
    """
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    if not isinstance(config, CohortConfig):
        raise InputError(f"expected a synthetic cohort config (CohortConfig), found {type(config).__name__}.", field="config")
    reference_seed = int(config.seed + 1000 if reference_seed is None else reference_seed)
    if reference_seed == config.seed:
        raise InputError(f"the reference cohort needs a seed other than the evaluated cohort's ({config.seed}), found {reference_seed}.",
                         field="reference_seed")
    if cohort is None:
        cohort = generate_cohort(config, n_jobs=n_jobs)
    elif (cohort.provenance or {}).get("config") != config.to_dict():
        raise InputError("the cohort was not generated from this config; expected the synthetic cohort of the config given.",
                         source=cohort.name, field="config")
    cheap, _ = cheap_and_privileged(cohort.features.columns, cheap_modalities)
    reference = generate_cohort(replace(config, name=f"{config.name} reference", n_patients=int(n_reference), seed=reference_seed), n_jobs=n_jobs)
    X_ref, y_ref = training_data(reference, "responder")
    X, y = training_data(cohort, "responder")
    out = {}
    for name, features in (("cheap_limit", cheap), ("full_limit", list(X.columns))):
        # Early stopping, not the cap, must end a large-sample fit: on 20,000 default-preset patients it stops at
        # about 550 (cheap) and 630 (all features) trees, past the estimator's default cap of 500.
        model = ResponseClassifier(n_estimators=3000, seed=config.seed).fit(X_ref[features], y_ref)
        auc, low, high = roc_auc_ci(y, model.predict_proba(X[features])[:, 1], n_boot=n_boot)
        out |= {f"{name}_auc": auc, f"{name}_ci_low": low, f"{name}_ci_high": high}
    if "true_response_probability" in cohort.outcomes:
        auc, low, high = roc_auc_ci(y, cohort.outcomes["true_response_probability"], n_boot=n_boot)
    else:
        auc = low = high = np.nan
    return out | {"oracle_auc": auc, "oracle_ci_low": low, "oracle_ci_high": high, "n_patients": cohort.n_patients, "n_reference": int(n_reference),
                  "reference_seed": reference_seed, "cheap_features": cheap}


def distillation_bound(cohort, n_patients: int = BOUND_PATIENTS, n_subsamples: int = BOUND_SUBSAMPLES, cheap_modalities=CHEAP_MODALITIES_DEFAULT, n_splits: int = 5, seed: int = 0,
                       progress=None, *, student_params: dict | None = None, n_jobs: int = -1, checkpoint=None) -> pd.DataFrame:
    """How much could distillation add at ``n_patients``? The student against students taught by a perfect teacher.

    On a synthetic cohort the true response probability is known. A student of the same kind as
    :class:`~core.modelling.transfer.DistilledStudent` (xgboost on the cheap features, soft labels)
    taught with it in place of the DTI teacher's nested probabilities shows the most any teacher
    could pass on: no teacher's probabilities are closer to the truth. Each of ``n_subsamples``
    stratified subsamples is cross-validated with :func:`transfer_runs` (fold seeds ``seed``,
    ``seed + 1``, ...) and the two oracle-taught students on the same folds, so one lucky or unlucky
    subsample does not decide the verdict. The subsamples share no patient when the cohort holds
    ``n_subsamples * n_patients`` (:func:`~core.evaluation.learning.disjoint_subsamples`), so
    the interval over them is an honest one; otherwise they are drawn with seeds ``seed``,
    ``seed + 1``, ... (:func:`~core.evaluation.learning.subsample`) and overlap. ``checkpoint``
    (:class:`~core.parallel.PieceCheckpoint`) keeps each finished subsample (piece
    ``subsample<r>``), so a stopped bound resumes with the subsamples it finished.

    Returns
    -------
    DataFrame, one row per subsample x model (:data:`BOUND_MODELS`): ``subsample``, ``seed``,
    ``n_patients``, ``disjoint`` (whether the subsamples share no patient), ``model``, ``auc`` (mean over folds of each fold's test AUC),
    ``diff_vs_cheap_only`` (mean over folds of the model's fold AUC minus the cheap-only model's),
    ``target_truth_r`` (Pearson r between what the model was trained on, the labels or the soft
    targets, and the training patients' true probabilities; mean over folds) and ``teacher_truth_r``
    (the same for the teacher alone: the DTI teacher's nested probabilities on the student's row, 1
    for a perfect teacher, NaN for the models without one). A teacher helps only where its
    probabilities are closer to the truth than the labels are.
    Summarise with :func:`distillation_bound_summary`. Raises InputError without true probabilities.
    """
    if "true_response_probability" not in cohort.outcomes:
        raise InputError("the bound needs each patient's true response probability, which only a synthetic cohort has; found an uploaded cohort.",
                         source=cohort.name, field="true_response_probability")
    if isinstance(n_subsamples, bool) or not isinstance(n_subsamples, (int, np.integer)) or n_subsamples < 2:
        raise InputError(f"n_subsamples must be a whole number of at least 2 (its spread is the interval), found {n_subsamples!r}.", field="n_subsamples")
    (n_patients,) = _checked_sizes(cohort, (n_patients,))
    cheap, _ = cheap_and_privileged(cohort.features.columns, cheap_modalities)
    disjoint = int(n_subsamples) * n_patients <= cohort.n_patients
    parts = disjoint_subsamples(cohort, n_patients, int(n_subsamples), seed) if disjoint else None
    pieces = []
    for r in range(int(n_subsamples)):
        part = parts[r] if disjoint else subsample(cohort, n_patients, seed + r)
        pieces.append(kept_or_computed(checkpoint, f"subsample{r}", lambda: {"rows": _bound_rows(part, r, seed + r, disjoint, cheap, cheap_modalities, n_splits,
                                                                                                  student_params, n_jobs)})["rows"])
        if progress:
            progress(r + 1, int(n_subsamples), f"subsample {r + 1} of {n_subsamples}: {n_patients} patients")
    return pd.concat(pieces, ignore_index=True)


def _bound_rows(part, r: int, part_seed: int, disjoint: bool, cheap: list, cheap_modalities, n_splits: int, student_params, n_jobs: int) -> pd.DataFrame:
    """:func:`distillation_bound`'s rows of subsample ``r`` (``part``, folds and models seeded ``part_seed``)."""
    from sklearn.metrics import roc_auc_score

    imitation = float(dict(student_params or {}).get("imitation", 0.5))
    runs = transfer_runs(part, cheap_modalities, n_splits=n_splits, seed=part_seed, student_params=student_params, n_jobs=n_jobs)
    X, y = training_data(part, "responder")
    truth = part.outcomes.loc[X.index, "true_response_probability"].to_numpy(dtype=float)
    fold_auc = {model: [] for model in BOUND_MODELS}
    target_r = {model: [] for model in BOUND_MODELS}
    teacher_r = []
    for fold, teacher in zip(runs[_COMPARED_WITH].folds, runs["student"].fold_models):
        labels, fold_truth = y[fold.train].astype(float), truth[fold.train]
        for model in TRANSFER_MODELS:
            fold_auc[model].append(roc_auc_score(y[fold.test], runs[model].prediction.to_numpy()[fold.test]))
        student_target = imitation * teacher.teacher_probability_ + (1.0 - imitation) * labels
        for model, target in (("cheap_only", labels), ("full", labels), ("student", student_target)):
            target_r[model].append(signed_r(fold_truth, target))
        teacher_r.append(signed_r(fold_truth, teacher.teacher_probability_))
        for model, weight in (("oracle_taught", imitation), ("oracle_taught_alone", 1.0)):
            target = weight * fold_truth + (1.0 - weight) * labels
            target_r[model].append(signed_r(fold_truth, target))
            student = SoftLabelClassifier(seed=part_seed).fit(X.iloc[fold.train][cheap], y[fold.train], soft_target=target)
            fold_auc[model].append(roc_auc_score(y[fold.test], student.predict_proba(X.iloc[fold.test][cheap])[:, 1]))
    reference = np.asarray(fold_auc[_COMPARED_WITH])
    teachers = {"student": float(np.mean(teacher_r)), "oracle_taught": 1.0, "oracle_taught_alone": 1.0}
    rows = []
    for model in BOUND_MODELS:
        rows.append({"subsample": r, "seed": part_seed, "n_patients": part.n_patients, "disjoint": disjoint, "model": model, "auc": float(np.mean(fold_auc[model])),
                     "diff_vs_cheap_only": float(np.mean(np.asarray(fold_auc[model]) - reference)),
                     "target_truth_r": float(np.mean(target_r[model])), "teacher_truth_r": teachers.get(model, np.nan)})
    return pd.DataFrame(rows)


def distillation_bound_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over subsamples of each model's AUC and difference from the cheap-only model, with a t interval.

    The interval treats the subsamples as independent: they are when disjoint (see
    :func:`distillation_bound`); when they overlap, it is too narrow.
    Returns one row per model: ``auc``, ``diff_vs_cheap_only``, ``diff_sd``, ``diff_ci_low``,
    ``diff_ci_high``, ``n_subsamples``, the means of ``target_truth_r`` and ``teacher_truth_r``, and ``disjoint``.
    """
    from scipy import stats

    rows = []
    for model, part in table.groupby("model", sort=False):
        diff = part["diff_vs_cheap_only"].to_numpy(dtype=float)
        n = len(diff)
        sd = float(np.std(diff, ddof=1)) if n > 1 else np.nan
        half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else np.nan
        rows.append({"model": model, "auc": float(part["auc"].mean()), "diff_vs_cheap_only": float(diff.mean()), "diff_sd": sd,
                     "diff_ci_low": float(diff.mean() - half), "diff_ci_high": float(diff.mean() + half), "n_subsamples": n,
                     **{k: float(part[k].mean()) for k in ("target_truth_r", "teacher_truth_r") if k in part},
                     **({"disjoint": bool(part["disjoint"].all())} if "disjoint" in part else {})})
    return pd.DataFrame(rows).set_index("model")


def distillation_bound_sentence(summary: pd.DataFrame) -> str:
    """One plain sentence on :func:`distillation_bound_summary`: what the DTI-taught student gains over the
    cheap-only model, beside what a perfect teacher's student gains (the most distillation could add)."""
    needed = {"diff_vs_cheap_only", "diff_ci_low", "diff_ci_high", "n_subsamples"}
    if not isinstance(summary, pd.DataFrame) or needed - set(summary.columns) or not {"student", "oracle_taught_alone"} <= set(summary.index):
        found = sorted(summary.columns) if isinstance(summary, pd.DataFrame) else type(summary).__name__
        raise InputError(f"expected a distillation_bound_summary table with columns {sorted(needed)} and rows student and oracle_taught_alone, "
                         f"found {found}.", field="table")

    def gain(model: str) -> str:
        row = summary.loc[model]
        return f"{row['diff_vs_cheap_only']:+.3f} AUC (95% CI {row['diff_ci_low']:+.3f} to {row['diff_ci_high']:+.3f})"

    student, bound = summary.loc["student"], summary.loc["oracle_taught_alone"]
    if bound["diff_ci_high"] <= 0:
        reach = "so on this cohort even a perfect teacher gives the student nothing to gain"
    elif student["diff_ci_low"] > 0:
        reach = "and its interval excludes zero"
    else:
        share = student["diff_vs_cheap_only"] / bound["diff_vs_cheap_only"] if bound["diff_vs_cheap_only"] > 0 else np.nan
        part = f"about {max(share, 0.0):.0%} of what a perfect teacher passes on" if np.isfinite(share) else "not measurably more"
        reach = f"{part}: the limit is the teacher, which learns from the same few labels, not the student's method"
    sentence = (f"Over {int(student['n_subsamples'])} subsamples, the student taught by the true response probabilities (a perfect teacher) "
                f"gains {gain('oracle_taught_alone')} over the cheap-only model; the student taught by the DTI model gains {gain('student')}, {reach}.")
    if {"teacher_truth_r", "target_truth_r"} <= set(summary.columns) and "cheap_only" in summary.index:
        teacher_r, label_r = summary.at["student", "teacher_truth_r"], summary.at["cheap_only", "target_truth_r"]
        closer = "further from" if teacher_r < label_r else "closer to"
        sentence += (f" The DTI teacher's probabilities for the training patients correlate with the true ones at r = {teacher_r:.2f}, "
                     f"the 0/1 labels at r = {label_r:.2f}: the teacher is {closer} the truth than the labels it learnt from, and the "
                     f"student's mixed targets reach r = {summary.at['student', 'target_truth_r']:.2f} (a perfect teacher's: 1).")
    return sentence


def _p_words(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def transfer_sentence(table: pd.DataFrame, n_small: int = 200) -> str:
    """One plain sentence on what :func:`transfer_curve` found: does the student beat the cheap-only model?

    Reads the student's paired difference at ``n_small`` patients (or the smallest size in the table)
    and at the largest size, and says whether its 95% CI excludes zero. Worded for the default split,
    where DTI is the one modality the student does without.
    """
    needed = {"n_patients", "model", "auc", "diff_vs_cheap_only", "diff_ci_low", "diff_ci_high", "diff_p"}
    if not isinstance(table, pd.DataFrame) or needed - set(table.columns):
        found = sorted(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise InputError(f"expected a transfer_curve table with columns {sorted(needed)}, found {found}.", field="table")
    sizes = sorted(table["n_patients"].unique())
    if not sizes:
        raise InputError("the transfer table is empty; run transfer_curve first.", field="table")
    small = n_small if n_small in sizes else sizes[0]
    large = sizes[-1]
    rows = table.set_index(["n_patients", "model"])

    def difference(n) -> str:
        s = rows.loc[(n, "student")]
        return (f"{s['diff_vs_cheap_only']:+.3f} AUC (95% CI {s['diff_ci_low']:+.3f} to {s['diff_ci_high']:+.3f}, "
                f"p {_p_words(s['diff_p'])})")

    s = rows.loc[(small, "student")]
    if s["diff_ci_low"] > 0:
        verdict = "so distilling from the DTI teacher helps"
    elif s["diff_ci_high"] < 0:
        verdict = "so distilling from the DTI teacher makes the student worse"
    else:
        verdict = "so the data do not show that distilling from the DTI teacher helps"
    sentence = (f"At {small} patients the distilled student, which needs no DTI at prediction, reached AUC {s['auc']:.3f} against "
                f"{rows.loc[(small, 'cheap_only'), 'auc']:.3f} for the cheap-only model, a paired difference of {difference(small)}, {verdict}")
    if large != small:
        sentence += (f"; at {large} patients the difference was {difference(large)}, with the full model that reads DTI at "
                     f"{rows.loc[(large, 'full'), 'auc']:.3f} and the cheap-only model at {rows.loc[(large, 'cheap_only'), 'auc']:.3f}")
    return sentence + "."


def _key(*parts) -> str:
    import hashlib

    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def transfer_key(cohort, cheap_modalities=CHEAP_MODALITIES_DEFAULT, sizes=TRANSFER_CURVE_SIZES, n_splits: int = 5, seed: int = 0) -> str:
    """16 hex digits naming a transfer curve of this cohort with these settings (its workspace key)."""
    return _key(cohort.digest, sorted(cheap_modalities), list(sizes), n_splits, seed, "transfer-1")


def bound_key(cohort, cheap_modalities=CHEAP_MODALITIES_DEFAULT, n_patients: int | None = None, n_subsamples: int = BOUND_SUBSAMPLES,
              n_splits: int = 5, seed: int = 0) -> str:
    """16 hex digits naming a :func:`distillation_bound` of this cohort with these settings (its workspace key);
    ``n_patients`` defaults to :func:`bound_patients`."""
    n_patients = bound_patients(cohort) if n_patients is None else n_patients
    return _key(cohort.digest, sorted(cheap_modalities), n_patients, n_subsamples, n_splits, seed, "bound-3")


def bound_patients(cohort) -> int:
    """The size the page's and the CLI's bound is measured at: ``BOUND_PATIENTS``, or the whole cohort when smaller."""
    return min(BOUND_PATIENTS, cohort.n_patients)
