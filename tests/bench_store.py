"""Benchmarks of the workspace's durable saves (``python -m tests.bench_store``): one JSON line per figure.

Not tests: nothing here asserts a time. Each figure has a baseline measured in the same run.

- ``cohort_save_300_patients``: :meth:`Workspace.save` of a 300-patient synthetic cohort (temporary
  folder, fsync of every file and folder, rename to a new version, one catalogue transaction, old
  version removed). Baseline: the same Parquet files written straight into a folder (no fsync, no
  rename, no catalogue): what durability and atomicity cost.
- ``cv_run_save_3_folds``: :meth:`Workspace.save_cv` of a 3-fold xgboost run of that cohort.
  Baseline: the same files written straight into a folder.
- ``setting_write_while_another_process_saves``: p50 / p90 latency of :meth:`Workspace.set_setting`
  while a second process saves cohorts into the same workspace as fast as it can (it holds the
  catalogue for each commit, so this process waits and retries). Baseline: the same writes with
  no other process.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from tests.bench_io import median_seconds


def _figure(name: str, seconds: float, baseline: float, **extra) -> dict:
    return {"name": name, "seconds": round(seconds, 4), "baseline_seconds": round(baseline, 4),
            "ratio_to_baseline": round(seconds / baseline, 2) if baseline > 0 else None, **extra}


def bench_cohort_save(folder: Path, cohort) -> dict:
    from core.store.workspace import Workspace

    ws = Workspace(folder / "workspace")
    durable = median_seconds(lambda: ws.save(cohort), 7)

    def plain():
        target = folder / "plain"
        target.mkdir(exist_ok=True)
        for table in ("patients", "features", "outcomes"):
            getattr(cohort, table).to_parquet(target / f"{table}.parquet")
        for table in ("latents", "terms", "feature_effects"):
            getattr(cohort.ground_truth, table).to_parquet(target / f"{table}.parquet")

    return _figure("cohort_save_300_patients", durable, median_seconds(plain, 7), repeats=7)


def bench_cv_save(folder: Path, cohort) -> dict:
    from core.modelling.validation import CohortSplitter, cross_validate
    from core.store.workspace import Workspace

    run = cross_validate(cohort, splitter=CohortSplitter(n_splits=3, n_repeats=1), n_jobs=1)
    ws = Workspace(folder / "workspace")
    durable = median_seconds(lambda: ws.save_cv(cohort, "00000000000000cc", run), 7)
    plain_folder = folder / "plain-run"
    plain_folder.mkdir()
    return _figure("cv_run_save_3_folds", durable, median_seconds(lambda: Workspace._write_cv(plain_folder, run), 7), repeats=7)


def _keep_saving(path: Path, cohort, stop) -> None:
    from core.store.workspace import Workspace

    ws = Workspace(path)
    while not stop.is_set():
        ws.save(cohort)


def _setting_latencies(ws, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        ws.set_setting("bench", str(i))
        times.append(time.perf_counter() - start)
        time.sleep(0.01)
    return times


def bench_contended_settings(folder: Path, cohort) -> dict:
    from core.store.workspace import Workspace

    path = folder / "contended"
    ws = Workspace(path)
    alone = _setting_latencies(ws, 100)
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    saver = context.Process(target=_keep_saving, args=(path, cohort, stop))
    saver.start()
    time.sleep(1.0)  # the saver is under way
    contended = _setting_latencies(ws, 100)
    stop.set()
    saver.join()
    p50, p90 = statistics.median(contended), statistics.quantiles(contended, n=10)[-1]
    return _figure("setting_write_while_another_process_saves", p50, statistics.median(alone), p90_seconds=round(p90, 4),
                   baseline_p90_seconds=round(statistics.quantiles(alone, n=10)[-1], 4), writes=len(contended))


def main() -> None:
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(CohortConfig(name="bench", n_patients=300, seed=7), n_jobs=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for bench in (bench_cohort_save, bench_cv_save, bench_contended_settings):
            print(json.dumps(bench(folder, cohort)), flush=True)


if __name__ == "__main__":
    main()
