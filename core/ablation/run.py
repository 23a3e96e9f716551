"""Modality ablation: what each data source (DTI, EMG, kinematics, clinical) adds to the prediction.

How a run works
---------------
1. Every non-empty subset of the cohort's modalities (2^k - 1 of them; 15 for four modalities) is
   fitted with the outcome's estimator (:func:`core.modelling.estimators.estimator_for`) on the **same** folds: one
   :meth:`core.modelling.validation.CohortSplitter.split` serves all subsets, so fold j of every subset has
   exactly the same training and test patients, and differences between subsets are paired.
2. Each (subset, fold) fit is scored on its test fold with every metric of the outcome
   (:data:`METRICS`), together with that fold's chance level. A run therefore does not depend on
   the metric: a page can switch metric without refitting, and the cache key
   (:func:`ablation_digest`) leaves the metric out.
3. The full model is refitted on label-permuted data ``n_permutations`` times (one repetition of
   K-fold each) for a permutation test against chance.

Everything else is derived from those per-fold scores by :class:`AblationResult`: the designs
(leave-one-modality-out, single modality, add-one-in-order, all subsets; they are all rows of the
same subset table, so nothing is fitted twice), paired differences with the corrected resampled
t-test, Holm-adjusted p-values, exact modality Shapley values and a cost/performance Pareto front.

Example
-------
>>> from core.ablation import AblationConfig, run_ablation
>>> result = run_ablation(cohort, AblationConfig(outcome="responder", n_repeats=1))  # doctest: +SKIP
>>> result.design("leave_one_out", metric="auc")      # forest plot: change in AUC with 95% CI
>>> result.subsets("auc")                             # lattice/heatmap of all subsets
>>> result.shapley("auc")                             # waterfall: sums to AUC(full) - 0.5
>>> result.permutation_test("auc")["p_value"]
>>> result.save(folder); AblationResult.load(folder)

Statistics
----------
Fold scores are not independent: folds share most of their training patients, so the plain
paired t-test over folds is far too optimistic. Every interval and p-value here uses the corrected
resampled t-test of Nadeau & Bengio (2003, Machine Learning 52:239): with J = n_splits x n_repeats
per-fold values d_j, ``var = (1/J + n_test/n_train) * s^2(d)`` and ``t = mean(d) / sqrt(var)``
with J - 1 degrees of freedom. It is a heuristic correction, still somewhat liberal or
conservative depending on the data; read p-values near 0.05 as inconclusive.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from core.ablation.config import ENGINE_VERSION, AblationConfig, ablation_digest
from core.ablation.result import PERMUTATION_KEYS, SCORE_KEYS, AblationCancelled, AblationResult, subset_label
from core.data.schema import OUTCOMES
from core.errors import InputError
from core.evaluation.metrics import binary_metrics, regression_metrics
from sklearn.base import is_classifier

from core.modelling.estimators import estimator_for
from core.modelling.validation import training_data
from core.modelling.validation import CohortSplitter


def _fold_scores(kind: str, y_train: np.ndarray, y_test: np.ndarray, prediction: np.ndarray) -> dict:
    """Every metric of one test fold plus its chance level (``chance_<metric>``)."""
    if kind == "binary":
        m = binary_metrics(y_test, prediction)
        base_rate = float(np.mean(y_train))
        return {
            "auc": m["auc"], "chance_auc": 0.5,
            "pr_auc": m["pr_auc"], "chance_pr_auc": m["prevalence"],
            "brier": m["brier"], "chance_brier": float(np.mean((y_test - base_rate) ** 2)),
        }
    m = regression_metrics(y_test, prediction)
    return {
        "r2": m["r2"], "chance_r2": 0.0,
        "mae": m["mae"], "chance_mae": float(np.mean(np.abs(y_test - np.median(y_train)))),
        "rmse": m["rmse"], "chance_rmse": float(np.sqrt(np.mean((y_test - np.mean(y_train)) ** 2))),
    }


@dataclass(frozen=True)
class _FitJob:
    """One model fit: a subset on a fold, or the full model on a fold of permutation ``key``."""

    kind: str  # "subset" or "permutation"
    key: object  # subset label or permutation number
    repeat: int
    fold: int
    columns: list
    train: np.ndarray
    test: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    outcome: str
    params: dict


def _fit_and_score(job: _FitJob) -> dict:
    model = estimator_for(job.outcome, **job.params)
    model.fit(job.X.iloc[job.train, job.columns], job.y[job.train])
    X_test = job.X.iloc[job.test, job.columns]
    prediction = model.predict_proba(X_test)[:, 1] if is_classifier(model) else model.predict(X_test)
    y_train, y_test = job.y[job.train], job.y[job.test]
    keys = {"subset": job.key, "repeat": job.repeat} if job.kind == "subset" else {"permutation": job.key}
    return {**keys, "fold": job.fold, "n_train": len(job.train), "n_test": len(job.test),
            "test_hash": positions_hash(job.test), **_fold_scores(OUTCOMES[job.outcome], y_train, y_test, prediction)}


def positions_hash(positions: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(positions, dtype=np.int64)).tobytes()).hexdigest()[:12]


def _check_cohort(cohort, outcome: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    modalities = list(cohort.modalities)
    if len(modalities) < 2:
        found = f"only {modalities[0]!r}" if modalities else "no feature columns"
        raise InputError(
            f"modality ablation compares modalities, so it needs features of at least two (e.g. dti.*, clin.*); this cohort has {found}.",
            source=cohort.name, field="features",
        )
    X, y = training_data(cohort, outcome)
    return X, y, modalities


def _workers(n_jobs: int) -> int:
    import joblib

    return max(1, joblib.cpu_count() + 1 + n_jobs if n_jobs < 0 else n_jobs)


def run_ablation(
    cohort,
    config: AblationConfig | None = None,
    *,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: AblationResult | None = None,
    chunk_size: int | None = None,
) -> AblationResult:
    """Fit every modality subset on shared folds (and the permuted full model) and score them.

    Parameters
    ----------
    cohort : :class:`core.data.Cohort` with features of at least two modalities.
    config : :class:`AblationConfig` (default: responder, 5 x 5 folds, 100 permutations).
    n_jobs : fits run side by side (-1: one per core), through :func:`core.parallel.parallel_map`
        with threads (xgboost releases the GIL while it trains), each fit on one xgboost thread;
        on a Dask cluster when ``NEUROPREDICT_DASK_SCHEDULER`` is set. ``n_jobs=1``: one fit at a
        time, in the caller's thread.
    progress : ``progress(done, total)``, called in the caller's thread after each fit (counts
        include fits restored from ``resume``).
    should_stop : checked between chunks of about ``chunk_size`` fits; when it returns True the
        run stops and raises :class:`AblationCancelled` holding the partial result.
    resume : a partial result (from :class:`AblationCancelled` or a saved one) of the same cohort
        and config; its fits are kept and only the missing ones are run.
    chunk_size : fits per chunk (default 8 per worker: a stop takes effect within about 8 fits'
        time, 1-2 s at 2,000 patients; on a Dask cluster at least a tenth of all fits).

    Returns
    -------
    AblationResult, complete.

    Raises
    ------
    InputError
        Fewer than two modalities, unusable features or outcome, too few patients for the folds,
        or a ``resume`` from another cohort or config.
    AblationCancelled
        ``should_stop()`` returned True; ``.partial`` holds the work done.
    """
    from core.parallel import DASK_ENV, parallel_map

    config = config or AblationConfig()
    X, y, modalities = _check_cohort(cohort, config.outcome)
    digest = ablation_digest(cohort, config)
    groups = cohort.groups
    folds = config.splitter().split(y, groups)  # one split for every subset: paired comparisons

    workers = _workers(n_jobs)
    # One xgboost thread per fit, always. These models are small (hundreds of trees of depth 3 on a
    # few thousand patients), so a second OpenMP thread saves little (about 15% on an idle 2-core
    # machine), and when the cores are busy (other fits, other users) OpenMP's spinning threads make a
    # fit up to 10x slower. Parallelism comes from running fits side by side instead.
    params = {**config.model_params, "n_jobs": 1}
    columns = {m: [X.columns.get_loc(c) for c in cohort.features_of(m)] for m in modalities}

    jobs = []
    for size in range(len(modalities), 0, -1):  # largest subsets first: the slowest fits start early
        for combo in itertools.combinations(modalities, size):
            label = subset_label(combo, modalities)
            cols = sorted(c for m in combo for c in columns[m])
            jobs += [_FitJob("subset", label, f.repeat, f.fold, cols, f.train, f.test, X, y, config.outcome, params) for f in folds]
    all_columns = list(range(X.shape[1]))
    one_repeat = CohortSplitter(config.n_splits, 1, config.seed, config.group_by_site)
    for p in range(config.n_permutations):
        y_permuted = np.random.default_rng([config.seed, 104_729, p]).permutation(y)
        for f in one_repeat.split(y_permuted, groups):  # folds built for the shuffled labels, as for the real ones
            jobs.append(_FitJob("permutation", p, 0, f.fold, all_columns, f.train, f.test, X, y_permuted, config.outcome, params))

    meta = {"n_patients": int(len(y)), "features": {m: cohort.features_of(m) for m in modalities},
            "scheme": config.splitter().scheme(groups), "cohort_digest": cohort.digest, "engine": ENGINE_VERSION}
    score_rows, permutation_rows = [], []
    if resume is not None:
        if resume.digest != digest:
            raise InputError("the run to resume belongs to another cohort or other settings; start a new run.", field="resume")
        score_rows = resume.scores.to_dict("records")
        permutation_rows = resume.permutation_scores.to_dict("records")
        done_keys = {("subset", r["subset"], int(r["repeat"]), int(r["fold"])) for r in score_rows}
        done_keys |= {("permutation", int(r["permutation"]), 0, int(r["fold"])) for r in permutation_rows}
        jobs = [j for j in jobs if (j.kind, j.key, j.repeat, j.fold) not in done_keys]

    def result() -> AblationResult:
        scores = pd.DataFrame(score_rows, columns=None if score_rows else SCORE_KEYS)
        permuted = pd.DataFrame(permutation_rows, columns=None if permutation_rows else PERMUTATION_KEYS)
        return AblationResult(config, modalities, scores.sort_values(SCORE_KEYS, ignore_index=True),
                              permuted.sort_values(PERMUTATION_KEYS, ignore_index=True) if len(permuted) else permuted, digest, meta)

    total = len(score_rows) + len(permutation_rows) + len(jobs)
    done = total - len(jobs)
    if not chunk_size:
        # Every chunk ends with a barrier (the last fit runs while other workers idle), and on Dask
        # each chunk reconnects to the scheduler: so chunks are as large as a prompt stop allows.
        chunk_size = 8 * workers if not os.environ.get(DASK_ENV) else max(8 * workers, math.ceil(len(jobs) / 10))
    for start in range(0, len(jobs), chunk_size):
        if should_stop is not None and should_stop():
            raise AblationCancelled(result())
        chunk = jobs[start : start + chunk_size]
        offset = done
        report = (lambda i, _n, offset=offset: progress(offset + i, total)) if progress else None
        for row in parallel_map(_fit_and_score, chunk, n_jobs=workers, prefer="threads", progress=report):
            (score_rows if "subset" in row else permutation_rows).append(row)
        done += len(chunk)
    return result()
