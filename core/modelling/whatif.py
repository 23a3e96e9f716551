"""What-if: edit one patient's values and see the prediction and its explanation change.

The edited patient is predicted by the cross-validation models that never saw the original
patient (one per repeat), so the baseline scenario equals the honest out-of-fold prediction and
the spread across those models shows how stable the prediction is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from core.errors import InputError

# Facts about a patient, not levers: locked in the editor unless the user unlocks them.
IMMUTABLE_FEATURES = ("clin.age", "clin.sex_male", "clin.indication_pd")


@dataclass(frozen=True)
class Scenario:
    """Prediction and explanation of one set of feature values.

    prediction : mean over the models (probability, or improvement in %).
    spread : (min, max) across the models.
    shap : per-feature SHAP values (margin units), mean over the models.
    base : mean base value (margin units).
    out_of_range : features whose value lies outside the range seen in training.
    """

    prediction: float
    spread: tuple
    shap: pd.Series
    base: float
    out_of_range: list


class WhatIf:
    """Scenarios for the patients of one cross-validation result."""

    def __init__(self, result, features: pd.DataFrame):
        self.result = result
        self.features = features[result.features]
        self.low = self.features.min()
        self.high = self.features.max()
        self._position = {pid: i for i, pid in enumerate(self.features.index)}
        self._models = {}

    def models_for(self, patient_id: str) -> list:
        if patient_id not in self._position:
            raise InputError(f"no patient {patient_id!r} in this cohort.", field="patient_id")
        if patient_id not in self._models:
            self._models[patient_id] = [m.booster_ for m in self.result.models_blind_to(self._position[patient_id])]
        return self._models[patient_id]

    def scenario(self, patient_id: str, changes: dict | None = None) -> Scenario:
        """The patient's own values with ``changes`` (feature -> value) applied."""
        row = self.features.loc[patient_id].copy()
        for feature, value in (changes or {}).items():
            if feature not in row.index:
                raise InputError(f"unknown feature {feature!r}.", field=feature)
            row[feature] = np.nan if value is None else float(value)
        matrix = xgb.DMatrix(row.to_numpy(dtype=float)[None, :], missing=np.nan, feature_names=list(row.index))
        models = self.models_for(patient_id)
        ranges = [(0, m.best_iteration + 1) for m in models]
        contribs = np.stack([m.predict(matrix, pred_contribs=True, iteration_range=r)[0] for m, r in zip(models, ranges)])
        margins = contribs.sum(axis=1)
        outputs = 1 / (1 + np.exp(-margins)) if self.result.is_binary else margins
        mean = contribs.mean(axis=0)
        values = row.to_numpy(dtype=float)
        outside = [f for f, v in zip(row.index, values) if np.isfinite(v) and not self.low[f] <= v <= self.high[f]]
        return Scenario(
            prediction=float(outputs.mean()),
            spread=(float(outputs.min()), float(outputs.max())),
            shap=pd.Series(mean[:-1], index=row.index),
            base=float(mean[-1]),
            out_of_range=outside,
        )
