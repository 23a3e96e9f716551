"""Response models: gradient-boosted trees (xgboost) as a scikit-learn classifier and regressor.

``fit`` returns ``self``, ``__init__`` only stores parameters, learned attributes end in ``_``.
Missing values (a patient without a modality) stay NaN: xgboost learns a default direction at
every split, so nobody is dropped or imputed. The number of trees is tuned by early stopping on
an inner split of the training data only, so a cross-validation fold's test patients never
influence it. Explanations are exact TreeSHAP values from xgboost itself, returned as an
:class:`~core.modelling.explanation.Explanation` in the model's output space (log-odds for
:class:`ResponseClassifier`, % improvement for :class:`ResponseRegressor`).

Models persist in xgboost's own UBJSON format plus a JSON sidecar; nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from core.data.schema import OUTCOMES, outcome_kind
from core.errors import InputError
from core.modelling.explanation import OUTPUT_SPACES, Explanation, output_of_margin


def check_features(X: pd.DataFrame, source: str = "features") -> pd.DataFrame:
    """Numeric float matrix of the features, or an InputError naming the offending columns."""
    return pd.DataFrame(feature_values(X, source), index=X.index, columns=X.columns)


def feature_values(X: pd.DataFrame, source: str = "features") -> np.ndarray:
    """(n, k) float array of a feature table (NaN = missing), or an InputError naming the bad columns."""
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"expected a table of features with named columns, found {type(X).__name__}.", source=source)
    bad = [c for c, dtype in X.dtypes.items() if dtype.kind not in "fiub"]  # float, int, unsigned, bool (numpy or pandas)
    if bad:
        examples = {c: X[c].dropna().astype(str).iloc[:2].tolist() for c in bad[:3]}
        raise InputError(f"non-numeric values in feature column(s) {bad}; expected numbers, found e.g. {examples}.", source=source)
    values = X.to_numpy(dtype=float)
    if np.isinf(values).any():
        cols = X.columns[np.isinf(values).any(axis=0)].tolist()
        raise InputError(f"infinite values in feature column(s) {cols}; expected finite numbers or blanks.", source=source)
    return values


def check_outcome(y, outcome: str) -> np.ndarray:
    """The outcome as floats (0/1 for the responder), or an InputError a user can act on."""
    kind = outcome_kind(outcome)
    y = np.asarray(y, dtype=float)
    if np.isnan(y).any():
        raise InputError(f"{int(np.isnan(y).sum())} patients have no {outcome}; a model needs every training outcome.", field=outcome)
    if kind == "binary":
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            raise InputError(f"all {len(y)} patients are {'responders' if n_pos else 'non-responders'}; a classifier needs both classes.", field=outcome)
    elif np.ptp(y) == 0:
        raise InputError(f"{outcome} is the same ({y[0]:g}) for every patient; there is nothing to predict.", field=outcome)
    return y


def outcome_strata(y, binary: bool) -> np.ndarray:
    """Strata for stratified splits: the label itself, or a continuous outcome's quintile (0-4)."""
    y = np.asarray(y, dtype=float)
    return y.astype(int) if binary else np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))


