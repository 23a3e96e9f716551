"""Latent factors of every synthetic patient, the clinical scales drawn from them, and the
per-patient parameters of the raw recordings.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.special import expit

from core.anatomy import CST_WAYPOINTS_MM, load_anatomy
from core.data.schema import MODALITIES
from core.synth.config import SITE_OUTCOME_SHIFT_SD, SITE_FA_OFFSET_SD, CohortConfig
from core.synth.fa_phantom import FAParameters, lesion_weight, transected_fraction


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


def sample_latents(config: CohortConfig, *, n_jobs: int = 1) -> pd.DataFrame:
    """Latent factors and true physiological values of every patient (the ground truth).

    ``n_jobs``: the true FA values are computed in chunks (:func:`true_fa_features`), side by side
    through :func:`core.parallel.parallel_map` when ``n_jobs`` is not 1; the result does not depend on it.

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
    site_outcome_shift = site_rng.normal(0, SITE_OUTCOME_SHIFT_SD * se, config.n_sites)

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
    latents["true_cst_fa_affected"], latents["true_wm_fa_mean"] = true_fa_features(latents, config, n_jobs=n_jobs)
    return latents


TRUE_FA_CHUNK = 1000
"""Patients per chunk of :func:`true_fa_features`: bounds its (patients x voxels) temporaries."""


def true_fa_features(latents: pd.DataFrame, config: CohortConfig, *, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free, site-offset-free affected-CST FA and white-matter FA: what the DTI features measure.

    Computed in chunks of :data:`TRUE_FA_CHUNK` patients (each patient's values depend on that patient
    only, so chunks and ``n_jobs`` change nothing), side by side when ``n_jobs`` is not 1.
    """
    from core.parallel import parallel_map

    voxel_sets = feature_voxel_sets()
    columns = [c for c in latents.columns if c not in ("true_cst_fa_affected", "true_wm_fa_mean")]
    chunks = [(config.to_dict(), latents.iloc[i : i + TRUE_FA_CHUNK][columns], voxel_sets) for i in range(0, len(latents), TRUE_FA_CHUNK)]
    parts = parallel_map(_true_fa_chunk, chunks, n_jobs=n_jobs if len(chunks) > 2 else 1)
    if not parts:
        return np.full(0, np.nan), np.full(0, np.nan)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _true_fa_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    from core.synth.fa_phantom import fa_batch

    config_dict, latents, voxel_sets = args
    config = CohortConfig.from_dict(config_dict)
    cst_fa, wm_fa = np.full(len(latents), np.nan), np.full(len(latents), np.nan)
    records = latents.to_dict("records")
    for side, (voxels, n_cst) in voxel_sets.items():
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
    """Arguments of :func:`core.synth.recordings.make_emg` for these patients (muscles: fdi, ecr)."""
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
    """Arguments of :func:`core.synth.recordings.make_reaching` for these patients."""
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


def feature_voxel_sets() -> dict:
    """Per affected side, the voxels the DTI features read: affected CST, its mirror, WM sample."""
    from core.synth.fa_phantom import voxel_set

    anatomy = load_anatomy()
    sets = {}
    for side, other in (("left", "right"), ("right", "left")):
        index = np.concatenate([anatomy.cst_index[side], anatomy.cst_index[other], anatomy.wm_sample_index])
        sets[side] = (voxel_set(index, anatomy), len(anatomy.cst_index[side]))
    return sets


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
