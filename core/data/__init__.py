"""The data model: :class:`Cohort`, its raw per-patient data, and the schema (the one list of
modalities and outcomes, and feature names that carry their modality)."""

from core.data.cohort import Cohort, GroundTruth, feature_correlations
from core.data.outcome_bank import OutcomeSpec, described_outcome, load_outcome_bank
from core.data.raw import EMGRecording, PatientRaw, RawSource, Trajectory
from core.data.schema import FEATURE_DESCRIPTIONS, MODALITIES, MODALITY_LABELS, OUTCOME_LABELS, OUTCOMES, modality_of, outcome_kind

__all__ = [
    "Cohort", "GroundTruth", "feature_correlations",
    "PatientRaw", "RawSource", "EMGRecording", "Trajectory",
    "MODALITIES", "MODALITY_LABELS", "FEATURE_DESCRIPTIONS", "OUTCOMES", "OUTCOME_LABELS", "outcome_kind", "modality_of",
    "OutcomeSpec", "load_outcome_bank", "described_outcome",
]
