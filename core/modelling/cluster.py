"""Response models trained with ``xgboost.dask`` on the Dask cluster of ``NEUROPREDICT_DASK_SCHEDULER``.

For cohorts too large to train comfortably in one process. :class:`DaskResponseClassifier` and
:class:`DaskResponseRegressor` are the ordinary :class:`~core.modelling.estimators.ResponseClassifier`
and :class:`~core.modelling.estimators.ResponseRegressor` (same parameters, same early-stopping split,
same predictions, SHAP values and files), except that ``fit`` partitions the training rows across the
cluster's workers and trains there with ``xgboost.dask``. The fitted booster comes back to this
process, so predicting and explaining stay local.

``xgboost.dask`` builds its histograms per partition and sums them across workers, so its trees
are not bit-identical to one process's: expect the same AUC to within about 0.02 on a few hundred
patients, and closer on large cohorts (see ``tests/test_parallel_dask.py``).

:func:`core.modelling.validation.cross_validate` uses these models on the same folds when a cluster is
configured and the cohort has at least :data:`DASK_XGBOOST_MIN_PATIENTS` patients, or when asked
(``engine="xgboost.dask"``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.data.schema import outcome_kind
from core.errors import InputError
from core.modelling.estimators import ResponseClassifier, ResponseEstimator, ResponseRegressor, check_features, check_outcome

__all__ = ["DASK_XGBOOST_MIN_PATIENTS", "ENGINES", "DaskResponseClassifier", "DaskResponseRegressor", "dask_estimator_for", "use_dask_xgboost"]

DASK_XGBOOST_MIN_PATIENTS = 1_000_000
"""From this many patients, cross-validation on a configured cluster trains each fold with ``xgboost.dask``.

Below it, whole folds side by side on the workers are faster: at 100,000 patients (28 features, 5
folds, a LocalCluster of 2 workers x 1 thread) folds side by side took 24.8 s, ``xgboost.dask`` 47.6 s
and one process 41.0 s (``python -m tests.bench_dask``). ``xgboost.dask`` pays off when one fold's
training rows crowd one worker's memory; the threshold (about 0.2 GB of features at this width) is a
judgement, not a measurement, and ``engine="xgboost.dask"`` asks for it at any size."""


ENGINES = ("auto", "xgboost.dask", "xgboost")


def use_dask_xgboost(n_patients: int, engine: str = "auto") -> bool:
    """Whether a cross-validation of ``n_patients`` trains its folds with ``xgboost.dask``.

    ``engine``: "auto" (on a configured cluster from :data:`DASK_XGBOOST_MIN_PATIENTS` patients),
    "xgboost.dask" (always; needs the cluster), or "xgboost" (never: each fold is one ordinary fit,
    folds side by side, on the cluster when it is configured).
    """
    from core.parallel import on_cluster

    if engine not in ENGINES:
        raise InputError(f"engine must be one of {list(ENGINES)}, found {engine!r}.", field="engine")
    if engine == "xgboost.dask":
        return True
    return engine == "auto" and on_cluster() and n_patients >= DASK_XGBOOST_MIN_PATIENTS


class _DaskFit:
    """``fit`` of a response estimator on the cluster: rows partitioned across the workers."""

    def _partitions(self, n_rows: int, client) -> int:
        if self.n_partitions:
            return int(self.n_partitions)
        workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        return max(1, min(2 * workers, n_rows // 1000 or 1))

    def fit(self, X: pd.DataFrame, y):
        """Fit on the cluster with ``xgboost.dask``; returns ``self`` (an ordinary fitted estimator)."""
        import dask.array as da
        from xgboost import dask as dxgb

        from core.parallel import dask_client

        X = check_features(X)
        y = check_outcome(y, self._outcome)
        if len(y) != len(X):
            raise InputError(f"{len(X)} feature rows but {len(y)} outcomes; expected one outcome per patient.")
        client = dask_client()
        keep, held = self._inner_split(y)  # the same early-stopping split as in one process
        values = X.to_numpy(dtype=float)

        def matrix(rows):
            part = math.ceil(len(rows) / self._partitions(len(rows), client))
            data = da.from_array(values[rows], chunks=(part, values.shape[1]))
            label = da.from_array(y[rows], chunks=part)
            return dxgb.DaskDMatrix(client, data, label, missing=np.nan, feature_names=list(X.columns))

        params = {k: v for k, v in self._xgb_params().items() if k != "nthread"}  # each worker uses its own threads
        with client.as_current():  # xgboost.dask looks for a current client even when given one
            dtrain, dvalid = matrix(keep), matrix(held)
            output = dxgb.train(client, params, dtrain, num_boost_round=self.n_estimators, evals=[(dvalid, "inner")],
                                early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
        booster = output["booster"]
        booster.set_param({"nthread": self.n_jobs})  # predictions and SHAP values run here
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        if self._binary:
            self.classes_ = np.array([0, 1])
        return self


    def local(self) -> ResponseEstimator:
        """The same fitted model as a plain :class:`ResponseClassifier` / :class:`ResponseRegressor`."""
        params = {k: v for k, v in self.get_params().items() if k != "n_partitions"}
        plain = (ResponseClassifier if self._binary else ResponseRegressor)(**params)
        for name in ("booster_", "best_iteration_", "feature_names_in_", "n_features_in_", "classes_"):
            if hasattr(self, name):
                setattr(plain, name, getattr(self, name))
        return plain

    def save(self, path) -> None:
        """Saved as the plain estimator (``load_estimator`` reads it back as one)."""
        self.local().save(path)


class DaskResponseClassifier(_DaskFit, ResponseClassifier):
    """:class:`~core.modelling.estimators.ResponseClassifier` trained with ``xgboost.dask`` on the cluster.

    Extra parameter ``n_partitions``: row partitions of the training data (None: two per worker,
    at least 1,000 rows each). Saved and reloaded as an ordinary ``ResponseClassifier``.
    """

    def __init__(self, n_estimators: int = 500, learning_rate: float = 0.05, max_depth: int = 3, min_child_weight: float = 3.0,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0, early_stopping_fraction: float = 0.15,
                 early_stopping_rounds: int = 40, seed: int = 0, n_jobs: int = 1, n_partitions: int | None = None):
        super().__init__(n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda,
                         early_stopping_fraction, early_stopping_rounds, seed, n_jobs)
        self.n_partitions = n_partitions


class DaskResponseRegressor(_DaskFit, ResponseRegressor):
    """:class:`~core.modelling.estimators.ResponseRegressor` trained with ``xgboost.dask`` on the cluster (see :class:`DaskResponseClassifier`)."""

    def __init__(self, n_estimators: int = 500, learning_rate: float = 0.05, max_depth: int = 3, min_child_weight: float = 3.0,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0, early_stopping_fraction: float = 0.15,
                 early_stopping_rounds: int = 40, seed: int = 0, n_jobs: int = 1, n_partitions: int | None = None):
        super().__init__(n_estimators, learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda,
                         early_stopping_fraction, early_stopping_rounds, seed, n_jobs)
        self.n_partitions = n_partitions


def dask_estimator_for(outcome: str, **params) -> ResponseEstimator:
    """:class:`DaskResponseClassifier` for the responder label, :class:`DaskResponseRegressor` for the improvement."""
    return {"binary": DaskResponseClassifier, "continuous": DaskResponseRegressor}[outcome_kind(outcome)](**params)
