"""Synthetic multimodal cohorts with a known ground truth.

How a cohort is made
--------------------
1. **Latent factors** per patient (:func:`sample_latents`): age, age-related reserve, a stroke
   lesion (its geometry sets the true CST lesion load and how much of the tract it transects),
   corticospinal integrity, cortical excitability, motor severity, tremor, levodopa response,
   and a site. Every modality is drawn from these same factors, so modalities correlate as they
   do in real cohorts (a large CST lesion lowers FA, abolishes MEPs, slows reaching and raises
   the NIHSS).
2. **Raw data** per patient, made deterministically from (seed, patient number): an FA volume
   on the MNI152 2 mm grid (:mod:`core.dti`), surface EMG with TMS MEPs and a voluntary burst,
   and 3-D reaching trajectories (:mod:`core.recordings`).
3. **Features** are computed from the raw data by :mod:`core.features`, never copied from latents.
4. **Outcome**: a linear predictor ``eta`` is a sum of documented terms (:data:`OUTCOME_TERMS`),
   each a nonlinear function of the *true* value behind one or two features, scaled by the
   config's per-modality effect strength, plus a site shift. Improvement (%) is
   ``100 * sigmoid(eta) + N(0, outcome_noise_pct)``; a responder improves by at least
   ``responder_threshold_pct``. The true response probability is therefore
   ``Phi((100 * sigmoid(eta) - threshold) / outcome_noise_pct)``, exactly.

Improvement means: for stroke, the percentage of the ARAT points missing at baseline that are
regained at 3 months; for Parkinson's disease, the percentage reduction of UPDRS-III on
stimulation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from core.anatomy import CST_WAYPOINTS_MM, load_anatomy
from core.dti import FAParameters, lesion_weight, transected_fraction
from core.errors import InputError

MODALITIES = ("dti", "emg", "kin", "clin")
INDICATIONS = {
    "stroke": "Stroke: rTMS-assisted upper-limb rehabilitation",
    "parkinsons": "Parkinson's disease: subthalamic DBS",
}
GENERATOR_VERSION = 2  # bump when the same config would give different patients or outcomes
SITE_FA_OFFSET_SD = 0.008  # scanner FA offset per site (after harmonisation)
PRESET_DIR = Path(__file__).resolve().parent.parent / "assets" / "cohorts"


@dataclass(frozen=True)
class CohortConfig:
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

    def to_dict(self) -> dict:
        """Plain JSON types (lists, not tuples), so a stored config compares equal to a fresh one."""
        return {**asdict(self), "uninformative_modalities": list(self.uninformative_modalities)}

    def digest(self) -> str:
        """Short content hash: the cache key of everything derived from this config."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict) -> CohortConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}.", source="cohort config")
        merged = {**cls().to_dict(), **data}
        for key in ("missing_rate", "effect_strength"):  # partial tables keep the other defaults
            merged[key] = {**getattr(cls(), key), **(data.get(key) or {})}
        return cls(**merged)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CohortConfig:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the cohort config: {exc}", source=path.name) from exc
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of config fields, found {type(data).__name__}.", source=path.name)
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(str(exc).removeprefix("cohort config: "), source=path.name) from exc


def presets() -> dict[str, CohortConfig]:
    """Shipped cohort configs (``assets/cohorts/*.yaml``), by file stem."""
    return {p.stem: CohortConfig.from_yaml(p) for p in sorted(PRESET_DIR.glob("*.yaml"))}


# --- latent factors ------------------------------------------------------------------------


