"""Benchmark of the deep fusion model (``python -m tests.bench_fusion``): one JSON line per figure.

Not a test: nothing here asserts a time. Figures, all on this machine's CPU cores:

- ``fusion_tensor_cache_2000_s``: the raw-data tensors of the 2,000-patient default cohort built
  and saved in the workspace. Baseline in the same run: the one-patient path (whole FA volumes)
  on 40 patients, scaled to 2,000.
- ``fusion_cv_5fold_2000_s``: 5-fold cross-validation of the fusion model on the default cohort,
  with the median time per epoch; its AUC against the oracle's and against xgboost on the same folds.
- ``fusion_inference_ms``: one patient's prediction, median of 50; and per patient in a batch of 200.
- ``fusion_vs_xgboost_raw_signal``: the raw-signal preset, 5 folds: fusion AUC minus xgboost AUC with
  the corrected resampled t-test's 95% CI over the folds.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import numpy as np


def emit(figure: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def _compare(cohort, inputs, splitter):
    from core.evaluation.metrics import roc_auc
    from core.evaluation.stats import corrected_resampled_ttest
    from core.modelling.validation import cross_validate, cross_validate_fusion

    epochs, last = [], [time.perf_counter()]

    def on_epoch(fold, row):
        now = time.perf_counter()
        epochs.append(now - last[0])
        last[0] = now

    start = time.perf_counter()
    fusion = cross_validate_fusion(cohort, inputs, splitter=splitter, params={"n_threads": 2}, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    boosted = cross_validate(cohort, "responder", splitter=splitter, interactions=False)
    y = cohort.outcomes["responder"].to_numpy()
    per_fold = [roc_auc(y[f.test], fusion.prediction.to_numpy()[f.test]) - roc_auc(y[f.test], boosted.prediction.to_numpy()[f.test]) for f in fusion.folds]
    test = corrected_resampled_ttest(per_fold, np.mean([len(f.train) for f in fusion.folds]), np.mean([len(f.test) for f in fusion.folds]))
    aucs = {"fusion_auc": roc_auc(y, fusion.prediction), "xgboost_auc": roc_auc(y, boosted.prediction), "oracle_auc": roc_auc(y, cohort.outcomes["true_response_probability"])}
    return fusion, seconds, epochs, test, {k: round(v, 4) for k, v in aucs.items()}


def main() -> None:
    from core.features.tensors import inputs_from_raw
    from core.modelling.fusion import fusion_design
    from core.modelling.validation import CohortSplitter
    from core.store.workspace import Workspace
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    splitter = CohortSplitter(n_splits=5, n_repeats=1)
    cohort = generate_cohort(presets()["default"])
    workspace = Workspace(tempfile.mkdtemp())
    start = time.perf_counter()
    inputs = workspace.fusion_inputs(cohort)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    inputs_from_raw([cohort.raw_data(pid) for pid in cohort.patients.index[:40]])
    one_by_one = (time.perf_counter() - start) / 40 * cohort.n_patients
    emit("fusion_tensor_cache_2000_s", cache_s, "s", bar=60.0, baseline_one_patient_path_s=round(one_by_one, 1), speedup=round(one_by_one / cache_s, 1))

    fusion, seconds, epochs, test, aucs = _compare(cohort, inputs, splitter)
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

    raw = generate_cohort(presets()["raw_signal"])
    _, seconds, _, test, aucs = _compare(raw, workspace.fusion_inputs(raw), splitter)
    emit("fusion_vs_xgboost_raw_signal", test["mean"], "AUC difference", ci=[round(test["ci_low"], 4), round(test["ci_high"], 4)], p=round(test["p"], 4),
         fusion_cv_s=round(seconds, 1), **aucs)


if __name__ == "__main__":
    main()
