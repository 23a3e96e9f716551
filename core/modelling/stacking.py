"""The stacked model: xgboost on the engineered features plus the deep fusion model's prediction.

Stacking only helps when the stacked input is honest. Inside ``fit``, the fusion model's log-odds
of every training patient come from an inner cross-validation of the training patients (each
predicted by a fusion model that never saw them), so the xgboost on top learns how much to trust
the fusion model from predictions as good as those it will meet on new patients. New patients
get the log-odds of one fusion model fitted on all training patients. Used inside an outer
cross-validation fold, no patient's label ever reaches their own stacked input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from core.data.schema import FUSION_LOGIT
from core.errors import InputError
from core.modelling.estimators import ResponseClassifier, check_outcome, load_estimator
from core.modelling.explanation import Explanation, output_of_margin
from core.modelling.fusion import FusionClassifier, FusionDesign, fusion_design

__all__ = ["StackedDesign", "StackedClassifier", "stacked_design", "load_stacked"]


@dataclass
class StackedDesign:
    """What the stacked model reads for n patients: engineered features, raw inputs, sites.

    features : (n, k) engineered feature table (index ``patient_id``).
    fusion : the same patients' :class:`~core.modelling.fusion.FusionDesign`.
    groups : (n,) site of each patient (the inner split groups by it like the outer one), or None.
    """

    features: pd.DataFrame
    fusion: FusionDesign
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows) -> StackedDesign:
        rows = np.asarray(rows)
        return StackedDesign(self.features.iloc[rows], self.fusion.take(rows), None if self.groups is None else self.groups[rows])


def stacked_design(cohort, inputs, features: list | None = None) -> StackedDesign:
    """The stacked design of a cohort: its checked features, cached raw inputs and sites, in one patient order."""
    from core.modelling.validation import training_data

    X, _ = training_data(cohort, "responder", features)
    groups = None if cohort.groups is None else np.asarray(cohort.groups)
    return StackedDesign(X, fusion_design(cohort, inputs), groups)


class StackedClassifier(ClassifierMixin, BaseEstimator):
    """xgboost on the engineered features and the deep fusion model's nested out-of-fold log-odds.

    Parameters
    ----------
    fusion_params : parameters of every :class:`~core.modelling.fusion.FusionClassifier`.
    xgboost_params : parameters of the :class:`~core.modelling.estimators.ResponseClassifier` on top.
    inner_splits : folds of the inner cross-validation that gives the training patients' fusion log-odds.
    seed : seed of the inner split.
    """

    output_space = "log-odds"

    def __init__(self, fusion_params: dict | None = None, xgboost_params: dict | None = None, inner_splits: int = 3, seed: int = 0):
        self.fusion_params = fusion_params
        self.xgboost_params = xgboost_params
        self.inner_splits = inner_splits
        self.seed = seed

    def fit(self, X: StackedDesign, y, fusion_model: FusionClassifier | None = None, on_epoch=None, progress=None) -> StackedClassifier:
        """Fit on a :class:`StackedDesign` and the responder labels; returns ``self``.

        ``fusion_model``: a fusion model already fitted on exactly these patients (e.g. the same
        fold of a fusion cross-validation run), used for new patients instead of fitting one again.
        ``on_epoch(row)`` sees every fusion epoch; ``progress(done, total)`` counts fusion fits.
        """
        from core.modelling.validation import CohortSplitter

        if not isinstance(X, StackedDesign):
            raise InputError(f"the stacked model reads a StackedDesign (features and raw inputs), found {type(X).__name__}.")
        y = check_outcome(y, "responder")
        if len(y) != len(X):
            raise InputError(f"{len(X)} patients but {len(y)} outcomes; expected one outcome per patient.")
        fusion_params = dict(self.fusion_params or {})
        fit_args = {} if on_epoch is None else {"on_epoch": on_epoch}
        inner = CohortSplitter(n_splits=self.inner_splits, n_repeats=1, seed=self.seed).split(y, X.groups)
        total = len(inner) + (fusion_model is None)
        oof = np.full(len(y), np.nan)
        for done, fold in enumerate(inner, start=1):
            model = FusionClassifier(**fusion_params).fit(X.fusion.take(fold.train), y[fold.train], **fit_args)
            oof[fold.test] = model.predict_margin(X.fusion.take(fold.test))
            if progress:
                progress(done, total)
        if fusion_model is None:
            fusion_model = FusionClassifier(**fusion_params).fit(X.fusion, y, **fit_args)
            if progress:
                progress(total, total)
        check_is_fitted(fusion_model, "network_")
        self.fusion_ = fusion_model
        self.inner_fusion_logit_ = oof
        self.xgboost_ = ResponseClassifier(**dict(self.xgboost_params or {})).fit(X.features.assign(**{FUSION_LOGIT: oof}), y)
        self.feature_names_in_ = np.array([*X.features.columns, FUSION_LOGIT], dtype=object)
        self.classes_ = np.array([0, 1])
        return self

    def _table(self, X: StackedDesign) -> pd.DataFrame:
        check_is_fitted(self, "xgboost_")
        if not isinstance(X, StackedDesign):
            raise InputError(f"the stacked model reads a StackedDesign (features and raw inputs), found {type(X).__name__}.")
        return X.features.assign(**{FUSION_LOGIT: self.fusion_.predict_margin(X.fusion)})

    def predict_margin(self, X: StackedDesign) -> np.ndarray:
        """(n,) log-odds of response."""
        return self.xgboost_.predict_margin(self._table(X))

    def output_from_margin(self, margin) -> np.ndarray:
        return output_of_margin(margin, self.output_space)

    def predict_proba(self, X: StackedDesign) -> np.ndarray:
        """(n, 2) probabilities of non-response and response."""
        p = self.output_from_margin(self.predict_margin(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: StackedDesign) -> np.ndarray:
        """(n,) predicted label: 1 where the probability of response is at least 0.5."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def explain(self, X: StackedDesign) -> Explanation:
        """Exact TreeSHAP of the xgboost on top, in log-odds: one value per feature and one for ``fusion.logit``."""
        return self.xgboost_.explain(self._table(X))

    def shap_interaction_values(self, X: StackedDesign) -> np.ndarray:
        return self.xgboost_.shap_interaction_values(self._table(X))

    def save(self, path: str | Path) -> None:
        """Write ``<path>.json`` with ``<path>_xgboost.*`` and ``<path>_fusion.*`` beside it."""
        check_is_fitted(self, "xgboost_")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.xgboost_.save(path.with_name(path.name + "_xgboost"))
        self.fusion_.save(path.with_name(path.name + "_fusion"))
        meta = {"estimator": type(self).__name__, "params": self.get_params(), "inner_fusion_logit": self.inner_fusion_logit_.tolist()}
        path.with_suffix(".json").write_text(json.dumps(meta))


def load_stacked(path: str | Path) -> StackedClassifier:
    """A fitted :class:`StackedClassifier` written by its ``save``; InputError when unreadable."""
    from core.modelling.fusion import load_fusion

    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        model = StackedClassifier(**meta["params"])
        model.inner_fusion_logit_ = np.asarray(meta["inner_fusion_logit"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the saved stacked model ({exc}); train it again.", source=str(path)) from exc
    model.xgboost_ = load_estimator(path.with_name(path.name + "_xgboost"))
    model.fusion_ = load_fusion(path.with_name(path.name + "_fusion"))
    model.feature_names_in_ = np.array(list(model.xgboost_.feature_names_in_), dtype=object)
    model.classes_ = np.array([0, 1])
    return model
