"""The one list of modalities and outcomes, and how feature names carry their modality.

Feature names carry their modality as a prefix (``dti.``, ``emg.``, ``kin.``, ``clin.``); the
modality of a column is always read from its name (:func:`modality_of`), never from a second list.
"""

from __future__ import annotations

from core.errors import InputError

MODALITY_LABELS = {"dti": "Diffusion MRI (DTI)", "emg": "EMG / TMS", "kin": "Kinematics", "clin": "Clinical"}
MODALITIES = tuple(MODALITY_LABELS)  # the canonical order

# Outcome columns a model can predict, and their kind.
OUTCOMES = {"responder": "binary", "improvement_pct": "continuous"}
OUTCOME_LABELS = {"responder": "Responder (binary)", "improvement_pct": "Improvement % (continuous)"}

FEATURE_DESCRIPTIONS = {
    "dti.cst_fa_affected": "Mean FA of the corticospinal tract, affected hemisphere",
    "dti.cst_fa_unaffected": "Mean FA of the corticospinal tract, unaffected hemisphere",
    "dti.cst_fa_asymmetry": "CST FA asymmetry (unaffected - affected) / (unaffected + affected)",
    "dti.cst_lesion_load_ml": "Volume of the affected CST with FA below 55% of its mirror voxel (mL)",
    "dti.wm_fa_mean": "Mean FA of deep white matter outside the CST",
    "emg.mep_present": "MEP present in FDI or ECR (>= 50 µV in >= 5 of 10 trials)",
    "emg.mep_amplitude_fdi_uv": "Mean MEP peak-to-peak amplitude, FDI (µV)",
    "emg.mep_latency_fdi_ms": "MEP onset latency, FDI (ms)",
    "emg.mep_amplitude_ecr_uv": "Mean MEP peak-to-peak amplitude, ECR (µV)",
    "emg.rms_fdi_uv": "RMS of voluntary FDI EMG, 20-450 Hz (µV)",
    "emg.median_freq_fdi_hz": "Median frequency of voluntary FDI EMG (Hz)",
    "kin.peak_velocity_m_s": "Median peak hand speed of reaches (m/s)",
    "kin.movement_time_s": "Median reach duration (s)",
    "kin.sparc": "Median spectral arc length of reaches (more negative = less smooth)",
    "kin.tremor_band_power_mm2": "Hand position power in the 4-6 Hz tremor band (mm^2)",
    "clin.age": "Age (years)",
    "clin.sex_male": "Sex (1 = male)",
    "clin.indication_pd": "Indication (1 = Parkinson's disease / DBS, 0 = stroke / rTMS)",
    "clin.disease_duration_months": "Time since stroke or PD diagnosis (months)",
    "clin.safe_score": "SAFE score: shoulder abduction + finger extension MRC grades (0-10)",
    "clin.nihss": "NIH Stroke Scale (0-42)",
    "clin.fm_ue": "Fugl-Meyer upper extremity (0-66)",
    "clin.updrs_iii": "MDS-UPDRS part III, off medication (0-132)",
    "clin.levodopa_response_pct": "Levodopa challenge: UPDRS-III improvement (%)",
    "clin.rtms_sessions": "rTMS sessions prescribed",
    "clin.rtms_intensity_pct_rmt": "rTMS intensity (% of resting motor threshold)",
    "clin.dbs_amplitude_ma": "DBS amplitude (mA)",
    "clin.dbs_frequency_hz": "DBS frequency (Hz)",
}


def outcome_kind(outcome: str) -> str:
    """"binary" or "continuous"; an InputError naming the outcomes there are otherwise."""
    if outcome not in OUTCOMES:
        raise InputError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOMES)}.", field="outcome")
    return OUTCOMES[outcome]


# Model inputs that are not cohort features: the stacked model reads the deep fusion model's
# out-of-fold logit, named "fusion.logit" and grouped under "fusion" in its explanations.
DERIVED_INPUT_LABELS = {"fusion": "Deep fusion (raw data)"}
FUSION_LOGIT = "fusion.logit"
INPUT_LABELS = {**MODALITY_LABELS, **DERIVED_INPUT_LABELS}


def input_source(name: str) -> str:
    """What a model input stands for: a modality for a feature (``"dti.cst_fa_affected"`` -> ``"dti"``)
    or for a modality's own name (explanations over modalities), ``"fusion"`` for ``"fusion.logit"``."""
    if name in INPUT_LABELS:
        return name
    prefix = name.partition(".")[0]
    return prefix if prefix in DERIVED_INPUT_LABELS else modality_of(name)


def modality_of(feature: str) -> str:
    """The modality prefix of a feature name: ``"dti.cst_fa_affected"`` -> ``"dti"``."""
    prefix, sep, rest = feature.partition(".")
    if not sep or not rest or prefix not in MODALITY_LABELS:
        raise InputError(
            f"feature name {feature!r} does not start with a modality prefix; "
            f"expected one of {', '.join(p + '.' for p in MODALITY_LABELS)}",
            field=feature,
        )
    return prefix
