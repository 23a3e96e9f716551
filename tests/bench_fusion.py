"""Benchmark of the deep fusion and stacked models (``python -m tests.bench_fusion [timing|raw_signal]``):
one JSON line per figure. Not a test: nothing here asserts a time or a score.

``timing`` (run it on an idle machine; the times are the figures):

- ``fusion_tensor_cache_2000_s``: the raw-data tensors of the 2,000-patient default cohort built
  and saved in the workspace. Baseline in the same run: the one-patient path (whole FA volumes)
  on 40 patients, scaled to 2,000.
- ``fusion_cv_5fold_2000_s``: 5-fold cross-validation of the fusion model on the default cohort,
  with the median time per epoch; its AUC against the oracle's and xgboost's on the same folds.
- ``fusion_inference_ms``: one patient's prediction, median of 50; and per patient in a batch of 200.

``raw_signal`` (scores; deterministic, so the machine's load does not change them):

- ``fusion_vs_xgboost_raw_signal``: the raw-signal preset, 5 folds: fusion AUC minus xgboost AUC
  with the corrected resampled t-test's 95% CI over the folds.
- ``stacked_vs_xgboost_raw_signal``: the same for the stacked model (nested inner 3-fold fusion).
- ``fusion_saliency_in_lesion_raw_signal``: over 40 lesioned stroke patients, the share of |FA
  saliency| (integrated gradients) inside the lesion and the affected CST, against their share of the crop.
- ``learning_curve_raw_signal``: AUC of xgboost, fusion and stacked at 100 ... 2,000 patients.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

import numpy as np


def emit(figure: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def _paired(cohort, a, b) -> dict:
    """AUC of run ``a`` minus run ``b`` per fold, with the corrected resampled t-test."""
    from core.evaluation.metrics import roc_auc
    from core.evaluation.stats import corrected_resampled_ttest

    y = cohort.outcomes["responder"].to_numpy()
    per_fold = [roc_auc(y[f.test], a.prediction.to_numpy()[f.test]) - roc_auc(y[f.test], b.prediction.to_numpy()[f.test]) for f in a.folds]
    return corrected_resampled_ttest(per_fold, np.mean([len(f.train) for f in a.folds]), np.mean([len(f.test) for f in a.folds]))


def _aucs(cohort, runs: dict) -> dict:
    from core.evaluation.metrics import roc_auc

    y = cohort.outcomes["responder"]
    out = {f"{name}_auc": round(roc_auc(y, run.prediction), 4) for name, run in runs.items()}
    out["oracle_auc"] = round(roc_auc(y, cohort.outcomes["true_response_probability"]), 4)
    return out


def saliency_in_lesion(cohort, result, inputs, n_patients: int = 40) -> dict:
    """Mean share of |FA saliency| in the lesion and the affected CST over lesioned stroke patients,
    each explained by the fold models that never saw them; and those regions' share of the crop."""
    from core.evaluation.ground_truth import saliency_regions
    from core.modelling.fusion import fusion_design

    design = fusion_design(cohort, inputs)
    rows = []
    for position, pid in enumerate(cohort.patients.index):
        raw = cohort.raw_data(pid)
        if raw.fa is None or raw.lesion_mask is None or not raw.lesion_mask.any():
            continue
        saliency = np.mean([m.fa_saliency(design.take([position]))[0] for m in result.models_blind_to(position)], axis=0)
        rows.append(saliency_regions(saliency, raw.lesion_mask, cohort.patients.at[pid, "affected_hemisphere"]))
        if len(rows) == n_patients:
            break
    mean = sum(r.fillna(0.0) for r in rows) / len(rows)
    return {f"{region.replace(' ', '_').lower()}_{k}": round(float(mean.at[region, k]), 4) for region in mean.index for k in ("saliency_share", "volume_share", "enrichment")} | {"patients": len(rows)}


