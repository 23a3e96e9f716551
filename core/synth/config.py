"""What defines a synthetic cohort (:class:`CohortConfig`) and the shipped presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from core.config import Settings
from core.data.schema import MODALITIES
from core.errors import InputError

INDICATIONS = {
    "stroke": "Stroke: rTMS-assisted upper-limb rehabilitation",
    "parkinsons": "Parkinson's disease: subthalamic DBS",
}


GENERATOR_VERSION = 3  # bump when the same config would give different patients or outcomes
SITE_FA_OFFSET_SD = 0.008  # scanner FA offset per site (after harmonisation)
SITE_OUTCOME_SHIFT_SD = 0.25  # outcome shift per site on the logit scale, at site_effect 1
PRESET_DIR = Path(__file__).resolve().parents[2] / "assets" / "cohorts"


@dataclass(frozen=True)
class CohortConfig(Settings):
    """Everything that defines a synthetic cohort; the same config gives the same cohort.

    Parameters
    ----------
    name : label shown in the app and used as the workspace key.
    n_patients : number of patients (10 .. 100,000).
    seed : random seed; every random draw derives from it.
    indications : fraction of patients per indication, keys from :data:`INDICATIONS`.
    n_sites : number of recording sites (1 .. 20).
    site_effect : scale of site differences (0 = none; 1 = FA offset SD 0.008, EMG gain SD
        15%, outcome shift SD 0.25 logit).
    missing_rate : per modality, the fraction of patients without that modality (0 .. 0.9).
    effect_strength : per modality, the multiplier of its planted outcome terms (0 = no effect).
    measurement_noise : multiplier of the raw-data noise (FA voxel noise, EMG background).
    outcome_noise_pct : SD of the improvement around its expected value, in percentage points.
    responder_threshold_pct : improvement (%) from which a patient counts as a responder.
    uninformative_modalities : imaging/recording modalities (of dti, emg, kin) whose raw data come
        from another patient of the same indication, so they carry no information about this
        patient's outcome: a negative control for ablation (with their effect strength at 0).
    lesion_position_effect : logit effect (0 .. 5) of where a stroke lesion sits front to back
        (the ``lesion_position`` term): visible in the FA map, summarised by no engineered feature.
        0 leaves the term out.
    """

    name: str = "synthetic"
    n_patients: int = 2000
    seed: int = 0
    indications: dict = field(default_factory=lambda: {"stroke": 0.5, "parkinsons": 0.5})
    n_sites: int = 3
    site_effect: float = 1.0
    missing_rate: dict = field(default_factory=lambda: {"dti": 0.10, "emg": 0.10, "kin": 0.05, "clin": 0.0})
    effect_strength: dict = field(default_factory=lambda: {"dti": 1.0, "emg": 1.0, "kin": 1.0, "clin": 1.0})
    measurement_noise: float = 1.0
    outcome_noise_pct: float = 15.0
    responder_threshold_pct: float = 50.0
    uninformative_modalities: tuple = ()
    lesion_position_effect: float = 0.0

    SOURCE: ClassVar[str] = "cohort config"

    def __post_init__(self):
        object.__setattr__(self, "uninformative_modalities", tuple(sorted(self.uninformative_modalities or ())))
        problems = []
        if set(self.uninformative_modalities) - {"dti", "emg", "kin"}:
            problems.append(f"uninformative_modalities must be some of dti, emg, kin, found {list(self.uninformative_modalities)}")
        if not 10 <= int(self.n_patients) <= 100_000:
            problems.append(f"n_patients must be 10..100000, found {self.n_patients}")
        unknown = set(self.indications) - set(INDICATIONS)
        if unknown:
            problems.append(f"unknown indication(s) {sorted(unknown)}; expected some of {list(INDICATIONS)}")
        if not self.indications or sum(self.indications.values()) <= 0 or min(self.indications.values()) < 0:
            problems.append(f"indications need non-negative fractions with a positive sum, found {self.indications}")
        if not 1 <= int(self.n_sites) <= 20:
            problems.append(f"n_sites must be 1..20, found {self.n_sites}")
        for key, table, lo, hi in (("missing_rate", self.missing_rate, 0.0, 0.9), ("effect_strength", self.effect_strength, 0.0, 5.0)):
            if set(table) - set(MODALITIES):
                problems.append(f"{key} has unknown modalities {sorted(set(table) - set(MODALITIES))}; expected {list(MODALITIES)}")
            bad = {k: v for k, v in table.items() if not lo <= float(v) <= hi}
            if bad:
                problems.append(f"{key} values must be within {lo}..{hi}, found {bad}")
        if not 0.0 <= float(self.lesion_position_effect) <= 5.0:
            problems.append(f"lesion_position_effect must be within 0..5, found {self.lesion_position_effect}")
        for key in ("site_effect", "measurement_noise"):
            if not 0.0 <= float(getattr(self, key)) <= 5.0:
                problems.append(f"{key} must be within 0..5, found {getattr(self, key)}")
        if not 0.5 <= float(self.outcome_noise_pct) <= 50:
            problems.append(f"outcome_noise_pct must be within 0.5..50, found {self.outcome_noise_pct}")
        if not 1 <= float(self.responder_threshold_pct) <= 99:
            problems.append(f"responder_threshold_pct must be within 1..99, found {self.responder_threshold_pct}")
        if problems:
            raise InputError("; ".join(problems) + ".", source="cohort config")

    def strength(self, modality: str) -> float:
        return float(self.effect_strength.get(modality, 1.0))

    @classmethod
    def _completed(cls, data: dict) -> dict:
        merged = {**cls().to_dict(), **data}
        for key in ("missing_rate", "effect_strength"):  # partial tables keep the other defaults
            merged[key] = {**getattr(cls(), key), **(data.get(key) or {})}
        return merged


def presets() -> dict[str, CohortConfig]:
    """Shipped cohort configs (``assets/cohorts/*.yaml``), by file stem."""
    return {p.stem: CohortConfig.from_yaml(p) for p in sorted(PRESET_DIR.glob("*.yaml"))}