def _lesion_geometry(rng: np.random.Generator, hemisphere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ellipsoidal subcortical lesions near the CST (centres and semi-axes, mm), one per row."""
    n = len(hemisphere)
    # A point between the corona radiata and the internal capsule, then a random axial offset.
    t = rng.uniform(0.0, 1.0, n)
    on_tract = CST_WAYPOINTS_MM[1] + t[:, None] * (CST_WAYPOINTS_MM[2] - CST_WAYPOINTS_MM[1])
    angle = rng.uniform(0, 2 * np.pi, n)
    offset = rng.uniform(0.0, 22.0, n)
    center = on_tract + np.stack([offset * np.cos(angle), offset * np.sin(angle), rng.normal(0, 4, n)], axis=1)
    center[:, 0] = np.abs(center[:, 0]) * np.where(hemisphere == "left", -1.0, 1.0)
    size = np.clip(rng.lognormal(np.log(8.0), 0.35, n), 3.0, 18.0)
    radii = size[:, None] * np.array([1.0, 1.2, 1.1]) * np.exp(rng.normal(0, 0.1, (n, 3)))
    return center, radii


def _true_cst_damage(center: np.ndarray, radii: np.ndarray, hemisphere: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True lesion load (mL) and transected fraction of the affected CST, per lesion."""
    anatomy = load_anatomy()
    load = np.zeros(len(center))
    transection = np.zeros(len(center))
    mm = {side: anatomy.voxel_mm(anatomy.cst_index[side]) for side in ("left", "right")}
    for i in range(len(center)):
        inside = lesion_weight(mm[hemisphere[i]], center[i], radii[i]) >= 0.5
        load[i] = inside.sum() * 0.008
        transection[i] = transected_fraction(anatomy, inside)
    return load, transection


def sample_latents(config: CohortConfig) -> pd.DataFrame:
    """Latent factors and true physiological values of every patient (the ground truth).

    Returns a DataFrame indexed by ``patient_id`` with, among others: ``indication``, ``site``,
    ``affected_hemisphere``, ``age``, ``reserve``, lesion geometry, ``true_lesion_load_ml``,
    ``transection``, ``cst_integrity`` (0..1), ``excitability``, ``severity`` (standardised, higher
    is worse), ``mep_present``, ``mep_amplitude_fdi_uv``, ``tremor_amplitude_mm``,
    ``levodopa_response_pct`` and the per-patient parameters of every raw recording.
    """
    rng = np.random.default_rng([config.seed, 0])
    n = int(config.n_patients)
    names = list(config.indications)
    frac = np.array([config.indications[k] for k in names], float)
    indication = np.array(names)[rng.choice(len(names), n, p=frac / frac.sum())]
    stroke = indication == "stroke"
    pd_ = ~stroke

    site = rng.integers(0, config.n_sites, n)
    site_rng = np.random.default_rng([config.seed, 0, 99])
    se = config.site_effect
    site_fa_offset = site_rng.normal(0, SITE_FA_OFFSET_SD * se, config.n_sites)
    site_emg_gain = np.exp(site_rng.normal(0, 0.15 * se, config.n_sites))
    site_outcome_shift = site_rng.normal(0, 0.25 * se, config.n_sites)

    hemisphere = np.where(rng.random(n) < 0.5, "left", "right")
    age = np.where(stroke, np.clip(rng.normal(68, 11, n), 30, 95), np.clip(rng.normal(61, 8, n), 40, 80))
    reserve = -(age - 65) / 12 + rng.normal(0, 0.7, n)

    center, radii = _lesion_geometry(rng, hemisphere)
    load, transection = np.zeros(n), np.zeros(n)
    load[stroke], transection[stroke] = _true_cst_damage(center[stroke], radii[stroke], hemisphere[stroke])
    integrity = np.where(stroke, np.clip(1 - 0.9 * transection + rng.normal(0, 0.05, n), 0, 1), 1 - np.abs(rng.normal(0, 0.05, n)))
    excitability = rng.normal(0, 1, n)
    p_mep = np.where(stroke, expit(4 * (integrity - 0.45) + 0.7 * excitability), 0.97)
    mep_present = rng.random(n) < p_mep
    amp_fdi = np.where(mep_present, np.exp(np.log(700) + 0.45 * excitability + 0.9 * (integrity - 1)), 0.0)
    amp_ecr = amp_fdi * 0.7 * np.exp(rng.normal(0, 0.5, n))
    lat_fdi = 20 + 0.05 * (age - 65) + 1.0 * (1 - integrity) + rng.normal(0, 1.0, n)
    lat_ecr = lat_fdi - 4 + rng.normal(0, 0.5, n)
    severity = np.where(stroke, 1.2 * (1 - integrity) + 0.25 * load + rng.normal(0, 0.8, n) - 0.4, rng.normal(0, 1, n))
    tremor_dominant = pd_ & (rng.random(n) < 0.45)
    tremor = np.where(
        pd_,
        np.where(tremor_dominant, rng.lognormal(np.log(2.0), 0.5, n), rng.lognormal(np.log(0.2), 0.5, n)),
        0.05,
    )
    levodopa = np.where(pd_, np.clip(rng.normal(50, 15, n), 5, 95), np.nan)

    # Age thins association white matter more than the CST (see FAParameters.cst_scale).
    cst_scale = np.clip(1 + 0.015 * reserve + np.random.default_rng([config.seed, 0, 7]).normal(0, 0.03, n), 0.85, 1.15)
    own_rng = np.random.default_rng([config.seed, 0, 8])  # variation of each measure not shared with severity
    noise = config.measurement_noise
    latents = pd.DataFrame(
        {
            "patient_number": np.arange(1, n + 1),
            "indication": indication,
            "site": [f"site-{chr(65 + s)}" for s in site],
            "site_index": site,
            "affected_hemisphere": hemisphere,
            "age": np.round(age, 1),
            "sex_male": (rng.random(n) < 0.6).astype(int),
            "reserve": reserve,
            "lesion_x_mm": np.where(stroke, center[:, 0], np.nan),
            "lesion_y_mm": np.where(stroke, center[:, 1], np.nan),
            "lesion_z_mm": np.where(stroke, center[:, 2], np.nan),
            "lesion_rx_mm": np.where(stroke, radii[:, 0], np.nan),
            "lesion_ry_mm": np.where(stroke, radii[:, 1], np.nan),
            "lesion_rz_mm": np.where(stroke, radii[:, 2], np.nan),
            "true_lesion_load_ml": load,
            "transection": transection,
            "cst_integrity": integrity,
            "excitability": excitability,
            "severity": severity,
            "mep_present": mep_present,
            "mep_amplitude_fdi_uv": amp_fdi,
            "mep_amplitude_ecr_uv": amp_ecr,
            "mep_latency_fdi_ms": lat_fdi,
            "mep_latency_ecr_ms": lat_ecr,
            "tremor_amplitude_mm": tremor,
            "true_tremor_band_power_mm2": tremor**2 / 2,
            "levodopa_response_pct": levodopa,
            # raw-recording parameters
            "wm_scale": np.clip(1 + 0.05 * reserve, 0.8, 1.2),
            "cst_scale": cst_scale,
            "fa_offset": site_fa_offset[site],
            "fa_noise_key": rng.integers(0, 2**31, n),
            "emg_gain": site_emg_gain[site],
            "rest_rms_uv": 5.0 * np.exp(rng.normal(0, 0.2, n)) * noise,
            "voluntary_rms_fdi_uv": 250 * expit(1.5 - 1.5 * severity + own_rng.normal(0, 0.4, n)),
            "voluntary_rms_ecr_uv": 200 * expit(1.5 - 1.5 * severity) * np.exp(rng.normal(0, 0.2, n)),
            "emg_spectrum_peak_hz": np.clip(95 - 8 * severity + rng.normal(0, 8, n), 50, 150),
            "reach_distance_mm": 300 * (1 - 0.25 * expit(2 * (severity - 1))),
            "reach_duration_s": np.clip(0.9 * np.exp(0.22 * severity - 0.1 * reserve + own_rng.normal(0, 0.15, n)), 0.5, 3.0),
            "submovement_fraction": np.where(stroke, 0.35 * expit(2 * (severity - 0.3)), 0.05),
            "site_outcome_shift": site_outcome_shift[site],
        },
        index=pd.Index([f"P{i:05d}" for i in range(1, n + 1)], name="patient_id"),
    )
    latents["true_cst_fa_affected"], latents["true_wm_fa_mean"] = true_fa_features(latents, config)
    return latents


def true_fa_features(latents: pd.DataFrame, config: CohortConfig) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free, site-offset-free affected-CST FA and white-matter FA: what the DTI features measure."""
    from core.dti import fa_batch

    cst_fa, wm_fa = np.full(len(latents), np.nan), np.full(len(latents), np.nan)
    records = latents.to_dict("records")
    for side, (voxels, n_cst) in feature_voxel_sets().items():
        rows = np.flatnonzero(latents["affected_hemisphere"].to_numpy() == side)
        if len(rows):
            params = [replace(fa_parameters(records[i], config), noise_scale=0.0, offset=0.0) for i in rows]
            fa = fa_batch(params, voxels)
            cst_fa[rows], wm_fa[rows] = fa[:, :n_cst].mean(axis=1), fa[:, 2 * n_cst :].mean(axis=1)
    return cst_fa, wm_fa


def clinical_features(latents: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Clinical scales and treatment parameters as a clinic records them (``clin.*`` columns)."""
    rng = np.random.default_rng([seed, 3])
    n = len(latents)
    s = latents["severity"].to_numpy()
    stroke = (latents["indication"] == "stroke").to_numpy()
    pd_ = ~stroke
    only = lambda mask, values: np.where(mask, values, np.nan)  # noqa: E731
    clin = pd.DataFrame(index=latents.index)
    clin["clin.age"] = latents["age"]
    clin["clin.sex_male"] = latents["sex_male"]
    clin["clin.indication_pd"] = pd_.astype(int)
    clin["clin.disease_duration_months"] = np.round(np.where(stroke, rng.uniform(0.1, 0.25, n), 12 * rng.uniform(5, 18, n)), 2)
    clin["clin.safe_score"] = only(stroke, np.clip(np.round(10 * expit(1.0 - 1.6 * s + rng.normal(0, 0.45, n))), 0, 10))
    clin["clin.nihss"] = only(stroke, np.clip(np.round(np.exp(1.5 + 0.55 * s + rng.normal(0, 0.3, n))), 0, 42))
    clin["clin.fm_ue"] = only(stroke, np.clip(np.round(66 * expit(1.3 - 1.6 * s + rng.normal(0, 0.35, n))), 0, 66))
    clin["clin.updrs_iii"] = only(pd_, np.clip(np.round(38 + 11 * s + rng.normal(0, 4, n)), 8, 100))
    clin["clin.levodopa_response_pct"] = np.round(latents["levodopa_response_pct"].to_numpy() + rng.normal(0, 4, n), 1)
    clin["clin.rtms_sessions"] = only(stroke, rng.choice([10, 15, 20], n))
    clin["clin.rtms_intensity_pct_rmt"] = only(stroke, 5 * np.round(rng.uniform(80, 120, n) / 5))
    clin["clin.dbs_amplitude_ma"] = only(pd_, np.round(rng.uniform(1.5, 4.0, n), 1))
    clin["clin.dbs_frequency_hz"] = only(pd_, rng.choice([130, 160, 185], n))
    # A single-indication cohort has no use for the other indication's scales (all missing).
    return clin.loc[:, clin.notna().any()]


# --- outcome model -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeTerm:
    """One planted term of the outcome's linear predictor.

    ``features`` are the feature columns whose true values the term reads. A term is the product
    of one factor per feature (see :func:`term_factors`), so an interaction has two.
    """

    name: str
    indication: str
    modalities: tuple
    features: tuple
    formula: str


OUTCOME_TERMS = (
    OutcomeTerm("cst_integrity", "stroke", ("dti",), ("dti.cst_fa_affected",), "+1.4 tanh((true affected-CST FA - 0.50) / 0.065)"),
    OutcomeTerm("mep_stroke", "stroke", ("emg",), ("emg.mep_amplitude_fdi_uv",), "+0.7 tanh(ln(max(MEP amplitude, 100 uV) / 500 uV) / 0.6) (no MEP: -0.69)"),
    OutcomeTerm("reach_speed", "stroke", ("kin",), ("kin.peak_velocity_m_s",), "+0.8 tanh((true peak velocity m/s - 0.58) / 0.19)"),
    OutcomeTerm("age_stroke", "stroke", ("clin",), ("clin.age",), "-0.035 (age - 68)"),
    OutcomeTerm("nihss", "stroke", ("clin",), ("clin.nihss",), "-1.0 tanh((NIHSS - 6) / 6)"),
    OutcomeTerm("rtms_dose_x_mep", "stroke", ("clin", "emg"), ("clin.rtms_sessions", "emg.mep_amplitude_fdi_uv"), "+0.2 (sessions - 15) x (1 + tanh(ln(max(MEP amplitude, 100 uV) / 500 uV) / 0.6)) / 2"),
    OutcomeTerm("levodopa_response", "parkinsons", ("clin",), ("clin.levodopa_response_pct",), "+0.05 (levodopa response % - 50)"),
    OutcomeTerm("age_pd", "parkinsons", ("clin",), ("clin.age",), "-0.03 (age - 61)"),
    OutcomeTerm("tremor", "parkinsons", ("kin",), ("kin.tremor_band_power_mm2",), "+1.0 (tanh(tremor power mm^2 / 1.0) - 0.3)"),
    OutcomeTerm("white_matter", "parkinsons", ("dti",), ("dti.wm_fa_mean",), "+20 (true WM FA - 0.477)"),
    OutcomeTerm("mep_pd", "parkinsons", ("emg",), ("emg.mep_amplitude_fdi_uv",), "+0.4 tanh(ln(MEP amplitude / 700 uV))"),
    OutcomeTerm("dbs_amplitude_x_tremor", "parkinsons", ("clin", "kin"), ("clin.dbs_amplitude_ma", "kin.tremor_band_power_mm2"), "+1.0 (amplitude mA - 2.75) x tanh(tremor power)"),
)
"""Each term reads the true (noise-free, offset-free) value behind the feature that best measures
its cause, so a perfect model would credit that feature; features that measure the same cause less
directly (lesion load, MEP latency, movement time, FM-UE) carry no planted effect of their own."""


def term_factors(latents: pd.DataFrame, clinical: pd.DataFrame, config: CohortConfig) -> dict[str, tuple[np.ndarray, ...]]:
    """Per term, one factor per feature it reads; the term is their product (0 for the other indication).

    Strength scaling and the indication mask are applied to the first factor.
    """
    lat = latents
    stroke = (lat["indication"] == "stroke").to_numpy()

    def clin(name: str) -> np.ndarray:  # a single-indication cohort lacks the other's scales
        return clinical[name].to_numpy() if name in clinical else np.full(len(lat), np.nan)

    amplitude_uv = lat["mep_amplitude_fdi_uv"].to_numpy()
    # Graded over the range of real MEPs, so the amplitude says more than presence alone.
    mep_grade = np.tanh(np.log(np.maximum(amplitude_uv, 100.0) / 500) / 0.6)  # -0.99 without a MEP
    tremor_power = lat["true_tremor_band_power_mm2"].to_numpy()
    peak_velocity_m_s = 1.875 * lat["reach_distance_mm"].to_numpy() / lat["reach_duration_s"].to_numpy() / 1000  # minimum jerk
    with np.errstate(divide="ignore"):
        log_amp = np.log(np.maximum(amplitude_uv, 1.0) / 700)
    raw = {
        "cst_integrity": (1.4 * np.tanh((lat["true_cst_fa_affected"].to_numpy() - 0.50) / 0.065),),
        "mep_stroke": (0.7 * mep_grade,),
        "reach_speed": (0.8 * np.tanh((peak_velocity_m_s - 0.58) / 0.19),),
        "age_stroke": (-0.035 * (lat["age"].to_numpy() - 68),),
        "nihss": (-1.0 * np.tanh((clin("clin.nihss") - 6) / 6),),
        "rtms_dose_x_mep": (0.2 * (clin("clin.rtms_sessions") - 15), (1 + mep_grade) / 2),
        "levodopa_response": (0.05 * (lat["levodopa_response_pct"].to_numpy() - 50),),
        "age_pd": (-0.03 * (lat["age"].to_numpy() - 61),),
        "tremor": (1.0 * (np.tanh(tremor_power / 1.0) - 0.3),),
        "white_matter": (20 * (lat["true_wm_fa_mean"].to_numpy() - 0.477),),
        "mep_pd": (0.4 * np.tanh(log_amp),),
        "dbs_amplitude_x_tremor": (1.0 * (clin("clin.dbs_amplitude_ma") - 2.75), np.tanh(tremor_power)),
    }
    factors = {}
    for term in OUTCOME_TERMS:
        strength = float(np.prod([config.strength(m) for m in term.modalities]))
        mask = stroke if term.indication == "stroke" else ~stroke
        first, *rest = (np.nan_to_num(f) for f in raw[term.name])
        factors[term.name] = (np.where(mask, strength * first, 0.0), *(np.where(mask, f, 0.0) for f in rest))
    return factors


def terms_from_factors(factors: dict[str, tuple[np.ndarray, ...]], index: pd.Index) -> pd.DataFrame:
    """Value of every planted term for every patient: the product of its factors."""
    return pd.DataFrame({name: np.prod(np.stack(f), axis=0) for name, f in factors.items()}, index=index)


def outcome_terms(latents: pd.DataFrame, clinical: pd.DataFrame, config: CohortConfig) -> pd.DataFrame:
    """Value of every planted term for every patient (0 for the other indication)."""
    return terms_from_factors(term_factors(latents, clinical, config), latents.index)


def outcomes_from_terms(terms: pd.DataFrame, latents: pd.DataFrame, config: CohortConfig) -> pd.DataFrame:
    """Improvement (%), responder label and the exact true response probability."""
    eta = terms.sum(axis=1).to_numpy() + latents["site_outcome_shift"].to_numpy()
    expected = 100 * expit(eta)
    rng = np.random.default_rng([config.seed, 4])
    improvement = np.clip(expected + rng.normal(0, config.outcome_noise_pct, len(eta)), -50, 100)
    threshold = config.responder_threshold_pct
    return pd.DataFrame(
        {
            "improvement_pct": np.round(improvement, 2),
            "responder": improvement >= threshold,
            "eta": eta,
            "expected_improvement_pct": expected,
            "true_response_probability": norm.sf((threshold - expected) / config.outcome_noise_pct),
        },
        index=terms.index,
    )


def term_shapley(factors: tuple[np.ndarray, ...], applies: np.ndarray) -> list[np.ndarray]:
    """Exact interventional Shapley value of each factor of a product term, per patient.

    Within the indication the term ``applies`` to, one factor gets the term minus its mean; for
    ``u * w`` (independent within the indication) ``phi_u = (u - U)(w + W) / 2`` and
    ``phi_w = (w - W)(u + U) / 2``, with ``U, W`` the means there, so ``phi_u + phi_w = u w - U W``.
    Patients of the other indication get 0: the difference between indications is the
    indication's, not the feature's.
    """
    if not applies.any():  # a single-indication cohort: the other indication's terms are all 0
        return [np.zeros_like(f) for f in factors]
    if len(factors) == 1:
        (u,) = factors
        return [np.where(applies, u - u[applies].mean(), 0.0)]
    if len(factors) != 2:
        raise ValueError("planted terms read one or two features")
    u, w = factors
    big_u, big_w = u[applies].mean(), w[applies].mean()
    return [np.where(applies, (u - big_u) * (w + big_w) / 2, 0.0), np.where(applies, (w - big_w) * (u + big_u) / 2, 0.0)]


def planted_effects(factors: dict[str, tuple[np.ndarray, ...]], indication: np.ndarray) -> pd.DataFrame:
    """True effect of each feature and modality: mean |Shapley value| of its terms on the eta scale.

    This is what a perfect model's mean |SHAP| would show on the scale of eta. The responder's
    log-odds are a monotone function of eta (about 2.6 x eta near the responder threshold), so the
    ranking carries over to SHAP values of the responder model.
    """
    rows = []
    for term in OUTCOME_TERMS:
        applies = np.asarray(indication) == term.indication
        if not applies.any():
            continue
        for feature, phi in zip(term.features, term_shapley(factors[term.name], applies)):
            rows.append({"feature": feature, "modality": feature.split(".", 1)[0], "term": term.name, "phi": phi, "formula": term.formula})
    by_feature = {}
    for row in rows:
        entry = by_feature.setdefault(row["feature"], {"feature": row["feature"], "modality": row["modality"], "phi": 0.0, "terms": [], "formula": []})
        entry["phi"] = entry["phi"] + row["phi"]  # a feature in two terms: its Shapley values add
        entry["terms"].append(row["term"])
        entry["formula"].append(row["formula"])
    table = pd.DataFrame(
        [{"feature": e["feature"], "modality": e["modality"], "effect": float(np.mean(np.abs(e["phi"]))), "terms": ", ".join(e["terms"]), "formula": " ; ".join(e["formula"])} for e in by_feature.values()]
    )
    return table.sort_values("effect", ascending=False, ignore_index=True)


# --- raw-recording parameters -----------------------------------------------------------------


def fa_parameters(row, config: CohortConfig) -> FAParameters:
    """FA-map parameters of one patient (a row of :func:`sample_latents`, as Series or dict)."""
    lesion = row["indication"] == "stroke"
    return FAParameters(
        noise_key=int(row["fa_noise_key"]),
        wm_scale=float(row["wm_scale"]),
        offset=float(row["fa_offset"]),
        affected_hemisphere=str(row["affected_hemisphere"]),
        lesion_center_mm=tuple(float(row[f"lesion_{a}_mm"]) for a in "xyz") if lesion else None,
        lesion_radii_mm=tuple(float(row[f"lesion_r{a}_mm"]) for a in "xyz") if lesion else None,
        transection=float(row["transection"]),
        noise_scale=config.measurement_noise,
        cst_scale=float(row["cst_scale"]),
    )


def emg_parameters(latents: pd.DataFrame) -> dict:
    """Arguments of :func:`core.recordings.make_emg` for these patients (muscles: fdi, ecr)."""
    col = lambda name: latents[name].to_numpy(dtype=float)  # noqa: E731
    return {
        "mep_amplitude_uv": np.stack([col("mep_amplitude_fdi_uv"), col("mep_amplitude_ecr_uv")], axis=1),
        "mep_latency_ms": np.stack([col("mep_latency_fdi_ms"), col("mep_latency_ecr_ms")], axis=1),
        "rest_rms_uv": col("rest_rms_uv"),
        "voluntary_rms_uv": np.stack([col("voluntary_rms_fdi_uv"), col("voluntary_rms_ecr_uv")], axis=1),
        "spectrum_peak_hz": col("emg_spectrum_peak_hz"),
        "gain": col("emg_gain"),
    }


def reaching_parameters(latents: pd.DataFrame) -> dict:
    """Arguments of :func:`core.recordings.make_reaching` for these patients."""
    col = lambda name: latents[name].to_numpy(dtype=float)  # noqa: E731
    return {
        "distance_mm": col("reach_distance_mm"),
        "duration_s": col("reach_duration_s"),
        "submovement_fraction": col("submovement_fraction"),
        "tremor_amplitude_mm": col("tremor_amplitude_mm"),
    }


def missing_modalities(config: CohortConfig, index: pd.Index) -> pd.DataFrame:
    """Boolean table (patients x modalities): True where the patient lacks that modality."""
    rng = np.random.default_rng([config.seed, 5])
    return pd.DataFrame(
        {m: rng.random(len(index)) < float(config.missing_rate.get(m, 0.0)) for m in MODALITIES},
        index=index,
    )


# --- raw data and cohort assembly -------------------------------------------------------------


def feature_voxel_sets() -> dict:
    """Per affected side, the voxels the DTI features read: affected CST, its mirror, WM sample."""
    from core.dti import voxel_set

    anatomy = load_anatomy()
    sets = {}
    for side, other in (("left", "right"), ("right", "left")):
        index = np.concatenate([anatomy.cst_index[side], anatomy.cst_index[other], anatomy.wm_sample_index])
        sets[side] = (voxel_set(index, anatomy), len(anatomy.cst_index[side]))
    return sets


def _raw_feature_chunk(args: tuple) -> pd.DataFrame:
    """DTI, EMG and kinematic features of a chunk of patients, from freshly generated raw data.

    Only what the features read is generated: all EMG and kinematic samples, but only the FA
    voxels of the two CSTs and the white-matter sample (the same values the full map shows).
    The voxel sets come with the arguments, so workers never load the MNI templates.
    """
    from core import features, recordings
    from core.dti import fa_batch

    config_dict, latents, voxel_sets = args
    config = CohortConfig.from_dict(config_dict)
    numbers = latents["patient_number"].to_numpy()

    fa_params = [fa_parameters(row, config) for row in latents.to_dict("records")]
    tables = []
    for side, (voxels, n_cst) in voxel_sets.items():  # grouped by affected side: pairs stay aligned
        rows = np.flatnonzero(latents["affected_hemisphere"].to_numpy() == side)
        if len(rows) == 0:
            continue
        fa = fa_batch([fa_params[i] for i in rows], voxels)
        tables.append(features.dti_feature_table(fa[:, :n_cst], fa[:, n_cst : 2 * n_cst], fa[:, 2 * n_cst :], latents.index[rows]))
    dti = pd.concat(tables).reindex(latents.index)

    emg_rngs = [recordings.patient_rng(config.seed, k, 1) for k in numbers]
    sweeps, voluntary = recordings.make_emg(emg_rngs, **emg_parameters(latents))
    emg = features.emg_feature_table(sweeps, voluntary, recordings.EMG_FS_HZ, recordings.SWEEP_START_MS, recordings.EMG_MUSCLES, latents.index)

    kin_rngs = [recordings.patient_rng(config.seed, k, 2) for k in numbers]
    position = recordings.make_reaching(kin_rngs, **reaching_parameters(latents))
    kin = features.kinematic_feature_table(position, recordings.KIN_FS_HZ, latents.index)
    return pd.concat([dti, emg, kin], axis=1)


class SyntheticRawSource:
    """Regenerates any patient's raw data on demand from the config and the latents."""

    def __init__(self, config: CohortConfig, latents: pd.DataFrame, missing: pd.DataFrame):
        self.config = config
        self.latents = latents
        self.missing = missing
        self.donors = donor_patients(config, latents)

    def _source(self, patient_id: str, modality: str) -> str:
        """Whose raw data this patient's modality shows: a donor's for an uninformative modality."""
        return self.donors[modality][patient_id] if modality in self.donors else patient_id

    def load(self, patient_id: str):
        from core import recordings
        from core.cohort import PatientRaw
        from core.dti import fa_volume, lesion_mask

        gone = self.missing.loc[patient_id]
        raw = PatientRaw(patient_id=patient_id, affine=load_anatomy().affine)
        if not gone["dti"]:
            params = fa_parameters(self.latents.loc[self._source(patient_id, "dti")], self.config)
            raw.fa = fa_volume(params)
            raw.lesion_mask = lesion_mask(params)
        if not gone["emg"]:
            one = self.latents.loc[[self._source(patient_id, "emg")]]
            number = int(one["patient_number"].iloc[0])
            sweeps, voluntary = recordings.make_emg([recordings.patient_rng(self.config.seed, number, 1)], **emg_parameters(one))
            raw.emg = recordings.EMGRecording(recordings.EMG_FS_HZ, recordings.EMG_MUSCLES, sweeps[0], recordings.SWEEP_START_MS, voluntary[0])
        if not gone["kin"]:
            one = self.latents.loc[[self._source(patient_id, "kin")]]
            number = int(one["patient_number"].iloc[0])
            position = recordings.make_reaching([recordings.patient_rng(self.config.seed, number, 2)], **reaching_parameters(one))
            raw.trajectory = recordings.Trajectory(recordings.KIN_FS_HZ, position[0])
        return raw


def donor_patients(config: CohortConfig, latents: pd.DataFrame) -> dict[str, pd.Series]:
    """Per uninformative modality, the patient (same indication) whose raw data each patient gets."""
    donors = {}
    indication = latents["indication"].to_numpy()
    for modality in config.uninformative_modalities:
        rng = np.random.default_rng([config.seed, 9, MODALITIES.index(modality)])
        donor = latents.index.to_numpy().copy()
        for value in np.unique(indication):
            members = np.flatnonzero(indication == value)
            donor[members] = latents.index.to_numpy()[rng.permutation(members)]
        donors[modality] = pd.Series(donor, index=latents.index)
    return donors


CHUNK_SIZE = 500


def generate_cohort(config: CohortConfig, *, progress=None, n_jobs: int = -1):
    """Make a synthetic :class:`~core.cohort.Cohort` from a config.

    ``progress(done, total)`` reports chunks of :data:`CHUNK_SIZE` patients as they finish.
    The result does not depend on ``n_jobs`` or the chunking.
    """
    from core.cohort import Cohort, GroundTruth
    from core.parallel import parallel_map

    latents = sample_latents(config)
    clinical = clinical_features(latents, config.seed)
    voxel_sets = feature_voxel_sets()
    chunks = [(config.to_dict(), latents.iloc[i : i + CHUNK_SIZE], voxel_sets) for i in range(0, len(latents), CHUNK_SIZE)]
    jobs = n_jobs if len(chunks) > 2 else 1  # worker start-up outweighs small cohorts
    measured = pd.concat(parallel_map(_raw_feature_chunk, chunks, n_jobs=jobs, progress=progress))
    for modality, donor in donor_patients(config, latents).items():
        columns = [c for c in measured.columns if c.startswith(modality + ".")]
        measured[columns] = measured.loc[donor.to_numpy(), columns].to_numpy()
    features = pd.concat([measured, clinical], axis=1)

    missing = missing_modalities(config, latents.index)
    for modality in MODALITIES:
        columns = [c for c in features.columns if c.startswith(modality + ".")]
        features.loc[missing[modality].to_numpy(), columns] = np.nan

    factors = term_factors(latents, clinical, config)
    terms = terms_from_factors(factors, latents.index)
    outcomes = outcomes_from_terms(terms, latents, config)
    if "stroke" in config.indications:
        outcomes["arat_3mo"] = arat_after_recovery(latents, outcomes["improvement_pct"], config.seed)
    patients = latents[["patient_number", "indication", "site", "affected_hemisphere"]].copy()
    patients["arat_baseline"] = arat_baseline(latents, config.seed)
    return Cohort(
        name=config.name,
        patients=patients,
        features=features,
        outcomes=outcomes[[c for c in outcomes.columns if c not in ("eta", "expected_improvement_pct")]],
        responder_threshold_pct=config.responder_threshold_pct,
        provenance={"kind": "synthetic", "config": config.to_dict(), "config_digest": config.digest(), "generator_version": GENERATOR_VERSION},
        ground_truth=GroundTruth(latents=latents, terms=terms, feature_effects=planted_effects(factors, latents["indication"].to_numpy())),
        raw=SyntheticRawSource(config, latents, missing),
    )


# ARAT at baseline = 57 sigmoid(ARAT_INTERCEPT - ARAT_SLOPE x severity + noise). Calibrated so that
# PREP2 scores ~75% on synthetic stroke patients, as published (see tests/test_synth.py).
ARAT_INTERCEPT = 2.8
ARAT_SLOPE = 3.2


def arat_baseline(latents: pd.DataFrame, seed: int) -> pd.Series:
    """Action Research Arm Test (0-57) in the first days after stroke; NaN for Parkinson's."""
    rng = np.random.default_rng([seed, 6])
    s = latents["severity"].to_numpy()
    arat = np.clip(np.round(57 * expit(ARAT_INTERCEPT - ARAT_SLOPE * s + rng.normal(0, 0.35, len(s)))), 0, 57)
    return pd.Series(np.where(latents["indication"] == "stroke", arat, np.nan), index=latents.index, name="arat_baseline")


def arat_after_recovery(latents: pd.DataFrame, improvement_pct: pd.Series, seed: int) -> pd.Series:
    """ARAT at 3 months: baseline plus the improved share of the points missing at baseline."""
    base = arat_baseline(latents, seed)
    regained = (57 - base) * np.clip(improvement_pct, 0, 100) / 100
    return np.round(base + regained).rename("arat_3mo")