def timing(workspace) -> None:
    from core.features.tensors import inputs_from_raw
    from core.modelling.fusion import fusion_design
    from core.modelling.validation import CVSettings
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(presets()["default"])
    start = time.perf_counter()
    inputs = workspace.fusion_inputs(cohort)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    inputs_from_raw([cohort.raw_data(pid) for pid in cohort.patients.index[:40]])
    one_by_one = (time.perf_counter() - start) / 40 * cohort.n_patients
    emit("fusion_tensor_cache_2000_s", cache_s, "s", bar=60.0, baseline_one_patient_path_s=round(one_by_one, 1), speedup=round(one_by_one / cache_s, 1))

    epochs, last = [], [time.perf_counter()]

    def on_epoch(fold, row):
        now = time.perf_counter()
        epochs.append(now - last[0])
        last[0] = now

    settings = CVSettings(n_splits=5, n_repeats=1, model="fusion")
    start = time.perf_counter()
    fusion = settings.cross_validate(cohort, inputs, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    boosted = CVSettings(n_splits=5, n_repeats=1).cross_validate(cohort)
    test, aucs = _paired(cohort, fusion, boosted), _aucs(cohort, {"fusion": fusion, "xgboost": boosted})
    emit("fusion_cv_5fold_2000_s", seconds, "s", bar=480.0, epochs=len(epochs), median_epoch_s=round(statistics.median(epochs), 2),
         fusion_over_oracle=round(aucs["fusion_auc"] / aucs["oracle_auc"], 4), fusion_minus_xgboost_auc=round(test["mean"], 4),
         ci=[round(test["ci_low"], 4), round(test["ci_high"], 4)], **aucs, cores=2)

    model, design = fusion.fold_models[0], fusion_design(cohort, inputs)
    one = design.take(np.arange(1))
    times = []
    for _ in range(50):
        start = time.perf_counter()
        model.predict_proba(one)
        times.append(time.perf_counter() - start)
    batch = design.take(np.arange(200))
    start = time.perf_counter()
    model.predict_proba(batch)
    emit("fusion_inference_ms", 1000 * statistics.median(times), "ms", bar=20.0, batched_ms_per_patient=round(1000 * (time.perf_counter() - start) / 200, 3))


def raw_signal(workspace) -> None:
    from core.evaluation.learning import LEARNING_CURVE_SIZES, learning_curve
    from core.modelling.validation import CVSettings
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(presets()["raw_signal"])
    inputs = workspace.fusion_inputs(cohort)
    runs = {}
    for model in ("xgboost", "fusion", "stacked"):  # each figure printed as soon as it is measured
        start = time.perf_counter()
        runs[model] = CVSettings(n_splits=5, n_repeats=1, model=model).cross_validate(cohort, inputs, fusion_run=runs.get("fusion"))
        seconds = time.perf_counter() - start
        if model != "xgboost":
            test = _paired(cohort, runs[model], runs["xgboost"])
            emit(f"{model}_vs_xgboost_raw_signal", test["mean"], "AUC difference", ci=[round(test["ci_low"], 4), round(test["ci_high"], 4)], p=round(test["p"], 4),
                 cv_s=round(seconds, 1), **_aucs(cohort, {m: runs[m] for m in ("xgboost", model)}))
        if model == "fusion":
            shares = saliency_in_lesion(cohort, runs["fusion"], inputs)
            emit("fusion_saliency_in_lesion_raw_signal", shares["lesion_saliency_share"], "share of |saliency|", **shares)
    for n in LEARNING_CURVE_SIZES:
        part = learning_curve(cohort, inputs, CVSettings(n_splits=5, n_repeats=1), sizes=(n,), runs=runs)
        emit("learning_curve_raw_signal", float(n), "patients", **{f"{r.model}_auc": [round(r.auc, 4), round(r.ci_low, 4), round(r.ci_high, 4)] for r in part.itertuples()},
             oracle_auc=round(float(part["oracle_auc"].iloc[0]), 4))


def main() -> None:
    from core.store.workspace import Workspace

    parts = sys.argv[1:] or ["timing", "raw_signal"]
    workspace = Workspace(tempfile.mkdtemp())
    for part in parts:
        {"timing": timing, "raw_signal": raw_signal}[part](workspace)


if __name__ == "__main__":
    main()
