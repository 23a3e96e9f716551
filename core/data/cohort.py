"""The one object that carries a cohort through the app: :class:`Cohort`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from core.data.raw import PatientRaw, RawSource
from core.data.schema import MODALITY_LABELS, modality_of
from core.errors import InputError


@dataclass(frozen=True)
class GroundTruth:
    """What only a synthetic cohort knows: latents, planted terms and true probabilities."""

    latents: pd.DataFrame
    terms: pd.DataFrame
    feature_effects: pd.DataFrame  # feature, modality, effect, terms, formula

    def modality_effects(self) -> pd.Series:
        """Planted contribution per modality (sum of its features' effects), largest first."""
        return self.feature_effects.groupby("modality")["effect"].sum().sort_values(ascending=False)


@dataclass
class Cohort:
    """Patients, their features by modality, outcomes, groups, raw data and provenance.

    Attributes
    ----------
    name : workspace key and display name.
    patients : DataFrame indexed by ``patient_id``: ``indication``, ``site`` and other metadata.
    features : DataFrame, same index; every column named ``<modality>.<name>``; NaN = missing.
    outcomes : DataFrame, same index: ``improvement_pct`` (continuous) and ``responder`` (bool,
        ``improvement_pct >= responder_threshold_pct``); synthetic cohorts add
        ``true_response_probability``.
    responder_threshold_pct : the documented responder threshold (% improvement).
    provenance : how it was made: ``{"kind": "synthetic", "config": {...}}`` or the uploaded files.
    ground_truth : :class:`GroundTruth` for synthetic cohorts, else None.
    raw : lazy raw-data access, or None when the raw data are not available.
    """

    name: str
    patients: pd.DataFrame
    features: pd.DataFrame
    outcomes: pd.DataFrame
    responder_threshold_pct: float
    provenance: dict = field(default_factory=dict)
    ground_truth: GroundTruth | None = None
    raw: RawSource | None = None

    def __post_init__(self):
        for label, table in (("features", self.features), ("outcomes", self.outcomes)):
            if not table.index.equals(self.patients.index):
                raise InputError(f"{label} rows do not match the patient list (index patient_id).", source=self.name)
        if self.patients.index.has_duplicates:
            dupes = self.patients.index[self.patients.index.duplicated()].unique()[:5].tolist()
            raise InputError(f"duplicate patient ids {dupes}; each patient must appear once.", source=self.name, field="patient_id")
        for column in self.features.columns:
            modality_of(column)  # raises InputError on an unprefixed name
        missing = {"improvement_pct", "responder"} - set(self.outcomes.columns)
        if missing:
            raise InputError(f"outcomes lack column(s) {sorted(missing)}.", source=self.name)

    # --- views ---------------------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        return len(self.patients)

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in the canonical order."""
        present = {modality_of(c) for c in self.features.columns}
        return [m for m in MODALITY_LABELS if m in present]

    def feature_modalities(self) -> pd.Series:
        """Modality of every feature column, derived from the names."""
        return pd.Series({c: modality_of(c) for c in self.features.columns}, name="modality")

    def features_of(self, modality: str) -> list[str]:
        return [c for c in self.features.columns if modality_of(c) == modality]

    @property
    def groups(self) -> pd.Series | None:
        """Site of each patient (for grouped cross-validation), or None."""
        return self.patients["site"] if "site" in self.patients else None

    def modality_availability(self) -> pd.DataFrame:
        """Boolean table patients x modalities: True where any feature of it is present."""
        return pd.DataFrame({m: self.features[self.features_of(m)].notna().any(axis=1) for m in self.modalities})

    def subset(self, patient_ids, name: str | None = None) -> Cohort:
        """The same cohort restricted to some patients, in their order; raw data stay reachable.

        The ground truth's per-patient tables are restricted too; its feature effects are the
        whole cohort's.
        """
        ids = pd.Index(list(patient_ids))
        unknown = ids.difference(self.patients.index)
        if len(unknown):
            raise InputError(f"no patient(s) {unknown[:5].tolist()} in this cohort.", source=self.name, field="patient_id")
        truth = self.ground_truth
        if truth is not None:
            truth = GroundTruth(truth.latents.loc[ids], truth.terms.loc[ids], truth.feature_effects)
        return Cohort(name=name or self.name, patients=self.patients.loc[ids], features=self.features.loc[ids], outcomes=self.outcomes.loc[ids],
                      responder_threshold_pct=self.responder_threshold_pct, provenance=self.provenance, ground_truth=truth, raw=self.raw)

    def measure_specs(self) -> dict:
        """The described outcome measures of this cohort: ``{outcome column: OutcomeSpec}``.

        An uploaded cohort's descriptions live in its provenance (``"measures"``: column -> spec
        fields); otherwise every outcome column named like a measure of the shipped bank is one.
        """
        from core.data.outcome_bank import load_outcome_bank, outcome_spec

        described = (self.provenance or {}).get("measures")
        if described:
            return {column: outcome_spec(entry, self.name) for column, entry in described.items() if column in self.outcomes}
        return {s.key: s for s in load_outcome_bank() if s.key in self.outcomes.columns}

    def raw_data(self, patient_id: str) -> PatientRaw:
        if self.raw is None:
            raise InputError("this cohort has no raw data attached; only its feature table is available.", source=self.name)
        if patient_id not in self.patients.index:
            raise InputError(f"no patient {patient_id!r} in this cohort.", source=self.name, field="patient_id")
        return self.raw.load(patient_id)

    @cached_property
    def digest(self) -> str:
        """sha256 of the features and outcomes: the cache key of everything derived from them.

        Computed once: a cohort's tables are not modified after it is made.
        """
        h = hashlib.sha256()
        for table in (self.features, self.outcomes[["improvement_pct", "responder"]]):
            h.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
            h.update("|".join(map(str, table.columns)).encode())
        return h.hexdigest()

    def describe(self) -> str:
        """One line for a page header: size, modalities, responder definition, source."""
        return (f"{self.n_patients} patients · modalities: {', '.join(self.modalities)} · "
                f"responder = improvement >= {self.responder_threshold_pct:g}% · source: {self.provenance.get('kind', 'unknown')}")

    def summary(self) -> pd.DataFrame:
        """One row per indication: patients, responders, mean improvement, modality coverage."""
        table = self.patients[["indication"]].join(self.outcomes[["improvement_pct", "responder"]]).join(self.modality_availability())
        grouped = table.groupby("indication")
        out = pd.DataFrame(
            {
                "patients": grouped.size(),
                "responders (%)": 100 * grouped["responder"].mean(),
                "improvement (%) mean": grouped["improvement_pct"].mean(),
                "improvement (%) SD": grouped["improvement_pct"].std(),
            }
        )
        for m in self.modalities:
            out[f"with {m} (%)"] = 100 * grouped[m].mean()
        return out.round(1)


def feature_correlations(cohort: Cohort, method: str = "spearman") -> pd.DataFrame:
    """Pairwise correlations of all features, columns ordered by modality (pairwise-complete)."""
    order = [c for m in cohort.modalities for c in cohort.features_of(m)]
    numeric = [c for c in order if pd.api.types.is_numeric_dtype(cohort.features[c])]  # text columns have no correlation
    usable = [c for c in numeric if cohort.features[c].nunique(dropna=True) > 1]
    return cohort.features[usable].corr(method=method, min_periods=20)
