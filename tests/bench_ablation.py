"""Benchmark of modality ablation (``python -m tests.bench_ablation``): one JSON line per figure.

Not a test: nothing here asserts a time. Figures:

- ``ablation_15x5_2000``: the target setting, all 15 modality subsets x 5 folds (1 repeat, no
  permutations) on the 2,000-patient default preset, through :func:`core.ablation.run_ablation` on
  all local cores. Baselines in the same run: a plain sequential for-loop over subsets x folds
  fitting :class:`core.modelling.estimators.ResponseClassifier` on one xgboost thread (``baseline_seconds``), and the
  same loop with xgboost's own two threads (``sequential_xgb_2_threads_seconds``).
- ``ablation_page_default_2000``: what the page's default costs: 15 subsets x 5 x 5 folds plus the
  100-permutation test of the full model (500 fits on shuffled labels).

``load_avg_1min`` is recorded because the machine is shared: other work on the same cores slows
every figure.
"""

from __future__ import annotations

import json
import os
import time


def _sequential_loop(cohort, folds, subsets, xgb_threads: int) -> float:
    from core.evaluation.metrics import roc_auc
    from core.modelling.estimators import ResponseClassifier

    X = cohort.features
    y = cohort.outcomes["responder"].astype(float).to_numpy()
    start = time.perf_counter()
    for columns in subsets:
        for fold in folds:
            model = ResponseClassifier(n_jobs=xgb_threads).fit(X.iloc[fold.train][columns], y[fold.train])
            roc_auc(y[fold.test], model.predict_proba(X.iloc[fold.test][columns])[:, 1])
    return time.perf_counter() - start


def bench() -> list[dict]:
    import itertools

    from core.ablation.config import AblationConfig
    from core.ablation.run import run_ablation
    from core.modelling.estimators import ResponseClassifier
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(presets()["default"])
    y = cohort.outcomes["responder"].astype(float).to_numpy()
    ResponseClassifier().fit(cohort.features.iloc[:300], y[:300])  # warm up xgboost

    config = AblationConfig(n_repeats=1, n_permutations=0)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = run_ablation(cohort, config)
    seconds = time.perf_counter() - start

    folds = config.splitter().split(y, cohort.groups)
    subsets = [[c for m in combo for c in cohort.features_of(m)]
               for size in range(1, len(cohort.modalities) + 1) for combo in itertools.combinations(cohort.modalities, size)]
    baseline = _sequential_loop(cohort, folds, subsets, xgb_threads=1)
    xgb_2_threads = _sequential_loop(cohort, folds, subsets, xgb_threads=2)
    figures = [{
        "name": "ablation_15x5_2000", "seconds": round(seconds, 2), "baseline_seconds": round(baseline, 2),
        "ratio": round(baseline / seconds, 2), "bar_seconds": 60, "fits": len(result.scores),
        "sequential_xgb_2_threads_seconds": round(xgb_2_threads, 2), "cores": os.cpu_count(), "load_avg_1min": round(load, 2),
    }]

    load = os.getloadavg()[0]
    start = time.perf_counter()
    full = run_ablation(cohort, AblationConfig())
    figures.append({
        "name": "ablation_page_default_2000", "seconds": round(time.perf_counter() - start, 2), "baseline_seconds": None,
        "ratio": None, "bar_seconds": None, "fits": full.progress()[1], "cores": os.cpu_count(), "load_avg_1min": round(load, 2),
    })
    return figures


if __name__ == "__main__":
    for figure in bench():
        print(json.dumps(figure), flush=True)
