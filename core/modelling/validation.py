"""Honest cross-validation: shared folds, out-of-fold predictions and out-of-fold SHAP values.

Every patient is predicted and explained only by models that never saw them. The splitter is one
reusable object, so the response model, the baselines and modality ablation all see the same folds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from core.data.schema import OUTCOMES
from core.errors import InputError
from core.modelling.estimators import ResponseModel, check_features, check_outcome


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray  # row positions
    test: np.ndarray


@dataclass(frozen=True)
class CohortSplitter:
    """Repeated stratified K-fold, grouped by site when the cohort has enough sites.

    Parameters
    ----------
    n_splits, n_repeats : K and the number of repetitions (default 5 x 5).
    seed : every repetition reshuffles from ``seed + repeat``.
    group_by_site : "auto" groups folds by site (no site in both training and test) when there
        are at least ``n_splits`` sites, and otherwise stratifies by site x outcome so every fold
        holds every site in proportion; "never" ignores sites.
    """

    n_splits: int = 5
    n_repeats: int = 5
    seed: int = 0
    group_by_site: str = "auto"

    def scheme(self, groups) -> str:
        """Which scheme :meth:`split` uses for these groups, in words for the page."""
        n_groups = 0 if groups is None else len(pd.unique(np.asarray(groups)))
        base = f"{self.n_repeats} x {self.n_splits}-fold cross-validation"
        if self.group_by_site == "auto" and n_groups >= self.n_splits:
            return f"{base}, grouped by site ({n_groups} sites: no site in both training and test)"
        if n_groups > 1 and self.group_by_site == "auto":
            return f"{base}, stratified by site x outcome ({n_groups} sites are too few to group into {self.n_splits} folds)"
        return f"{base}, stratified by outcome"

    def split(self, y, groups=None) -> list[Fold]:
        """Folds for outcome ``y`` (binary, or continuous: stratified on its quintiles)."""
        y = np.asarray(y, dtype=float)
        n = len(y)
        binary = set(np.unique(y)) <= {0.0, 1.0}
        strata = y.astype(int) if binary else np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
        smallest = np.bincount(strata).min() if binary else n
        if n < 2 * self.n_splits or smallest < self.n_splits:
            raise InputError(
                f"{self.n_splits}-fold cross-validation needs at least {self.n_splits} patients in each outcome class; "
                f"found {n} patients, {int(smallest)} in the smallest class.",
                field="outcome",
            )
        groups = None if groups is None else np.asarray(groups)
        n_groups = 0 if groups is None else len(pd.unique(groups))
        folds = []
        for r in range(self.n_repeats):
            state = self.seed + r
            if self.group_by_site == "auto" and n_groups >= self.n_splits:
                splits = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=state).split(np.zeros(n), strata, groups)
            else:
                label = strata if n_groups <= 1 or self.group_by_site != "auto" else pd.factorize(pd.Series(strata).astype(str) + "|" + pd.Series(groups).astype(str))[0]
                splits = StratifiedKFold(self.n_splits, shuffle=True, random_state=state).split(np.zeros(n), label)
            folds.extend(Fold(r, k, train, test) for k, (train, test) in enumerate(splits))
        return folds


@dataclass
class CVResult:
    """Out-of-fold results of one model on one cohort.

    Attributes
    ----------
    outcome : "responder" or "improvement_pct".
    features : feature columns used.
    prediction : (n,) out-of-fold prediction, mean over repeats: response probability, or
        predicted improvement (%).
    prediction_by_repeat : (n, n_repeats) the same per repeat (each a full out-of-fold pass).
    shap : (n, n_features) out-of-fold SHAP values (margin units), mean over repeats.
    shap_base : (n,) matching base values; ``shap.sum(1) + shap_base`` is the mean OOF margin.
    interaction : (n, n_features, n_features) out-of-fold SHAP interaction values of the first
        repeat, or None.
    folds : the folds, shared with baselines and ablation.
    fold_models : models per fold, in ``folds`` order.
    scheme : the splitter's description.
    """

    outcome: str
    features: list
    prediction: pd.Series
    prediction_by_repeat: pd.DataFrame
    shap: pd.DataFrame
    shap_base: pd.Series
    interaction: np.ndarray | None
    folds: list
    fold_models: list
    scheme: str
    params: dict = field(default_factory=dict)

    @property
    def is_binary(self) -> bool:
        return OUTCOMES[self.outcome] == "binary"

    def importance(self) -> pd.Series:
        """Mean |SHAP| per feature, largest first."""
        return self.shap.abs().mean().sort_values(ascending=False)

    def modality_importance(self) -> pd.Series:
        """Sum over each modality's features of their mean |SHAP|."""
        imp = self.importance()
        return imp.groupby(imp.index.str.split(".").str[0]).sum().sort_values(ascending=False)

    def models_blind_to(self, position: int) -> list[ResponseModel]:
        """The fold models that never saw the patient at this row position (one per repeat)."""
        return [m for f, m in zip(self.folds, self.fold_models) if position in set(f.test.tolist())]


