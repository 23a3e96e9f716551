"""Benchmark of the Dask scale-out (``python -m tests.bench_dask``): one JSON line per figure.

Not a test: nothing here asserts a time. A synthetic cohort of ``--patients`` patients (default
100,000; features and outcomes only, raw data stay lazy) is generated and cross-validated (5-fold,
1 repeat, responder, default xgboost settings, no interaction values)

- ``one_process``: in one process, one core (``n_jobs=1``): the baseline, measured in the same run;
- ``local_cluster``: with ``NEUROPREDICT_DASK_SCHEDULER`` pointing at a ``LocalCluster`` of 2 worker
  processes x 1 thread on this machine: generation in chunks of 500 patients and the CV folds as tasks
  (``engine="xgboost"``, numbers identical to one process), then the same folds trained with
  ``xgboost.dask`` across both workers (``engine="xgboost.dask"``, AUC compared).

The workers start as README's "Deploying for a clinic" says (no ``MALLOC_TRIM_THRESHOLD_``, no
sampling profiler). Each run happens in a fresh process (and the workers are restarted between stages), so peak memory
(``ru_maxrss``) belongs to that stage: ``driver_peak_mb`` is the process that calls ``core``,
``worker_peak_mb`` each worker. ``load_avg_1min`` is recorded because the machine is shared.
Options: ``--patients N``, ``--skip-one-process`` (cluster only), ``--skip-xgboost-dask``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_up() -> None:
    import core.modelling.validation  # noqa: F401
    import core.synth.generator  # noqa: F401


def _cohort_and_cv(n_patients: int, address: str | None, engines: list[str]) -> dict:
    """One run, in its own process: generate, then cross-validate with each engine."""
    import hashlib

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from core.modelling.validation import CohortSplitter, cross_validate
    from core.parallel import DASK_ENV, dask_client
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    if address:
        os.environ[DASK_ENV] = address
    out = {"figures": []}

    def workers_peak_and_restart():
        if not address:
            return {}
        client = dask_client()
        peaks = sorted(round(v / 1024) for v in client.run(lambda: __import__("resource").getrusage(0).ru_maxrss).values())
        client.restart(timeout=180)  # fresh worker processes: the next stage's peak is its own
        client.run(_warm_up)  # imports done before the next stage's clock starts
        return {"worker_peak_mb": peaks}

    if address:
        dask_client().run(_warm_up)  # connected, workers up and imports done before the clock starts
    config = CohortConfig(name="bench", n_patients=n_patients, seed=11)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    cohort = generate_cohort(config, n_jobs=1 if not address else -1)
    seconds = time.perf_counter() - start
    out["figures"].append({"stage": "generate", "seconds": round(seconds, 1), "driver_peak_mb": round(_peak_mb()), **workers_peak_and_restart(),
                           "cohort_digest": cohort.digest, "features": int(cohort.features.shape[1]), "load_avg_1min": round(load, 2)})
    y = cohort.outcomes["responder"].to_numpy()
    splitter = CohortSplitter(n_splits=5, n_repeats=1)
    for engine in engines:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = cross_validate(cohort, "responder", splitter=splitter, interactions=False, n_jobs=1 if not address else -1, engine=engine)
        seconds = time.perf_counter() - start
        prediction = result.prediction.to_numpy()
        out["figures"].append({"stage": f"cv_{engine}", "seconds": round(seconds, 1), "driver_peak_mb": round(_peak_mb()), **workers_peak_and_restart(),
                               "auc": round(float(roc_auc_score(y, prediction)), 4), "load_avg_1min": round(load, 2),
                               "prediction_sha": hashlib.sha256(np.ascontiguousarray(prediction).tobytes()).hexdigest()[:16]})
    return out


def _in_fresh_process(*args) -> dict:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_cohort_and_cv, *args).result()


def bench(n_patients: int = 100_000, one_process: bool = True, xgboost_dask: bool = True) -> list[dict]:
    from distributed import LocalCluster

    lines = []
    base = {}
    if one_process:
        for figure in _in_fresh_process(n_patients, None, ["xgboost"])["figures"]:
            base[figure["stage"]] = figure
            lines.append({"figure": f"dask_{figure['stage']}_{n_patients}", "backend": "one_process", **figure})
            print(json.dumps(lines[-1]), flush=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    import dask

    # How a clinic should start its workers (README): Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every
    # worker, which makes glibc map and unmap each large numpy temporary and the generator's chunks ~1.5x
    # slower than in a plain process; the workers' sampling profiler costs another ~8% on them.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None, "distributed.worker.profile.enabled": False})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as cluster:
        engines = ["xgboost", "xgboost.dask"] if xgboost_dask else ["xgboost"]
        for figure in _in_fresh_process(n_patients, cluster.scheduler_address, engines)["figures"]:
            line = {"figure": f"dask_{figure['stage']}_{n_patients}", "backend": "local_cluster_2x1", **figure}
            reference = base.get(figure["stage"]) or (base.get("cv_xgboost") if figure["stage"] == "cv_xgboost.dask" else None)
            if reference:
                line["baseline_one_process_seconds"] = reference["seconds"]
                line["speedup"] = round(reference["seconds"] / figure["seconds"], 2)
                if "cohort_digest" in figure:
                    line["same_cohort_as_one_process"] = figure["cohort_digest"] == reference["cohort_digest"]
                if figure["stage"] == "cv_xgboost":
                    line["same_predictions_as_one_process"] = figure["prediction_sha"] == reference["prediction_sha"]
                if figure["stage"] == "cv_xgboost.dask":
                    line["auc_minus_one_process"] = round(figure["auc"] - reference["auc"], 4)
            lines.append(line)
            print(json.dumps(line), flush=True)
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--skip-one-process", action="store_true")
    parser.add_argument("--skip-xgboost-dask", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    bench(args.patients, one_process=not args.skip_one_process, xgboost_dask=not args.skip_xgboost_dask)


if __name__ == "__main__":
    main()
