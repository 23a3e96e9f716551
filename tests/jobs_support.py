"""What the tests of background jobs share: waiting for a workspace's jobs, and for a job to make progress."""

import time
from pathlib import Path

from core.jobs import JobRunner


def finish_jobs(workspace: str | Path, timeout_s: float = 300.0) -> list:
    """Wait until no job of the workspace is queued or running; the jobs, newest first (any owner)."""
    runner = JobRunner(workspace)
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [runner.status(path.stem) for path in runner.folder.glob("*.json") if not path.name.startswith(".")]
        if not any(j.active for j in jobs):
            return sorted(jobs, key=lambda j: j.created, reverse=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still active after {timeout_s} s: {[(j.id, j.status, j.label) for j in jobs if j.active]}")
        time.sleep(0.1)


def wait_for_progress(runner: JobRunner, job_id: str, done: int = 1, timeout_s: float = 120.0):
    """Wait until the running job reports ``done`` steps; its state."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = runner.status(job_id)
        if job.status == "running" and job.done >= done:
            return job
        assert job.active, f"job ended before it made progress: {job.status} {job.message}\n{runner.log(job_id)}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} made no progress in {timeout_s} s: {job}")
        time.sleep(0.05)
