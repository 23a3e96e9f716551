"""What the tests of background jobs share: waiting for a workspace's jobs, and for a job to make progress."""

import time
from pathlib import Path

from core.jobs import JobRunner


def job_ids(workspace: str | Path) -> set:
    """Ids of every job of the workspace, any owner and status."""
    folder = Path(workspace) / "jobs"
    return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".")} if folder.exists() else set()


def click_and_finish(at, key: str, workspace: str | Path):
    """Click the button ``key`` of an AppTest; when that started a job, wait for it, as the page's
    poll would, and rerun (the finished job's result is then on the page)."""
    before = job_ids(workspace)
    at.button(key=key).click().run()
    assert not at.exception, [e.message for e in at.exception]
    if job_ids(workspace) - before:
        finish_jobs(workspace)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


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
