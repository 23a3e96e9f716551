"""Panels of the cohort page: the generator form and its runs, the patient drill-down and the ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components import figures, state
from components.figures import brain_slice_viewer
from components.panels import jobs
from components.views import cohort as cohort_views
from components.views import recordings
from core.anatomy import CST_WAYPOINTS_MM, load_anatomy
from core.data.cohort import Cohort, feature_correlations
from core.data.schema import FEATURE_DESCRIPTIONS, MODALITIES, MODALITY_LABELS
from core.errors import InputError
from core.evaluation.ground_truth import bayes_optimal_auc
from core.features.emg import mep_features
from core.features.kinematics import reach_segments, speed_mm_s
from core.jobs import generate_job
from core.modelling.prep2 import PUBLISHED_ACCURACY, prep2_evaluation
from core.synth.config import INDICATIONS, CohortConfig, presets
from core.synth.generator import CHUNK_SIZE
from core.synth.outcome import OUTCOME_TERMS, outcome_formula

# Up to this many patients (a few seconds) a cohort is made in the page; larger ones by a background job.
INLINE_MAX_PATIENTS = 2_000
_OPENED = "cohort.generations_opened"  # generation jobs whose cohort this session has opened


def generation_jobs() -> list:
    """This user's cohort generation jobs, newest first (the page keeps the generator open while one runs)."""
    return jobs.runner().list(jobs.owner(), kind="generate")


def generation_panel(made: list) -> None:
    """The generator form; a submitted config is generated and saved (in the page, or as a background
    job above :data:`INLINE_MAX_PATIENTS` patients), and the new cohort opened. This user's generation
    jobs (``made``: :func:`generation_jobs`) under way are followed here, and what a stopped one kept is said."""
    try:
        config = config_form()
    except InputError as exc:
        config = None
        st.error(str(exc))
    if config is not None and config.n_patients <= INLINE_MAX_PATIENTS:
        _generate_here(config)
    elif config is not None:
        jobs.submit("generate", *generate_job(config, replace=True))  # the form checked the name and the Replace box
        made = generation_jobs()
    _follow_generation_jobs(made)


def _generate_here(config: CohortConfig) -> None:
    with st.status(f"Generating {config.n_patients} patients ...", expanded=True) as status:
        bar = st.progress(0.0, text="latent factors and raw recordings")
        try:
            cohort = state.workspace().generate(config, replace=True, progress=lambda done, total: bar.progress(done / total, text=f"raw data and features: chunk {done} of {total}"))
        except InputError as exc:
            status.update(label="Not generated", state="error")
            st.error(str(exc))
            return
    _open_new_cohort(cohort.name, cohort.n_patients)


def _open_new_cohort(name: str, n_patients: int) -> None:
    state.set_current_cohort(name)
    state.flash(f"Saved {n_patients:,} patients as '{name}'")
    st.rerun()  # redraw the sidebar, which ran before this page, with the new cohort


