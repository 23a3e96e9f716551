"""The planted outcome: documented terms of the true values behind the features, their exact
Shapley values (the planted effects), and the ARAT scores PREP2 is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from core.synth.config import SITE_OUTCOME_SHIFT_SD, CohortConfig


@dataclass(frozen=True)
class OutcomeTerm:
    """One planted term of the outcome's linear predictor.

    ``features`` are the feature columns whose true values the term reads. A term is the product
    of one factor per feature (see :func:`term_factors`), so an interaction has two. A term with no
    features reads something only the raw data show (``raw_only``); it is part of the outcome only
    when its config switch is on.
    """

    name: str
    indication: str
    modalities: tuple
    features: tuple
    formula: str
    raw_only: bool = False


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
    OutcomeTerm("lesion_position", "stroke", ("dti",), (), "+lesion_position_effect x tanh((lesion centre y mm + 14) / 8): lesions in front of the posterior limb of the internal capsule spare more (raw FA map only)", raw_only=True),
)


"""Each term reads the true (noise-free, offset-free) value behind the feature that best measures
its cause, so a perfect model would credit that feature; features that measure the same cause less
directly (lesion load, MEP latency, movement time, FM-UE) carry no planted effect of their own."""


# What each feature measures most directly, among the latent factors of sample_latents. Features of
# one cause are correlated, so a model spreads the cause's credit over them: importance is judged by
# cause as well as by feature (core.evaluation.ground_truth.cause_recovery).
CAUSES = {
    "cst_integrity": "Corticospinal tract integrity",
    "mep_size": "Corticospinal excitability (MEP size)",
    "motor_severity": "Motor severity",
    "white_matter": "White-matter reserve",
    "tremor": "Tremor",
    "age": "Age",
    "levodopa_response": "Levodopa response",
    "rtms_dose": "rTMS dose",
    "dbs_amplitude": "DBS amplitude",
    "none": "No planted cause",
}
FEATURE_CAUSES = {
    "dti.cst_fa_affected": "cst_integrity",
    "dti.cst_fa_asymmetry": "cst_integrity",
    "dti.cst_lesion_load_ml": "cst_integrity",
    "emg.mep_latency_fdi_ms": "cst_integrity",
    "dti.cst_fa_unaffected": "white_matter",
    "dti.wm_fa_mean": "white_matter",
    "emg.mep_present": "mep_size",
    "emg.mep_amplitude_fdi_uv": "mep_size",
    "emg.mep_amplitude_ecr_uv": "mep_size",
    "emg.rms_fdi_uv": "motor_severity",
    "emg.median_freq_fdi_hz": "motor_severity",
    "kin.peak_velocity_m_s": "motor_severity",
    "kin.movement_time_s": "motor_severity",
    "kin.sparc": "motor_severity",
    "clin.safe_score": "motor_severity",
    "clin.nihss": "motor_severity",
    "clin.fm_ue": "motor_severity",
    "clin.updrs_iii": "motor_severity",
    "kin.tremor_band_power_mm2": "tremor",
    "clin.age": "age",
    "clin.levodopa_response_pct": "levodopa_response",
    "clin.rtms_sessions": "rtms_dose",
    "clin.dbs_amplitude_ma": "dbs_amplitude",
    "clin.sex_male": "none",
    "clin.indication_pd": "none",
    "clin.disease_duration_months": "none",
    "clin.rtms_intensity_pct_rmt": "none",
    "clin.dbs_frequency_hz": "none",
}


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
        "lesion_position": (config.lesion_position_effect * np.tanh((lat["lesion_y_mm"].to_numpy() + 14.0) / 8.0),),
    }
    factors = {}
    for term in OUTCOME_TERMS:
        if term.raw_only and not config.lesion_position_effect:
            continue  # switched off: the term is not part of this cohort's outcome at all
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


IMPROVEMENT_RANGE_PCT = (-50.0, 100.0)  # a patient can worsen, but by at most half; 100 = fully recovered


def outcome_formula(config: CohortConfig) -> str:
    """The outcome model of :func:`outcomes_from_terms` in words, with this config's numbers."""
    low, high = IMPROVEMENT_RANGE_PCT
    return (f"eta = sum of the planted terms (each scaled by its modalities' effect strength) + the site's shift "
            f"(SD {SITE_OUTCOME_SHIFT_SD * config.site_effect:g} logit); improvement % = 100 x sigmoid(eta) + Gaussian noise "
            f"(SD {config.outcome_noise_pct:g} percentage points), clipped to {low:g}..{high:g}; "
            f"responder = improvement >= {config.responder_threshold_pct:g}%.")


def outcomes_from_terms(terms: pd.DataFrame, latents: pd.DataFrame, config: CohortConfig) -> pd.DataFrame:
    """Improvement (%), responder label and the exact true response probability."""
    eta = terms.sum(axis=1).to_numpy() + latents["site_outcome_shift"].to_numpy()
    expected = 100 * expit(eta)
    rng = np.random.default_rng([config.seed, 4])
    improvement = np.clip(expected + rng.normal(0, config.outcome_noise_pct, len(eta)), *IMPROVEMENT_RANGE_PCT)
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
        if term.name not in factors:
            continue
        # A raw-only term is credited to its modality's raw data, under a name no feature column has.
        for feature, phi in zip(term.features or (f"{term.modalities[0]}.{term.name}",), term_shapley(factors[term.name], applies)):
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


# ARAT at baseline = 57 sigmoid(ARAT_INTERCEPT - ARAT_SLOPE x severity + noise). Calibrated so that
# PREP2 scores ~75% on synthetic stroke patients, as published (see tests/test_synth_generator.py).
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
