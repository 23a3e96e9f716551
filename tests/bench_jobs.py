"""Benchmarks of the background job runner (``python -m tests.bench_jobs``): one JSON line per figure.
Not tests: nothing here asserts a time.

Figures:
- ``job_cv_5x5_2k_s``: a 5 x 5 xgboost cross-validation of a 2,000-patient cohort run as a job
  (submit to "done", process start and imports included). Baseline, same run: the same
  ``Workspace.train_cv`` called in this process, into another workspace. Medians of 3 alternating
  rounds; ``overhead_s`` is the difference.
- ``job_start_s``: submit to the job's first progress report (a new process importing the engine).
- ``job_cancel_s``: cancel of a running cross-validation to its process being gone.
- ``job_status_ms``: one ``JobRunner.status`` call (what each page's poll does every second),
  median over 200 calls, with 200 finished jobs in the folder; baseline: reading the job's JSON file.
- ``job_find_ms``: one ``JobRunner.active`` call (a page finding its job by owner, kind and key on
  each run), median over 50 calls, with those 202 jobs in the folder.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

ROUNDS = 3


def emit(figure: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def main() -> None:
    from core.jobs import JobRunner, cv_job
    from core.jobs.runner import Job
    from core.modelling.validation import CVSettings
    from core.store.locks import process_alive
    from core.store.workspace import Workspace
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    root = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    cohort = generate_cohort(CohortConfig(name="bench", n_patients=2000, seed=1))
    jobs_ws = Workspace(root / "jobs")
    jobs_ws.save(cohort)
    settings = CVSettings()  # 5 x 5, xgboost: the Prediction page's default

    directs, as_jobs = [], []
    runner = JobRunner(jobs_ws.path)
    for round_ in range(ROUNDS):  # alternating, so a busy spell of the machine hits both
        start = time.perf_counter()
        Workspace(root / f"direct-{round_}").train_cv(cohort, settings)
        directs.append(time.perf_counter() - start)
        params, key = cv_job(cohort, settings)
        start = time.perf_counter()
        job = runner.submit("cv", params, "bench", key)
        while runner.status(job.id).active:
            time.sleep(0.02)
        as_jobs.append(time.perf_counter() - start)
        assert runner.status(job.id).status == "done", runner.log(job.id)
    direct, as_job = statistics.median(directs), statistics.median(as_jobs)
    emit("job_cv_5x5_2k_s", as_job, "s", baseline_in_process_s=round(direct, 3), overhead_s=round(as_job - direct, 3), ratio=round(as_job / direct, 3),
         rounds=ROUNDS, job_s=[round(t, 2) for t in as_jobs], in_process_s=[round(t, 2) for t in directs])

    longer = CVSettings(n_repeats=20)
    params, key = cv_job(cohort, longer)
    start = time.perf_counter()
    job = runner.submit("cv", params, "bench", key)
    while runner.status(job.id).label in ("", "starting", "waiting for a free slot"):
        time.sleep(0.01)
    emit("job_start_s", time.perf_counter() - start, "s", note="submit to the job's first progress report")
    while runner.status(job.id).done < 1:
        time.sleep(0.02)
    start = time.perf_counter()
    runner.cancel(job.id, "bench")
    ended = runner.wait(job.id, 120, poll_s=0.01)
    while process_alive(ended.pid, ended.pid_start):
        time.sleep(0.01)
    emit("job_cancel_s", time.perf_counter() - start, "s", status=ended.status)

    template = runner.status(job.id).to_dict()
    for i in range(200):
        fake = Job.from_dict({**template, "id": f"20000101T000000-{i:08x}", "owner": "someone"})
        runner._write(fake)
    times, reads = [], []
    for _ in range(200):
        t0 = time.perf_counter()
        runner.status(job.id, owner="bench")
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        json.loads((runner.folder / f"{job.id}.json").read_text())
        reads.append(time.perf_counter() - t0)
    emit("job_status_ms", 1000 * statistics.median(times), "ms", baseline_json_read_ms=round(1000 * statistics.median(reads), 4), jobs_in_folder=202)
    lists = []
    for _ in range(50):
        t0 = time.perf_counter()
        runner.active("bench", "cv", key)
        lists.append(time.perf_counter() - t0)
    emit("job_find_ms", 1000 * statistics.median(lists), "ms", jobs_in_folder=202,
         note="JobRunner.active (a page looking for its job on each run): reads every job file under the lock")


if __name__ == "__main__":
    main()
