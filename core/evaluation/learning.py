"""Learning curves: how each model's out-of-fold AUC grows with the number of patients.

At each size N a stratified random subset of N patients (the same subset for every model, nested:
each smaller subset lies inside the larger ones) is cross-validated with the run's folds settings,
so the curves compare models on the same patients at every N.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pandas as pd

from core.errors import InputError
from core.evaluation.metrics import roc_auc_ci
from core.parallel import kept_or_computed

__all__ = ["LEARNING_CURVE_SIZES", "learning_curve", "learning_curve_key", "subsample", "disjoint_subsamples"]

LEARNING_CURVE_SIZES = (100, 250, 500, 1000, 2000)


def _stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
    """Row positions in a random order that keeps the class shares of ``y`` in every prefix (and every run of it)."""
    rng = np.random.default_rng(seed)
    # One random order per class, interleaved by rank within the class.
    rank = np.empty(len(y))
    for value in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == value))
        rank[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(rank, kind="stable")


def subsample(cohort, n_patients: int, seed: int = 0):
    """A cohort of ``n_patients`` of ``cohort``'s patients, stratified by the responder label.

    Nested: with the same seed, every smaller subsample lies inside every larger one.
    """
    if not 0 < n_patients <= cohort.n_patients:
        raise InputError(f"a subsample needs 1 to {cohort.n_patients} patients, found {n_patients}.", field="n_patients")
    chosen = np.sort(_stratified_order(cohort.outcomes["responder"].to_numpy(), seed)[:n_patients])
    return cohort.subset(cohort.patients.index[chosen], name=f"{cohort.name} ({n_patients} patients)")


def disjoint_subsamples(cohort, n_patients: int, count: int, seed: int = 0) -> list:
    """``count`` cohorts of ``n_patients`` each, no patient in two, each stratified by the responder label.

    Raises InputError when the cohort holds fewer than ``count * n_patients`` patients.
    """
    if not 0 < n_patients or count < 1 or count * n_patients > cohort.n_patients:
        raise InputError(f"{count} disjoint subsamples of {n_patients} patients need {count * n_patients} patients; "
                         f"the cohort has {cohort.n_patients}.", field="n_patients")
    order = _stratified_order(cohort.outcomes["responder"].to_numpy(), seed)
    return [cohort.subset(cohort.patients.index[np.sort(order[r * n_patients:(r + 1) * n_patients])],
                          name=f"{cohort.name} ({n_patients} patients, part {r + 1})") for r in range(count)]


def learning_curve_key(cohort, settings, models, sizes) -> str:
    """Storage key of a learning curve: the cohort's content, the run settings, the models and sizes."""
    spec = {"cohort": cohort.digest, "settings": settings.to_dict(), "models": list(models), "sizes": [int(s) for s in sizes]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def learning_curve(cohort, inputs, settings, models=("xgboost", "fusion", "stacked"), sizes=LEARNING_CURVE_SIZES, *, seed: int = 0,
                   runs: dict | None = None, progress=None, n_boot: int = 500, checkpoint=None) -> pd.DataFrame:
    """Out-of-fold AUC of each model at each cohort size, with bootstrap 95% CIs.

    Parameters
    ----------
    cohort, inputs : the cohort and its cached raw-data tensors (``Workspace.fusion_inputs``).
    settings : :class:`~core.modelling.validation.CVSettings`; its folds and model settings are used, its model is replaced by each of ``models``.
    sizes : patient counts; those above the cohort's size are skipped.
    runs : optional {model: CVResult} of the whole cohort with these settings, used at its full size instead of training again.
    progress : ``progress(done, total, label)`` after each model and size.
    checkpoint : :class:`~core.parallel.PieceCheckpoint` that keeps each size once all its
        models are done (piece ``n<N>``), so a stopped curve resumes with the sizes it finished.

    Returns
    -------
    DataFrame with columns n_patients, model, auc, ci_low, ci_high, oracle_auc (NaN without a ground truth).
    """
    sizes = [int(n) for n in sizes if int(n) <= cohort.n_patients]
    if not sizes:
        raise InputError(f"no learning-curve size fits the cohort's {cohort.n_patients} patients.", field="sizes")
    total = len(sizes) * len(models)
    pieces = []
    for number, n in enumerate(sizes):
        first = number * len(models)
        pieces.append(kept_or_computed(checkpoint, f"n{n}", lambda: {"rows": _learning_rows(cohort, inputs, settings, models, n, seed, runs, n_boot,
                                                                                             progress, first, total)})["rows"])
        if progress:
            progress(first + len(models), total, f"{models[-1]} on {n} patients")
    return pd.concat(pieces, ignore_index=True)


def _learning_rows(cohort, inputs, settings, models, n: int, seed: int, runs, n_boot: int, progress, first: int, total: int) -> pd.DataFrame:
    """:func:`learning_curve`'s rows of size ``n``; ``progress`` after each model but the last (``first``: steps before this size)."""
    part = cohort if n == cohort.n_patients else subsample(cohort, n, seed)
    part_inputs = inputs.reindex(list(part.patients.index))
    y = part.outcomes["responder"].to_numpy()
    oracle = roc_auc_ci(y, part.outcomes["true_response_probability"], n_boot=n_boot)[0] if "true_response_probability" in part.outcomes else np.nan
    rows, fusion_run = [], None
    for number, model in enumerate(models, start=1):
        result = (runs or {}).get(model) if n == cohort.n_patients else None
        if result is None:
            result = replace(settings, model=model).cross_validate(part, part_inputs, fusion_run=fusion_run if model == "stacked" else None, n_jobs=1)
        if model == "fusion":
            fusion_run = result
        auc, low, high = roc_auc_ci(y, result.prediction.to_numpy(), n_boot=n_boot)
        rows.append({"n_patients": n, "model": model, "auc": auc, "ci_low": low, "ci_high": high, "oracle_auc": oracle})
        if progress and number < len(models):  # the size's last step is reported once the size is kept
            progress(first + number, total, f"{model} on {n} patients")
    return pd.DataFrame(rows)
