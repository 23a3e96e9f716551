"""Benchmarks (``make bench``): one JSON line per figure. Not tests: nothing here asserts a time.

Figures (see README's Benchmarks table):
- ``cohort_features_10k``: a 10,000-patient synthetic cohort, raw data generated and features
  extracted (only the voxels the features read), on all local cores. Baseline, same run: the
  naive path that builds each patient's full FA volume and reads the features from it, timed on
  a sample of patients and scaled to 10,000.
- ``patient_drilldown``: one patient's full raw data (FA volume, lesion mask, EMG, reaching)
  plus the drill-down figures built from them. Median of repeated runs.
- ``whatif_update_ms``: one what-if scenario (prediction and SHAP), server side.
- ``cv_5x5_oof_shap_10k``: 5 x 5 cross-validation with out-of-fold SHAP on 10,000 patients.
The browser figure (slider to redrawn waterfall) is in ``tests/bench_browser.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import time


def emit(figure: str, value: float, unit: str, bar: float | None = None, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, "bar": bar, **extra}), flush=True)


def bench_cohort_features() -> None:
    from core.features.dti import dti_features_from_volume
    from core.synth.config import CohortConfig
    from core.synth.fa_phantom import fa_volume
    from core.synth.generator import generate_cohort
    from core.synth.latents import fa_parameters, sample_latents

    config = CohortConfig(name="bench", n_patients=10_000, seed=1)
    generate_cohort(CohortConfig(name="warm", n_patients=1500, seed=2))  # start workers, load anatomy
    start = time.perf_counter()
    generate_cohort(config)
    elapsed = time.perf_counter() - start

    latents = sample_latents(CohortConfig(name="naive", n_patients=40, seed=1))
    start = time.perf_counter()
    for _, row in latents.iterrows():
        params = fa_parameters(row, config)
        dti_features_from_volume(fa_volume(params), params.affected_hemisphere)
    naive_per_patient = (time.perf_counter() - start) / len(latents)
    naive_10k = naive_per_patient * config.n_patients
    emit("cohort_features_10k", elapsed, "s", bar=10.0, cores=os.cpu_count(), baseline_full_volume_dti_only_s=round(naive_10k, 2), speedup_vs_baseline=round(naive_10k / elapsed, 1))


def bench_patient_drilldown() -> None:
    from components.views import recordings as views
    from components.views.slices import orthogonal_slices_figure
    from core.anatomy import load_anatomy
    from core.features.emg import mep_features
    from core.features.kinematics import reach_segments, speed_mm_s
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(CohortConfig(name="drill", n_patients=40, seed=3, indications={"stroke": 1.0}, missing_rate={}), n_jobs=1)
    anatomy = load_anatomy()
    times = []
    for pid in cohort.patients.index[:15]:
        start = time.perf_counter()
        raw = cohort.raw_data(pid)
        orthogonal_slices_figure(anatomy.template, raw.affine, overlay=raw.fa, mask=raw.lesion_mask)
        e = raw.emg
        mep = mep_features(e.mep_sweeps_uv, e.fs_hz, e.sweep_start_ms)
        views.mep_sweeps_figure(e.mep_sweeps_uv, e.fs_hz, e.sweep_start_ms, e.muscles, latency_ms=mep["latency_ms"], present=mep["present"])
        views.voluntary_emg_figure(e.voluntary_uv, e.fs_hz, e.muscles)
        t = raw.trajectory
        speed = speed_mm_s(t.position_mm, t.fs_hz)
        views.trajectory_figure(t.position_mm, t.fs_hz)
        views.speed_profile_figure(speed, t.fs_hz, reach_segments(t.position_mm, t.fs_hz))
        times.append(time.perf_counter() - start)
    emit("patient_drilldown", statistics.median(times[1:]), "s", bar=0.3, runs=len(times) - 1)


def bench_cross_validation_10k() -> None:
    """5 x 5 CV with out-of-fold SHAP (interaction values off) on 10,000 patients, 2 cores.

    Baseline, same run: the same folds fitted one after another on one thread.
    """
    from core.modelling.validation import CohortSplitter, cross_validate
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(CohortConfig(name="cv", n_patients=10_000, seed=4))
    start = time.perf_counter()
    cross_validate(cohort, "responder", interactions=False)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    cross_validate(cohort, "responder", splitter=CohortSplitter(n_repeats=1), interactions=False, n_jobs=1)
    sequential_25 = (time.perf_counter() - start) * 5  # one repeat of 5 folds, scaled to 25 folds
    emit("cv_5x5_oof_shap_10k", elapsed, "s", bar=60.0, cores=os.cpu_count(), baseline_sequential_s=round(sequential_25, 1), speedup_vs_baseline=round(sequential_25 / elapsed, 2))


def bench_whatif() -> None:
    """One what-if update (prediction + SHAP from the 5 models blind to the patient), server side."""
    from core.modelling.validation import cross_validate
    from core.modelling.whatif import WhatIf
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(CohortConfig(name="whatif", n_patients=2000, seed=5))
    result = cross_validate(cohort, "responder", interactions=False)
    whatif = WhatIf(result, cohort.features)
    pid = cohort.patients.index[7]
    whatif.scenario(pid)
    times = []
    for k in range(200):
        start = time.perf_counter()
        whatif.scenario(pid, {"clin.levodopa_response_pct": 20 + k * 0.3})
        times.append(time.perf_counter() - start)
    emit("whatif_update_ms", 1000 * statistics.median(times), "ms", bar=5.0, runs=len(times), p90_ms=round(1000 * sorted(times)[int(0.9 * len(times))], 3))


def main() -> None:
    bench_patient_drilldown()
    bench_cohort_features()
    bench_whatif()
    bench_cross_validation_10k()


if __name__ == "__main__":
    main()
