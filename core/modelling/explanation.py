"""One object for SHAP explanations, whatever made them: :class:`Explanation`.

A model's ``explain()``, a cross-validation run and a what-if scenario all return one, and every
explanation figure takes one. It holds the SHAP values of some patients, their base values, the
feature values explained, the feature names and the output space the values are in, so nothing
downstream has to be told whether the model was a classifier.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.schema import input_source
from core.errors import InputError

__all__ = ["Explanation", "OUTPUT_SPACES", "output_of_margin", "shapley_values"]


# Output space of the SHAP values per outcome kind (see core.data.schema.OUTCOMES).
OUTPUT_SPACES = {"binary": "log-odds", "continuous": "% improvement"}
_UNITS = {"log-odds": "log-odds of response", "% improvement": "% improvement"}


def output_of_margin(margin, output_space: str):
    """A model's output from its raw output (margin): the probability of response for log-odds,
    the margin itself for an improvement in %. Arrays in, float64 arrays out; a float for a float."""
    m = np.asarray(margin, dtype=float)
    out = 1 / (1 + np.exp(-m)) if output_space == "log-odds" else m
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True, eq=False)
class Explanation:
    """SHAP values of a set of patients, or of one patient.

    Attributes
    ----------
    values : (n, k) float array, SHAP value of each feature for each patient, in ``output_space``;
        (k,) for one patient.
    base_values : (n,) float array, the model's expected output (the same space); () for one patient.
    data : (n, k) float array, the feature values explained (NaN = missing); (k,) for one patient.
    feature_names : tuple of k feature names (``dti.cst_fa_affected``, ...).
    output_space : "log-odds" (responder models) or "% improvement" (improvement models).
    index : pandas Index of the n patient ids; None for one patient.

    Local accuracy: ``values.sum(-1) + base_values`` is the model's raw output (:attr:`margin`).
    """

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    feature_names: tuple
    output_space: str
    index: pd.Index | None = None

    def __post_init__(self):
        values = np.asarray(self.values, dtype=float)
        base = np.asarray(self.base_values, dtype=float)
        data = np.asarray(self.data, dtype=float)
        names = tuple(self.feature_names)
        if self.output_space not in _UNITS:
            raise InputError(f"unknown output space {self.output_space!r}; expected one of {list(_UNITS)}.", field="output_space")
        if values.ndim not in (1, 2) or values.shape[-1] != len(names):
            raise InputError(f"SHAP values of shape {values.shape} do not match {len(names)} feature names.", field="values")
        if data.shape != values.shape:
            raise InputError(f"feature values of shape {data.shape} do not match SHAP values of shape {values.shape}.", field="data")
        if base.shape != values.shape[:-1]:
            raise InputError(f"base values of shape {base.shape} do not match SHAP values of shape {values.shape}.", field="base_values")
        index = None if values.ndim == 1 else pd.Index(self.index if self.index is not None else range(len(values)), name="patient_id")
        if index is not None and len(index) != len(values):
            raise InputError(f"{len(index)} patient ids for {len(values)} rows of SHAP values.", field="index")
        for name, value in (("values", values), ("base_values", base), ("data", data), ("feature_names", names), ("index", index)):
            object.__setattr__(self, name, value)

    # --- shape and units ------------------------------------------------------------------------
    @property
    def is_single(self) -> bool:
        """True for the explanation of one patient (1-D values)."""
        return self.values.ndim == 1

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def __len__(self) -> int:
        return 1 if self.is_single else len(self.values)

    @property
    def unit(self) -> str:
        """The output space in words for axis titles: "log-odds of response" or "% improvement"."""
        return _UNITS[self.output_space]

    @property
    def is_log_odds(self) -> bool:
        return self.output_space == "log-odds"

    @property
    def margin(self) -> np.ndarray | float:
        """The model output the values add up to: ``values.sum(-1) + base_values``."""
        out = self.values.sum(axis=-1) + self.base_values
        return float(out) if self.is_single else out

    @property
    def output(self) -> np.ndarray | float:
        """The model output of :attr:`margin`: probability of response (log-odds) or improvement (%)."""
        return output_of_margin(self.margin, self.output_space)

    # --- selection ------------------------------------------------------------------------------
    def __getitem__(self, key) -> Explanation:
        """By patient: a patient id gives one patient's explanation; a list of ids, a boolean mask
        or a slice gives those patients."""
        if self.is_single:
            raise InputError("this explanation is of one patient already.", field="patient_id")
        if isinstance(key, str) or np.isscalar(key):
            if key not in self.index:
                raise InputError(f"no patient {key!r} in this explanation.", field="patient_id")
            i = self.index.get_loc(key)
            return Explanation(self.values[i], self.base_values[i], self.data[i], self.feature_names, self.output_space)
        if isinstance(key, slice):
            rows = np.arange(len(self.values))[key]
        else:
            key = np.asarray(key)
            rows = np.flatnonzero(key) if key.dtype == bool else self.index.get_indexer(key)
            if (rows < 0).any():
                raise InputError(f"unknown patient id(s) {list(key[rows < 0][:3])}.", field="patient_id")
        return Explanation(self.values[rows], self.base_values[rows], self.data[rows], self.feature_names, self.output_space, self.index[rows])

    def column(self, feature: str) -> pd.Series:
        """SHAP values of one feature, per patient."""
        if feature not in self.feature_names:
            raise InputError(f"unknown feature {feature!r}.", field=feature)
        j = self.feature_names.index(feature)
        if self.is_single:
            return pd.Series([self.values[j]], name=feature)
        return pd.Series(self.values[:, j], index=self.index, name=feature)

    # --- tables ---------------------------------------------------------------------------------
    def to_series(self) -> pd.Series:
        """One patient's SHAP values by feature name."""
        if not self.is_single:
            raise InputError("to_series needs one patient's explanation; select a patient first.", field="patient_id")
        return pd.Series(self.values, index=list(self.feature_names), name="shap")

    def data_series(self) -> pd.Series:
        """One patient's feature values by feature name (NaN = missing)."""
        if not self.is_single:
            raise InputError("data_series needs one patient's explanation; select a patient first.", field="patient_id")
        return pd.Series(self.data, index=list(self.feature_names), name="value")

    def frame(self) -> pd.DataFrame:
        """SHAP values as a table: patients x features."""
        if self.is_single:
            return self.to_series().to_frame().T
        return pd.DataFrame(self.values, index=self.index, columns=list(self.feature_names))

    def data_frame(self) -> pd.DataFrame:
        """The feature values explained, as a table: patients x features."""
        if self.is_single:
            return self.data_series().to_frame().T
        return pd.DataFrame(self.data, index=self.index, columns=list(self.feature_names))

    def to_frame(self) -> pd.DataFrame:
        """SHAP values with a ``base_value`` column: the CSV export."""
        return self.frame().assign(base_value=np.atleast_1d(self.base_values))

    # --- summaries ------------------------------------------------------------------------------
    def mean_abs(self, by: str = "feature") -> pd.Series:
        """Mean |SHAP| per feature, largest first; ``by="modality"``: summed over each modality's features."""
        importance = pd.Series(np.abs(np.atleast_2d(self.values)).mean(axis=0), index=list(self.feature_names)).sort_values(ascending=False)
        if by == "feature":
            return importance.rename("mean_abs_shap")
        if by == "modality":
            return importance.groupby([input_source(f) for f in importance.index]).sum().sort_values(ascending=False).rename("sum_mean_abs_shap")
        raise InputError(f"mean_abs by {by!r}; expected 'feature' or 'modality'.", field="by")

    def by_modality(self) -> Explanation:
        """Each patient's SHAP values summed within each modality: an explanation over modalities.

        Local accuracy holds as before; ``data`` is the share of the modality's features present.
        """
        modalities = list(dict.fromkeys(input_source(f) for f in self.feature_names))
        members = [[j for j, f in enumerate(self.feature_names) if input_source(f) == m] for m in modalities]
        values = np.stack([self.values[..., cols].sum(axis=-1) for cols in members], axis=-1)
        present = np.stack([np.isfinite(self.data[..., cols]).mean(axis=-1) for cols in members], axis=-1)
        return Explanation(values, self.base_values, present, modalities, self.output_space, self.index)

    @classmethod
    def mean_of(cls, explanations: list[Explanation]) -> Explanation:
        """Element-wise mean of explanations of the same patients and features (e.g. over models)."""
        first = explanations[0]
        if any(e.feature_names != first.feature_names or e.output_space != first.output_space or e.values.shape != first.values.shape for e in explanations):
            raise InputError("explanations to average must share patients, features and output space.")
        return cls(np.mean([e.values for e in explanations], axis=0), np.mean([e.base_values for e in explanations], axis=0),
                   first.data, first.feature_names, first.output_space, first.index)


def shapley_values(value: Mapping[frozenset, np.ndarray], players: Sequence[str]) -> np.ndarray:
    """Exact Shapley values of a cooperative game, for many games at once (one per fold).

    Parameters
    ----------
    value : mapping from frozenset of players to array of shape (J,)
        v(S) for every non-empty subset S of ``players`` (J games side by side). v(empty) = 0.
    players : the k players (modalities).

    Returns
    -------
    ndarray, shape (J, k)
        phi[j, i] = sum over S not containing i of |S|! (k-|S|-1)! / k! * (v(S u {i}) - v(S)).
        Efficiency: ``phi.sum(1) == v(all players)`` up to rounding.
    """
    k = len(players)
    any_value = np.asarray(next(iter(value.values())), dtype=float)
    empty = np.zeros_like(any_value)

    def v(subset: frozenset) -> np.ndarray:
        return empty if not subset else np.asarray(value[subset], dtype=float)

    phi = np.zeros(any_value.shape + (k,))
    for i, player in enumerate(players):
        others = [p for p in players if p != player]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for coalition in itertools.combinations(others, size):
                s = frozenset(coalition)
                phi[..., i] += weight * (v(s | {player}) - v(s))
    return phi