def _fit_fold(args):
    X, y, fold, params, with_interactions = args
    model = ResponseModel(**params).fit(X.iloc[fold.train], y[fold.train])
    X_test = X.iloc[fold.test]
    values, base = model.shap_values(X_test)
    interaction = model.shap_interaction_values(X_test)[:, :-1, :-1] if with_interactions else None
    return model, model.predict_margin(X_test), values, base, interaction


def cross_validate(
    cohort,
    outcome: str = "responder",
    *,
    features: list | None = None,
    splitter: CohortSplitter | None = None,
    params: dict | None = None,
    interactions: bool = True,
    n_jobs: int = -1,
    progress=None,
) -> CVResult:
    """Out-of-fold predictions and SHAP values of :class:`~core.model.ResponseModel` on a cohort.

    All preprocessing and tuning (early stopping) happen inside each training fold.
    ``progress(done, total)`` reports finished folds.
    """
    from core.parallel import parallel_map

    splitter = splitter or CohortSplitter()
    features = list(features or cohort.features.columns)
    X = check_features(cohort.features[features], source=cohort.name)
    all_missing = [c for c in features if X[c].isna().all()]
    if all_missing:
        raise InputError(f"feature(s) {all_missing} are missing for every patient; remove them or upload their data.", source=cohort.name)
    y = check_outcome(cohort.outcomes[outcome].astype(float), outcome)
    folds = splitter.split(y, cohort.groups)
    params = {"outcome": outcome, **(params or {})}
    jobs = [(X, y, f, params, interactions and f.repeat == 0) for f in folds]
    results = parallel_map(_fit_fold, jobs, n_jobs=n_jobs, prefer="threads", progress=progress)

    n, k = X.shape
    margin = np.full((n, splitter.n_repeats), np.nan)
    shap_sum = np.zeros((n, k))
    base_sum = np.zeros(n)
    interaction = np.zeros((n, k, k)) if interactions else None
    for fold, (_, fold_margin, values, base, inter) in zip(folds, results):
        margin[fold.test, fold.repeat] = fold_margin
        shap_sum[fold.test] += values
        base_sum[fold.test] += base
        if inter is not None:
            interaction[fold.test] = inter
    to_output = (lambda m: 1 / (1 + np.exp(-m))) if OUTCOMES[outcome] == "binary" else (lambda m: m)  # noqa: E731
    index = cohort.features.index
    by_repeat = pd.DataFrame(to_output(margin), index=index, columns=[f"repeat_{r}" for r in range(splitter.n_repeats)])
    return CVResult(
        outcome=outcome,
        features=features,
        prediction=by_repeat.mean(axis=1).rename("prediction"),
        prediction_by_repeat=by_repeat,
        shap=pd.DataFrame(shap_sum / splitter.n_repeats, index=index, columns=features),
        shap_base=pd.Series(base_sum / splitter.n_repeats, index=index, name="base"),
        interaction=interaction,
        folds=folds,
        fold_models=[r[0] for r in results],
        scheme=splitter.scheme(cohort.groups),
        params=params,
    )


def run_digest(cohort, outcome: str, splitter: CohortSplitter, params: dict, features) -> str:
    """Cache and storage key of a CV run: the cohort's content and everything that defines the run."""
    spec = {"cohort": cohort.digest, "outcome": outcome, "splitter": splitter.__dict__, "params": params, "features": list(features)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
