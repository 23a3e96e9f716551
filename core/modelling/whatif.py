"""What-if: edit one patient's values and see the prediction and its explanation change.

The edited patient is predicted by the cross-validation models that never saw the original
patient (one per repeat), so the baseline scenario equals the honest out-of-fold prediction and
the spread across those models shows how stable the prediction is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import InputError
from core.modelling.estimators import explain_each
from core.modelling.explanation import Explanation

# Facts about a patient, not levers: locked in the editor unless the user unlocks them.
IMMUTABLE_FEATURES = ("clin.age", "clin.sex_male", "clin.indication_pd")


@dataclass(frozen=True)
class Scenario:
    """Prediction and explanation of one set of feature values.

    prediction : mean over the models of their output (probability, or improvement in %).
    spread : (min, max) of that output across the models.
    explanation : one patient's :class:`Explanation`, SHAP and base values averaged over the
        models; its data are the scenario's feature values.
    out_of_range : features whose value lies outside the range seen in training.
    """

    prediction: float
    spread: tuple
    explanation: Explanation
    out_of_range: list


class WhatIf:
    """Scenarios for the patients of one cross-validation result.

    Parameters
    ----------
    result : a :class:`~core.modelling.validation.CVResult`.
    features : the cohort's feature table (patients x features); the run's columns are used.
    """

    def __init__(self, result, features: pd.DataFrame):
        self.result = result
        self.features = features[result.features]
        self.low = self.features.min()
        self.high = self.features.max()
        self._position = {pid: i for i, pid in enumerate(self.features.index)}
        self._column = {f: j for j, f in enumerate(self.features.columns)}
        self._table = self.features.to_numpy(dtype=float)
        self._columns = pd.Index(list(self.features.columns), dtype=object)  # plain strings: cheap to compare on every scenario
        self._models: dict[str, list] = {}

    def models_for(self, patient_id: str) -> list:
        """The fitted fold models that never saw this patient (one per repeat)."""
        if patient_id not in self._position:
            raise InputError(f"no patient {patient_id!r} in this cohort.", field="patient_id")
        if patient_id not in self._models:
            self._models[patient_id] = self.result.models_blind_to(self._position[patient_id])
        return self._models[patient_id]

    def scenario(self, patient_id: str, changes: dict | None = None) -> Scenario:
        """The patient's own values with ``changes`` (feature -> value; None = missing) applied."""
        models = self.models_for(patient_id)
        values = self._table[self._position[patient_id]].copy()
        for feature, value in (changes or {}).items():
            if feature not in self._column:
                raise InputError(f"unknown feature {feature!r}.", field=feature)
            values[self._column[feature]] = np.nan if value is None else float(value)
        row = pd.DataFrame(values[None, :], index=pd.Index([patient_id], name="patient_id"), columns=self._columns)
        explanations = explain_each(models, row)
        outputs = np.array([e.output[0] for e in explanations])
        outside = [f for f, v in zip(row.columns, values) if np.isfinite(v) and not self.low[f] <= v <= self.high[f]]
        return Scenario(
            prediction=float(outputs.mean()),
            spread=(float(outputs.min()), float(outputs.max())),
            explanation=Explanation.mean_of(explanations)[patient_id],
            out_of_range=outside,
        )


class FusionWhatIf:
    """Scenarios of the deep fusion model: knock a modality out ("what if this patient had no
    scan?") or edit clinical values, for the patients of one fusion cross-validation result.

    Parameters
    ----------
    result : a fusion :class:`~core.modelling.validation.CVResult`.
    design : the cohort's :class:`~core.modelling.fusion.FusionDesign`, in the result's patient order.
    """

    def __init__(self, result, design):
        if result.model != "fusion":
            raise InputError(f"FusionWhatIf asks a deep fusion run; this run is a {result.model} run.", field="result")
        self.result = result
        self.design = design
        self.clinical = pd.DataFrame(design.clinical, index=pd.Index(design.patient_ids, name="patient_id"), columns=list(design.clinical_names))
        self.low, self.high = self.clinical.min(), self.clinical.max()
        self._position = {pid: i for i, pid in enumerate(design.patient_ids)}

    def models_for(self, patient_id: str) -> list:
        """The fitted fold models that never saw this patient (one per repeat)."""
        if patient_id not in self._position:
            raise InputError(f"no patient {patient_id!r} in this cohort.", field="patient_id")
        return self.result.models_blind_to(self._position[patient_id])

    def has(self, patient_id: str) -> dict:
        """Which of the fusion model's modalities the patient has: {modality: bool}."""
        from core.modelling.fusion import FUSION_MODALITIES

        return dict(zip(FUSION_MODALITIES, self.design.take([self._position[patient_id]]).masks()[0].tolist()))

    def scenario(self, patient_id: str, knocked_out=(), clinical_changes: dict | None = None) -> Scenario:
        """The patient with the modalities in ``knocked_out`` removed (as if never recorded) and
        ``clinical_changes`` (clinical column -> value; None = missing) applied."""
        from core.modelling.fusion import FUSION_MODALITIES

        models = self.models_for(patient_id)
        row = self.design.take([self._position[patient_id]])
        unknown = set(knocked_out) - set(FUSION_MODALITIES)
        if unknown:
            raise InputError(f"unknown modality {sorted(unknown)}; expected some of {list(FUSION_MODALITIES)}.", field="knocked_out")
        for modality in knocked_out:
            if modality == "clin":
                row.clinical[:] = np.nan
            else:
                row.inputs.mask[modality][:] = False
        names = list(row.clinical_names)
        for column, value in (clinical_changes or {}).items():
            if column not in names:
                raise InputError(f"unknown clinical value {column!r}; expected one of {names}.", field=column)
            if "clin" not in knocked_out:
                row.clinical[0, names.index(column)] = np.nan if value is None else float(value)
        explanations = [m.explain(row) for m in models]
        outputs = np.array([float(m.output_from_margin(e.values.sum(1) + e.base_values)[0]) for m, e in zip(models, explanations)])
        values = dict(zip(names, row.clinical[0]))
        outside = [c for c, v in values.items() if c in (clinical_changes or {}) and np.isfinite(v) and not self.low[c] <= v <= self.high[c]]
        return Scenario(
            prediction=float(outputs.mean()),
            spread=(float(outputs.min()), float(outputs.max())),
            explanation=Explanation.mean_of(explanations)[patient_id],
            out_of_range=outside,
        )