def _follow_generation_jobs(made: list) -> None:
    opened = state.session_store(_OPENED, set)
    for job in made:
        config = job.params["config"]
        if job.active:
            n_chunks = -(-config["n_patients"] // CHUNK_SIZE)
            jobs.progress_panel(job, f"Generating {config['n_patients']:,} patients as '{config['name']}' ({n_chunks} chunk{'s' if n_chunks > 1 else ''} of {CHUNK_SIZE})",
                                cancel_help="Stops after the chunk under way; the finished chunks are kept, and generating the same settings again resumes from them.")
        elif job.status == "done" and jobs.submitted_here(job) and job.id not in opened:
            opened.add(job.id)
            _open_new_cohort(config["name"], config["n_patients"])
    if made and not made[0].active:
        jobs.finished_notice(made[0])  # the newest one: why it stopped, and what it kept


def config_form(key: str = "generate") -> CohortConfig | None:
    """The generator's config as a form, starting from a shipped preset; the config on submit."""
    available = presets()
    preset = st.selectbox("Start from preset", list(available), key=f"{key}-preset", help="Shipped configs in assets/cohorts/.")
    base = available[preset]
    key = f"{key}-{preset}"  # per-preset widget keys: choosing a preset shows all of its values
    with st.form(f"{key}-form"):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Cohort name", base.name, key=f"{key}-name")
        n_patients = c2.number_input("Patients", 10, 100_000, base.n_patients, step=100, key=f"{key}-patients")
        seed = c3.number_input("Seed", 0, 2**31 - 1, base.seed, key=f"{key}-seed")
        st.markdown("**Indications** (fraction of patients)")
        cols = st.columns(len(INDICATIONS))
        indications = {k: cols[i].slider(label, 0.0, 1.0, float(base.indications.get(k, 0.0)), 0.05, key=f"{key}-i-{k}") for i, (k, label) in enumerate(INDICATIONS.items())}
        c1, c2, c3, c4 = st.columns(4)
        n_sites = c1.number_input("Sites", 1, 20, base.n_sites, key=f"{key}-sites")
        site_effect = c2.slider("Site effect", 0.0, 3.0, float(base.site_effect), 0.1, key=f"{key}-site", help="Scanner, amplifier and outcome differences between sites.")
        noise = c3.slider("Measurement noise", 0.0, 3.0, float(base.measurement_noise), 0.1, key=f"{key}-noise")
        outcome_noise = c4.slider("Outcome noise (% points SD)", 1.0, 30.0, float(base.outcome_noise_pct), 0.5, key=f"{key}-onoise")
        threshold = st.slider("Responder threshold (% improvement)", 5.0, 95.0, float(base.responder_threshold_pct), 5.0, key=f"{key}-threshold")
        st.markdown("**Per modality:** planted effect strength (0 = no effect) and missing rate")
        cols = st.columns(len(MODALITIES))
        strength, missing = {}, {}
        for col, m in zip(cols, MODALITIES):
            strength[m] = col.slider(f"{MODALITY_LABELS[m]} effect", 0.0, 3.0, base.strength(m), 0.1, key=f"{key}-s-{m}")
            missing[m] = col.slider(f"{m} missing", 0.0, 0.9, float(base.missing_rate.get(m, 0.0)), 0.05, key=f"{key}-m-{m}")
        replace = st.checkbox("Replace a saved cohort of the same name", key=f"{key}-replace")
        submitted = st.form_submit_button("Generate and save", type="primary", icon=":material/science:")
    if not submitted:
        return None
    # Check the name before generating, not after minutes of work.
    state.workspace().check_new_name(name.strip(), replace=replace)
    return CohortConfig(
        name=name.strip(), n_patients=int(n_patients), seed=int(seed), indications={k: v for k, v in indications.items() if v > 0},
        n_sites=int(n_sites), site_effect=site_effect, missing_rate=missing, effect_strength=strength,
        measurement_noise=noise, outcome_noise_pct=outcome_noise, responder_threshold_pct=threshold,
    )


# Derived tables are cached by the cohort's content digest (the cohort itself is not hashed).
@state.user_cache_data(max_entries=8, show_spinner=False)
def cached_bayes_auc(_cohort: Cohort, digest: str):
    return bayes_optimal_auc(_cohort)


@state.user_cache_data(max_entries=8, show_spinner=False)
def cached_prep2(_cohort: Cohort, digest: str) -> dict:
    return prep2_evaluation(_cohort)


@state.user_cache_data(max_entries=8, show_spinner=False)
def cached_correlations(_cohort: Cohort, digest: str):
    return feature_correlations(_cohort)


@state.user_cache_resource(max_entries=6, show_spinner=False)
def _patient_raw(_cohort: Cohort, digest: str, patient_id: str):
    # Keyed by the cohort's content digest: two cohorts with the same name never share an entry.
    return _cohort.raw_data(patient_id)


def patient_panel(cohort: Cohort) -> None:
    """One patient's raw data: FA map with lesion, MEP sweeps, voluntary EMG, reaching."""
    c1, c2 = st.columns([1, 2])
    indication = c1.selectbox("Indication", ["all", *sorted(cohort.patients["indication"].unique())], key="drill-indication")
    ids = cohort.patients.index if indication == "all" else cohort.patients.index[cohort.patients["indication"] == indication]
    patient_id = c2.selectbox("Patient", ids, key="drill-patient")
    raw = _patient_raw(cohort, cohort.digest, patient_id)
    info = cohort.patients.loc[patient_id]
    outcome = cohort.outcomes.loc[patient_id]
    m = st.columns(4)
    m[0].metric("Indication", {"stroke": "Stroke", "parkinsons": "Parkinson's"}.get(info["indication"], str(info["indication"])), help=INDICATIONS.get(info["indication"]))
    m[1].metric("Site / affected side", f"{info.get('site', '—')} / {info.get('affected_hemisphere', '—')}")  # uploads may map neither
    m[2].metric("Improvement", f"{outcome['improvement_pct']:.0f}%", help=f"Responder when >= {cohort.responder_threshold_pct:g}%.")
    m[2].markdown(":green-badge[responder]" if outcome["responder"] else ":orange-badge[non-responder]")
    if "true_response_probability" in outcome:
        m[3].metric("True response probability", f"{outcome['true_response_probability']:.2f}", help="Known only for synthetic patients.")

    st.subheader("Diffusion MRI: fractional anisotropy")
    if raw.fa is None:
        st.info("This patient has no DTI (missing modality).")
    else:
        anatomy = load_anatomy()
        lesion = raw.lesion_mask if raw.lesion_mask is not None and raw.lesion_mask.any() else None
        # Open on the lesion, or else on the affected internal capsule, where the CST is densest.
        side = -1.0 if info.get("affected_hemisphere") == "left" else 1.0
        default = tuple(CST_WAYPOINTS_MM[2] * [side, 1, 1]) if lesion is None else tuple(np.round(anatomy.voxel_mm(np.flatnonzero(lesion.ravel())).mean(0)))
        brain_slice_viewer(anatomy.template, raw.affine, overlay=raw.fa, mask=lesion, key=f"fa-{patient_id}", default_crosshair_mm=default, overlay_threshold=0.15, overlay_range=(0.0, 0.8), overlay_name="FA", mask_name="lesion", background_name="T1 template intensity", title="FA over MNI152 (lesion in vermillion)")

    st.subheader("EMG: TMS motor-evoked potentials and voluntary contraction")
    if raw.emg is None:
        st.info("This patient has no EMG (missing modality).")
    else:
        e = raw.emg
        mep = mep_features(e.mep_sweeps_uv, e.fs_hz, e.sweep_start_ms)
        figures.show_figure(recordings.mep_sweeps_figure(e.mep_sweeps_uv, e.fs_hz, e.sweep_start_ms, e.muscles, latency_ms=mep["latency_ms"], present=mep["present"]), key="mep", filename=f"{patient_id}-mep")
        figures.show_figure(recordings.voluntary_emg_figure(e.voluntary_uv, e.fs_hz, e.muscles), key="voluntary", filename=f"{patient_id}-voluntary-emg")

    st.subheader("Kinematics: reaching")
    if raw.trajectory is None:
        st.info("This patient has no kinematics (missing modality).")
    else:
        t = raw.trajectory
        speed = speed_mm_s(t.position_mm, t.fs_hz)
        c1, c2 = st.columns(2)
        with c1:
            figures.show_figure(recordings.trajectory_figure(t.position_mm, t.fs_hz), key="trajectory", filename=f"{patient_id}-trajectory")
        with c2:
            figures.show_figure(recordings.speed_profile_figure(speed, t.fs_hz, reach_segments(t.position_mm, t.fs_hz)), key="speed", filename=f"{patient_id}-speed")

    st.subheader("Features of this patient")
    values = cohort.features.loc[patient_id]
    continuous = cohort.features.nunique() > 2  # a percentile of a yes/no feature means nothing
    rank = cohort.features.rank(pct=True).loc[patient_id] * 100
    percentile = ["missing" if pd.isna(values[f]) else f"{rank[f]:.0f}" if continuous[f] else "n/a (yes/no)" for f in values.index]
    table = pd.DataFrame({"value": values.map(lambda v: float(f"{v:.4g}")), "cohort percentile": percentile, "description": [FEATURE_DESCRIPTIONS.get(f, "") for f in values.index]})
    st.dataframe(table, width="stretch", height=320)


def ground_truth_panel(cohort: Cohort) -> None:
    """What was planted, the ceiling any model can reach, and the PREP2 realism check."""
    truth = cohort.ground_truth
    if truth is None:
        st.info("Ground truth is known only for synthetic cohorts.")
        return
    auc = cached_bayes_auc(cohort, cohort.digest)
    c = st.columns(3)
    c[0].metric("Bayes-optimal AUC", f"{auc[0]:.3f}", help="AUC of the true response probabilities: the ceiling for any model on this cohort.")
    c[1].caption(f"95% CI {auc[1]:.3f} - {auc[2]:.3f} (stratified bootstrap, 500 resamples)")
    c[2].metric("Responders", f"{100 * cohort.outcomes['responder'].mean():.1f}%")

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Planted effect of each feature**")
        figures.show_figure(cohort_views.planted_effects_figure(truth.feature_effects), key="planted", data=truth.feature_effects.set_index("feature"), filename="planted-feature-effects")
    with right:
        st.markdown("**Planted contribution of each modality**")
        modality = truth.modality_effects()
        figures.show_figure(cohort_views.modality_effects_figure(modality), key="modality-effects", data=modality.to_frame("effect"), filename="planted-modality-effects")
    with st.expander("Outcome model: the planted terms"):
        terms = [t for t in OUTCOME_TERMS if t.name in truth.terms.columns]  # a switched-off term is not part of this cohort
        st.dataframe(pd.DataFrame([{"term": t.name, "indication": t.indication, "features": ", ".join(t.features) or "(raw data only)", "formula": t.formula}
                                   for t in terms]), width="stretch", hide_index=True)
        if "config" in cohort.provenance:
            st.caption("Outcome model: " + outcome_formula(CohortConfig.from_dict(cohort.provenance["config"])))

    result = cached_prep2(cohort, cohort.digest)
    if result["n_evaluated"]:
        st.markdown("**Realism check: the PREP2 rule on the stroke patients**")
        c = st.columns(3)
        c[0].metric("PREP2 correct", f"{100 * result['accuracy']:.1f}%")
        c[1].metric("Published", " / ".join(f"{100 * v:.0f}%" for v in PUBLISHED_ACCURACY.values()), help="Stinear et al. 2017: development / external validation.")
        c[2].metric("Stroke patients evaluated", result["n_evaluated"], help="Patients lacking an input PREP2 needs (e.g. no MEP status when SAFE < 5) are left out, not guessed.")
        c[2].caption(f"{result['n_not_predictable']} left out: an input was missing")
        figures.show_figure(cohort_views.confusion_figure(result["confusion"]), key="prep2", data=result["confusion"], filename="prep2-confusion")


MAX_EXPORTED_PATIENTS = 200  # about 0.2 MB a patient: at most ~45 MB held in memory for the download


def raw_export_panel(cohort: Cohort) -> None:
    """The first N patients' raw data as an upload folder (zip), as ``python -m core export-upload`` writes it."""
    from core.io.export import upload_folder_zip

    st.markdown("**Raw data as an upload folder**: participants.tsv and per patient the FA map (NIfTI), EMG (EDF+) and reach (C3D), "
                "the layout the Upload page reads. For other tools, or to share a few patients' recordings.")
    if cohort.raw is None:
        st.info("This cohort carries no raw data; only its tables can be exported.")
        return
    most = min(cohort.n_patients, MAX_EXPORTED_PATIENTS)
    c = st.columns([1, 2], vertical_alignment="bottom")
    n = c[0].number_input("Patients (the first N)", 1, most, min(10, most), key="export-raw-n",
                          help=f"At most {MAX_EXPORTED_PATIENTS:,} from the page (about 0.2 MB each); the command line writes any number.")
    ids = list(cohort.patients.index[: int(n)])
    c[1].download_button(f"Upload folder of {len(ids)} patient{'s' if len(ids) > 1 else ''} (zip)", lambda: upload_folder_zip(cohort, ids),
                         file_name=f"{cohort.name}-{len(ids)}-patients.zip", mime="application/zip", key="export-raw", icon=":material/folder_zip:",
                         on_click="ignore")
    st.caption(f"The same file: `python -m core export-upload {cohort.name}-{len(ids)}-patients.zip --cohort {cohort.name} --patients {len(ids)}`"
               " (add `--workspace` for another workspace than the default).")