class ResponseEstimator(BaseEstimator):
    """The shared base of :class:`ResponseClassifier` and :class:`ResponseRegressor`.

    Parameters
    ----------
    n_estimators : maximum number of trees; early stopping picks the number actually used.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda :
        xgboost's tree parameters.
    early_stopping_fraction : share of the training patients held out to choose the number of
        trees (stratified by :func:`outcome_strata`).
    early_stopping_rounds : stop after this many trees without improvement on that share.
    seed : random seed of the inner split and of xgboost's subsampling.
    n_jobs : xgboost threads.
    """

    _outcome: str  # the outcome column it predicts (see core.data.schema.OUTCOMES)
    _objective: str
    _eval_metric: str

    @property
    def _binary(self) -> bool:
        return OUTCOMES[self._outcome] == "binary"

    def __init__(
        self,
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
    def output_space(self) -> str:
        """Space of :meth:`predict_margin` and of the SHAP values: "log-odds" or "% improvement"."""
        return OUTPUT_SPACES[OUTCOMES[self._outcome]]

    def _xgb_params(self) -> dict:
        return {
            "objective": self._objective,
            "eval_metric": self._eval_metric,
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
        strata = outcome_strata(y, self._binary)
        held = []
        for value in np.unique(strata):
            members = np.flatnonzero(strata == value)
            held.append(rng.choice(members, int(round(self.early_stopping_fraction * len(members))), replace=False))
        held = np.sort(np.concatenate(held))
        keep = np.setdiff1d(np.arange(len(y)), held)
        return keep, held

    def fit(self, X: pd.DataFrame, y):
        """Fit on a feature table (NaN = missing) and one outcome per row; returns ``self``."""
        X = check_features(X)
        y = check_outcome(y, self._outcome)
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
    def _values(self, X: pd.DataFrame) -> np.ndarray:
        """(n, k) float array of the trained-on columns of ``X``, checked."""
        check_is_fitted(self, "booster_")
        columns = list(self.feature_names_in_)
        if list(getattr(X, "columns", [])) != columns:
            missing = [c for c in columns if c not in getattr(X, "columns", [])]
            if missing:
                raise InputError(f"feature column(s) {missing} the model was trained on are missing.")
            X = X[columns]
        return feature_values(X)

    def _matrix(self, values: np.ndarray) -> xgb.DMatrix:
        # From a float array, not a DataFrame: the same values, without pandas' per-column overhead.
        return xgb.DMatrix(values, missing=np.nan, feature_names=list(self.feature_names_in_), nthread=self.n_jobs)

    def _range(self) -> tuple[int, int]:
        return (0, self.best_iteration_ + 1)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) raw model output in :attr:`output_space`: log-odds, or predicted improvement (%)."""
        matrix = self._matrix(self._values(X))
        return self.booster_.predict(matrix, output_margin=True, iteration_range=self._range())

    def output_from_margin(self, margin) -> np.ndarray:
        """The model's output from its raw output: a probability of response, or the improvement (%)."""
        return output_of_margin(margin, self.output_space)

    def explain(self, X: pd.DataFrame) -> Explanation:
        """Exact TreeSHAP values of the rows of ``X`` as an :class:`Explanation`.

        ``values.sum(1) + base_values`` equals :meth:`predict_margin` (local accuracy).
        """
        values = self._values(X)
        return self._explain_matrix(self._matrix(values), values, X.index)

    def _explain_matrix(self, matrix: xgb.DMatrix, values: np.ndarray, index) -> Explanation:
        contrib = self.booster_.predict(matrix, pred_contribs=True, iteration_range=self._range())
        return Explanation(contrib[:, :-1], contrib[:, -1], values, tuple(self.feature_names_in_), self.output_space, index)

    def shap_interaction_values(self, X: pd.DataFrame) -> np.ndarray:
        """(n, n_features + 1, n_features + 1) SHAP interaction values; the last row/column is the bias."""
        matrix = self._matrix(self._values(X))
        return self.booster_.predict(matrix, pred_interactions=True, iteration_range=self._range())

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``<path>.ubj`` (the booster) and ``<path>.json`` (class, parameters, feature names)."""
        check_is_fitted(self, "booster_")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(path.with_suffix(".ubj")))
        meta = {"estimator": type(self).__name__, "params": self.get_params(), "best_iteration": self.best_iteration_, "features": list(self.feature_names_in_)}
        path.with_suffix(".json").write_text(json.dumps(meta))


class ResponseClassifier(ClassifierMixin, ResponseEstimator):
    """xgboost classifier of the responder label (logistic loss).

    ``predict`` gives labels (``classes_``: 0 = non-responder, 1 = responder), ``predict_proba``
    the probabilities of both, :meth:`explain` SHAP values in log-odds.
    """

    _outcome = "responder"
    _objective = "binary:logistic"
    _eval_metric = "logloss"

    def fit(self, X: pd.DataFrame, y) -> ResponseClassifier:
        super().fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) probabilities of non-response and response."""
        matrix = self._matrix(self._values(X))
        p = self.booster_.predict(matrix, iteration_range=self._range())
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) predicted label: 1 where the probability of response is at least 0.5."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


class ResponseRegressor(RegressorMixin, ResponseEstimator):
    """xgboost regressor of the improvement in % (squared error); SHAP values in % improvement."""

    _outcome = "improvement_pct"
    _objective = "reg:squarederror"
    _eval_metric = "rmse"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) predicted improvement (%)."""
        matrix = self._matrix(self._values(X))
        return self.booster_.predict(matrix, iteration_range=self._range())


def explain_each(models: list[ResponseEstimator], X: pd.DataFrame) -> list[Explanation]:
    """Each fitted model's :meth:`~ResponseEstimator.explain` of the same rows, in order.

    The models must share their features and output space (the fold models of one run do); the
    rows are checked and handed to xgboost once for all of them, which is what makes a what-if
    scenario of five models take a few milliseconds.
    """
    first = models[0]
    if any(list(m.feature_names_in_) != list(first.feature_names_in_) or m.output_space != first.output_space for m in models):
        raise InputError("the models to explain with were trained on different features or outcomes; use the fold models of one run.")
    values = first._values(X)
    matrix = first._matrix(values)
    return [m._explain_matrix(matrix, values, X.index) for m in models]


_ESTIMATORS = {"binary": ResponseClassifier, "continuous": ResponseRegressor}


def estimator_for(outcome: str, **params) -> ResponseEstimator:
    """A :class:`ResponseClassifier` for the responder label, a :class:`ResponseRegressor` for the improvement."""
    return _ESTIMATORS[outcome_kind(outcome)](**params)


def estimator_params() -> list[str]:
    """The parameters a user may set on either estimator (``n_jobs`` excluded: the engine sets it)."""
    return [p for p in ResponseEstimator().get_params() if p != "n_jobs"]


def load_estimator(path: str | Path) -> ResponseEstimator:
    """A fitted estimator written by :meth:`ResponseEstimator.save`; InputError when unreadable.

    Files written before the classifier and regressor were separate name the outcome among their
    parameters instead of the class; both are read.
    """
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("estimator") == "FusionClassifier":
            from core.modelling.fusion import load_fusion

            return load_fusion(path)
        if meta.get("estimator") == "StackedClassifier":
            from core.modelling.stacking import load_stacked

            return load_stacked(path)
        params = dict(meta["params"])
        outcome = params.pop("outcome", None)
        cls = {c.__name__: c for c in _ESTIMATORS.values()}.get(meta.get("estimator")) or _ESTIMATORS[OUTCOMES[outcome]]
        booster = xgb.Booster()
        booster.load_model(str(path.with_suffix(".ubj")))
    except (OSError, ValueError, KeyError, TypeError, xgb.core.XGBoostError) as exc:
        raise InputError(f"cannot read the saved model ({exc}); train it again.", source=str(path)) from exc
    model = cls(**params)
    model.booster_ = booster
    model.best_iteration_ = int(meta["best_iteration"])
    model.feature_names_in_ = np.array(meta["features"], dtype=object)
    model.n_features_in_ = len(meta["features"])
    if isinstance(model, ResponseClassifier):
        model.classes_ = np.array([0, 1])
    return model
