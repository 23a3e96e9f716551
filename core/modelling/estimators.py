"""The response model: gradient-boosted trees (xgboost) with scikit-learn conventions.

``fit`` returns ``self``, ``__init__`` only stores parameters, learned attributes end in ``_``.
Missing values (a patient without a modality) stay NaN: xgboost learns a default direction at
every split, so nobody is dropped or imputed. The number of trees is tuned by early stopping on
an inner split of the training data only, so a cross-validation fold's test patients never
influence it. Explanations are exact TreeSHAP values from xgboost itself, in the model's margin
units (log-odds for the responder model, % improvement for the continuous one).

Models persist in xgboost's own UBJSON format plus a JSON sidecar; nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator

from core.data.schema import OUTCOMES
from core.errors import InputError


def check_features(X: pd.DataFrame, source: str = "features") -> pd.DataFrame:
    """Numeric float matrix of the features, or an InputError naming the offending columns."""
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"expected a table of features with named columns, found {type(X).__name__}.", source=source)
    bad = [c for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))]
    if bad:
        examples = {c: X[c].dropna().astype(str).iloc[:2].tolist() for c in bad[:3]}
        raise InputError(f"non-numeric values in feature column(s) {bad}; expected numbers, found e.g. {examples}.", source=source)
    values = X.to_numpy(dtype=float)
    if np.isinf(values).any():
        cols = X.columns[np.isinf(values).any(axis=0)].tolist()
        raise InputError(f"infinite values in feature column(s) {cols}; expected finite numbers or blanks.", source=source)
    return X.astype(float)


def check_outcome(y, outcome: str) -> np.ndarray:
    """The outcome as floats (0/1 for the responder), or an InputError a user can act on."""
    if outcome not in OUTCOMES:
        raise InputError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOMES)}.", field="outcome")
    y = np.asarray(y, dtype=float)
    if np.isnan(y).any():
        raise InputError(f"{int(np.isnan(y).sum())} patients have no {outcome}; a model needs every training outcome.", field=outcome)
    if OUTCOMES[outcome] == "binary":
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            raise InputError(f"all {len(y)} patients are {'responders' if n_pos else 'non-responders'}; a classifier needs both classes.", field=outcome)
    elif np.ptp(y) == 0:
        raise InputError(f"{outcome} is the same ({y[0]:g}) for every patient; there is nothing to predict.", field=outcome)
    return y


class ResponseModel(BaseEstimator):
    """xgboost model of the binary responder label or the continuous improvement.

    Parameters
    ----------
    outcome : "responder" (binary, logistic loss) or "improvement_pct" (squared error).
    n_estimators : maximum number of trees; early stopping picks the number actually used.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda :
        xgboost's tree parameters.
    early_stopping_fraction : share of the training patients held out to choose the number of
        trees (stratified for the responder).
    early_stopping_rounds : stop after this many trees without improvement on that share.
    seed : random seed of the inner split and of xgboost's subsampling.
    n_jobs : xgboost threads.
    """

    def __init__(
        self,
        outcome: str = "responder",
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 3.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_fraction: float = 0.15,
        early_stopping_rounds: int = 40,
        seed: int = 0,
        n_jobs: int = 1,
    ):
        self.outcome = outcome
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_fraction = early_stopping_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self.n_jobs = n_jobs

    @property
    def is_binary(self) -> bool:
        return OUTCOMES[self.outcome] == "binary"

    def _xgb_params(self) -> dict:
        return {
            "objective": "binary:logistic" if self.is_binary else "reg:squarederror",
            "eval_metric": "logloss" if self.is_binary else "rmse",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "tree_method": "hist",
            "nthread": self.n_jobs,
            "seed": self.seed,
        }

    def _inner_split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        strata = y if self.is_binary else np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
        held = []
        for value in np.unique(strata):
            members = np.flatnonzero(strata == value)
            held.append(rng.choice(members, int(round(self.early_stopping_fraction * len(members))), replace=False))
        held = np.sort(np.concatenate(held))
        keep = np.setdiff1d(np.arange(len(y)), held)
        return keep, held

    def fit(self, X: pd.DataFrame, y) -> ResponseModel:
        X = check_features(X)
        y = check_outcome(y, self.outcome)
        if len(y) != len(X):
            raise InputError(f"{len(X)} feature rows but {len(y)} outcomes; expected one outcome per patient.")
        keep, held = self._inner_split(y)
        dtrain = xgb.DMatrix(X.iloc[keep], label=y[keep], missing=np.nan)
        dvalid = xgb.DMatrix(X.iloc[held], label=y[held], missing=np.nan)
        booster = xgb.train(
            self._xgb_params(),
            dtrain,
            num_boost_round=self.n_estimators,
            evals=[(dvalid, "inner")],
            early_stopping_rounds=self.early_stopping_rounds,
            verbose_eval=False,
        )
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    # --- prediction and explanation ---------------------------------------------------------
    def _matrix(self, X: pd.DataFrame) -> xgb.DMatrix:
        if not hasattr(self, "booster_"):
            raise InputError("the model is not trained yet; call fit first.")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise InputError(f"feature column(s) {missing} the model was trained on are missing.")
        return xgb.DMatrix(check_features(X[list(self.feature_names_in_)]), missing=np.nan)

    def _range(self) -> tuple[int, int]:
        return (0, self.best_iteration_ + 1)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw model output: log-odds (responder) or predicted improvement (%)."""
        return self.booster_.predict(self._matrix(X), output_margin=True, iteration_range=self._range())

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) probabilities of non-response and response."""
        if not self.is_binary:
            raise InputError("predict_proba needs the responder model; this one predicts improvement.")
        p = self.booster_.predict(self._matrix(X), iteration_range=self._range())
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Response probability (responder model) or predicted improvement in % (continuous)."""
        if self.is_binary:
            return self.predict_proba(X)[:, 1]
        return self.booster_.predict(self._matrix(X), iteration_range=self._range())

    def shap_values(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Exact TreeSHAP: ``(values (n, n_features), base_values (n,))`` in margin units.

        ``values.sum(1) + base_values`` equals :meth:`predict_margin` (local accuracy).
        """
        contrib = self.booster_.predict(self._matrix(X), pred_contribs=True, iteration_range=self._range())
        return contrib[:, :-1], contrib[:, -1]

    def shap_interaction_values(self, X: pd.DataFrame) -> np.ndarray:
        """(n, n_features + 1, n_features + 1) SHAP interaction values; the last row/column is the bias."""
        return self.booster_.predict(self._matrix(X), pred_interactions=True, iteration_range=self._range())

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``<path>.ubj`` (the booster) and ``<path>.json`` (parameters, feature names)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(path.with_suffix(".ubj")))
        meta = {"params": self.get_params(), "best_iteration": self.best_iteration_, "features": list(self.feature_names_in_)}
        path.with_suffix(".json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path) -> ResponseModel:
        path = Path(path)
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            booster = xgb.Booster()
            booster.load_model(str(path.with_suffix(".ubj")))
        except (OSError, ValueError, xgb.core.XGBoostError) as exc:
            raise InputError(f"cannot read the saved model ({exc}); train it again.", source=str(path)) from exc
        model = cls(**meta["params"])
        model.booster_ = booster
        model.best_iteration_ = int(meta["best_iteration"])
        model.feature_names_in_ = np.array(meta["features"], dtype=object)
        model.n_features_in_ = len(meta["features"])
        return model
