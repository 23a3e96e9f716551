"""The background job runner: jobs run in their own process and store what the direct core call
stores; cancel, owners, the queue, and a restart of the server (a fresh runner on the same workspace).

One 80-patient cohort, saved once per module; each test copies the workspace. Every job is a real
``python -m core.jobs run`` process (a few seconds each, most of it imports).
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from core.ablation import AblationConfig, run_ablation
from core.errors import InputError
from core.jobs import KEEP_DAYS_ENV, MAX_JOBS_ENV, Job, JobRunner, JobsBusy, ablation_job, cv_job
from core.jobs.runner import Reporter, job_keep_days, max_running_jobs
from core.modelling.validation import CVSettings
from core.store.locks import process_alive
from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.jobs_support import job_ids, wait_for_progress
from tests.store_support import lock_held_by_a_stopped_process

QUICK = CVSettings(n_splits=3, n_repeats=1)
LONG = CVSettings(n_splits=5, n_repeats=20)  # 100 folds: minutes, so it is still running when cancelled or killed


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "workspace"
    Workspace(path).save(generate_cohort(CohortConfig(name="eighty", n_patients=80, seed=5), n_jobs=1))
    return path


@pytest.fixture
def workspace(template, tmp_path):
    return Workspace(shutil.copytree(template, tmp_path / "workspace"))


@pytest.fixture
def cohort(workspace):
    return workspace.load("eighty")


def _gone(job, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(job.pid, job.pid_start):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_cv_job_stores_the_run_of_the_direct_call_and_only_its_owner_sees_it(workspace, cohort, tmp_path):
    runner = JobRunner(workspace.path)
    params, key = cv_job(cohort, QUICK)
    job = runner.submit("cv", params, "alice", key)
    assert job.status == "running" and job.pid and job.pid != os.getpid()
    assert runner.submit("cv", params, "alice", key).id == job.id  # a second click joins the job under way
    finished = runner.wait(job.id, 180)
    assert finished.status == "done", runner.log(job.id)
    assert (finished.done, finished.total, finished.result_key) == (3, 3, key)

    stored = workspace.load_cv(key, cohort)
    other = Workspace(tmp_path / "direct")
    direct = other.train_cv(cohort, QUICK)
    np.testing.assert_array_equal(stored.prediction.to_numpy(), direct.prediction.to_numpy())
    np.testing.assert_array_equal(stored.explanation.values, direct.explanation.values)
    assert [f.test.tolist() for f in stored.folds] == [f.test.tolist() for f in direct.folds]

    assert [j.id for j in runner.list("alice")] == [job.id]
    assert runner.list("bob") == [] and runner.active("bob", "cv", key) is None
    with pytest.raises(InputError, match="no job"):
        runner.status(job.id, owner="bob")
    with pytest.raises(InputError, match="no job"):
        runner.cancel(job.id, "bob")
    assert runner.status(job.id, owner="alice").status == "done"


def test_cancel_stops_the_process_and_lists_no_result_and_the_queued_job_then_runs(workspace, cohort):
    runner = JobRunner(workspace.path, max_running=1)
    params, key = cv_job(cohort, LONG)
    long = runner.submit("cv", params, "alice", key)
    quick_params, quick_key = cv_job(cohort, QUICK)
    queued = runner.submit("cv", quick_params, "alice", quick_key)
    assert queued.status == "queued" and queued.pid is None  # one slot, taken

    running = wait_for_progress(runner, long.id)
    assert 1 <= running.done < running.total == 100
    runner.cancel(long.id, "alice")
    cancelled = runner.wait(long.id, 60)
    kept = workspace.cv_progress(key)
    assert cancelled.status == "cancelled" and cancelled.message == f"Training was cancelled with {kept} of 100 folds finished and kept: Train resumes from them."
    assert kept >= running.done
    assert _gone(cancelled), "the cancelled job's process still runs"
    assert workspace.load_cv(key, cohort) is None and not (workspace.path / "models" / key).exists()

    done = runner.wait(queued.id, 180)  # the freed slot went to the queued job
    assert done.status == "done" and workspace.load_cv(quick_key, cohort) is not None


def test_a_queued_job_cancels_at_once(workspace, cohort):
    runner = JobRunner(workspace.path, max_running=1)
    long = runner.submit("cv", *_args(cohort, LONG))
    queued = runner.submit("cv", *_args(cohort, QUICK))
    assert runner.cancel(queued.id, "alice").status == "cancelled"
    runner.cancel(long.id, "alice")
    assert runner.wait(long.id, 60).status == "cancelled"
    assert runner.status(queued.id).pid is None  # it never started


def _args(cohort, settings, owner="alice"):
    params, key = cv_job(cohort, settings)
    return params, owner, key


def test_a_restarted_server_sees_finished_jobs_and_marks_a_killed_one_interrupted(workspace, cohort):
    first = JobRunner(workspace.path, max_running=2)
    quick = first.submit("cv", *_args(cohort, QUICK))
    long = first.submit("cv", *_args(cohort, LONG))
    assert first.wait(quick.id, 180).status == "done"
    running = wait_for_progress(first, long.id)
    os.killpg(running.pid, signal.SIGKILL)  # the job's process dies without a word (OOM killer, reboot)
    first._children.clear()  # ... and the server that started it is gone too
    assert _gone(running)

    fresh = JobRunner(workspace.path)
    jobs = {j.id: j for j in fresh.list("alice")}
    assert jobs[quick.id].status == "done" and jobs[quick.id].result_key == quick.key
    assert jobs[long.id].status == "interrupted" and "submit it again" in jobs[long.id].message
    assert fresh.active("alice", "cv", long.key) is None
    again = fresh.submit("cv", *_args(cohort, LONG))  # a new job, not the interrupted one
    assert again.id != long.id and again.status == "running"
    fresh.cancel(again.id, "alice")
    assert fresh.wait(again.id, 60).status == "cancelled"


def test_an_ablation_job_stores_what_the_direct_run_gives(workspace, cohort):
    config = AblationConfig(n_splits=3, n_repeats=1, n_permutations=0)
    runner = JobRunner(workspace.path)
    params, digest = ablation_job(cohort, config)
    job = runner.wait(runner.submit("ablation", params, "alice", digest).id, 180)
    assert job.status == "done", runner.log(job.id)
    stored = workspace.load_ablation(digest)
    direct = run_ablation(cohort, config, n_jobs=1)
    assert stored.is_complete and (job.done, job.total) == stored.progress()
    columns = ["subset", "repeat", "fold", "auc"]
    np.testing.assert_array_equal(stored.scores[columns].sort_values(columns[:3]).to_numpy(), direct.scores[columns].sort_values(columns[:3]).to_numpy())


def test_a_job_on_a_colleagues_shared_cohort_reads_it_there_and_stores_its_run_here(workspace, cohort, tmp_path):
    mine = Workspace(tmp_path / "bob")
    params, key = cv_job(cohort, QUICK, cohort_workspace=workspace.path)  # alice's cohort, shared with bob
    runner = JobRunner(mine.path)
    job = runner.wait(runner.submit("cv", params, "bob", key).id, 120)
    assert job.status == "done", runner.log(job.id)
    assert mine.load_cv(key, cohort) is not None and mine.names() == []
    assert workspace.load_cv(key, cohort) is None and not (workspace.path / "jobs").exists()  # nothing written to alice's


def test_a_learning_curves_job_stores_the_table_of_the_direct_call(workspace, cohort):
    from core.evaluation.learning import learning_curve, learning_curve_key
    from core.jobs import learning_curves_job

    params, _ = learning_curves_job(cohort, QUICK)
    params.update(models=["xgboost"], sizes=[40, 80])  # xgboost only: the deep models take minutes
    key = learning_curve_key(cohort, QUICK, ["xgboost"], [40, 80])
    runner = JobRunner(workspace.path)
    job = runner.wait(runner.submit("learning_curves", params, "alice", key).id, 180)
    assert job.status == "done" and job.result_key == key and (job.done, job.total) == (2, 2), runner.log(job.id)
    direct = learning_curve(cohort, workspace.fusion_inputs(cohort), QUICK, ["xgboost"], [40, 80])
    stored = workspace.load_table("learning_curves", key)
    np.testing.assert_array_equal(stored[["n_patients", "auc", "ci_low", "ci_high"]].to_numpy(), direct[["n_patients", "auc", "ci_low", "ci_high"]].to_numpy())


def test_any_outcome_transfer_and_bound_jobs_store_the_tables_of_the_direct_calls(workspace, cohort, tmp_path):
    """The Any outcome page's three long computations as jobs: each stores under its key what the
    workspace's direct call stores (the page and the CLI read it there)."""
    import pandas as pd

    from core.evaluation.anyoutcome import AnyOutcomeSettings
    from core.jobs import any_outcome_job, bound_job, transfer_job

    cheap, sizes = ["emg", "kin", "clin"], [40, 80]
    runner = JobRunner(workspace.path)
    built = {"any_outcome": any_outcome_job(cohort, AnyOutcomeSettings()), "transfer": transfer_job(cohort, cheap, sizes, n_reference=2000),
             "bound": bound_job(cohort, cheap)}
    submitted = [runner.submit(kind, params, "alice", key) for kind, (params, key) in built.items()]
    for job, (kind, (_, key)) in zip(submitted, built.items()):
        job = runner.wait(job.id, 300)
        assert job.status == "done" and job.result_key == key and job.done == job.total > 0, (kind, runner.log(job.id))
    direct = Workspace(tmp_path / "direct")
    direct.save(cohort)
    again = direct.load(cohort.name)
    evaluation = direct.any_outcome_evaluation(again, AnyOutcomeSettings())
    stored = workspace.any_outcome_evaluation(cohort, AnyOutcomeSettings(), compute=False)
    pd.testing.assert_frame_equal(stored.predictions, evaluation.predictions, check_dtype=False)
    curve, limit = direct.transfer_curve(again, cheap, sizes, n_reference=2000)
    stored_curve, stored_limit = workspace.transfer_curve(cohort, cheap, sizes, compute=False)
    pd.testing.assert_frame_equal(stored_curve, curve)
    pd.testing.assert_frame_equal(stored_limit, limit)
    pd.testing.assert_frame_equal(workspace.distillation_bound(cohort, cheap, compute=False), direct.distillation_bound(again, cheap))


def test_a_cancelled_bound_keeps_its_finished_subsamples_and_the_same_job_resumes_from_them(workspace, cohort):
    import re

    from core.evaluation.transfer import BOUND_SUBSAMPLES, bound_key
    from core.jobs import bound_job

    cheap = ["emg", "kin", "clin"]
    params, key = bound_job(cohort, cheap)
    runner = JobRunner(workspace.path)
    job = runner.submit("bound", params, "alice", key)
    wait_for_progress(runner, job.id, done=1, timeout_s=180)
    runner.cancel(job.id, "alice")
    cancelled = runner.wait(job.id, 60)
    kept = workspace.piece_checkpoint("transfer_bounds", bound_key(cohort, cheap))
    match = re.fullmatch(rf"The distillation bound was cancelled with (\d) of {BOUND_SUBSAMPLES} subsamples finished and kept: running it again resumes from them\.",
                         cancelled.message)
    assert cancelled.status == "cancelled" and match, (cancelled.message, runner.log(job.id))
    assert 1 <= int(match.group(1)) == kept.count() < BOUND_SUBSAMPLES
    assert workspace.distillation_bound(cohort, cheap, compute=False) is None

    again = runner.wait(runner.submit("bound", params, "alice", key).id, 300)
    assert again.status == "done" and again.done == again.total == BOUND_SUBSAMPLES, runner.log(again.id)
    assert workspace.distillation_bound(cohort, cheap, compute=False)["subsample"].drop_duplicates().tolist() == list(range(BOUND_SUBSAMPLES))
    assert not kept.folder.exists()


def test_a_job_of_a_cohort_saved_again_fails_with_a_message(workspace, cohort):
    params, key = cv_job(cohort, QUICK)
    params["cohort_digest"] = "0" * 64  # as if the cohort had been replaced after the click
    runner = JobRunner(workspace.path)
    job = runner.wait(runner.submit("cv", params, "alice", key).id, 120)
    assert job.status == "failed" and job.message == "eighty: cohort 'eighty' was saved again with other content after this job was submitted; start it again."


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_the_number_of_jobs_at_once_must_be_a_whole_number_of_at_least_one(monkeypatch, value, tmp_path):
    monkeypatch.setenv(MAX_JOBS_ENV, value)
    with pytest.raises(InputError, match=f"found '{value}'"):
        JobRunner(tmp_path)
    monkeypatch.setenv(MAX_JOBS_ENV, "3")
    assert JobRunner(tmp_path).max_running == 3 and max_running_jobs(2) == 2


def test_finished_jobs_older_than_the_kept_days_are_removed_with_their_logs_and_nothing_else(tmp_path):
    from datetime import datetime, timedelta, timezone

    runner = JobRunner(tmp_path, keep_days=30)
    now = datetime.now(timezone.utc)

    def stored(number: int, status: str, finished_days_ago: float | None) -> Job:
        finished = None if finished_days_ago is None else (now - timedelta(days=finished_days_ago)).isoformat()
        job = Job(id=f"20261101T00000{number}-0000000{number}", owner="alice", kind="cv", key=f"k{number}", params={}, status=status,
                  created=(now - timedelta(days=60)).isoformat(), finished=finished)
        runner._write(job)
        (runner.folder / f"{job.id}.log").write_text("output\n")
        return job

    old_done, old_failed = stored(1, "done", 31), stored(2, "failed", 45)
    recent, unfinished = stored(3, "cancelled", 29), stored(4, "interrupted", None)  # no finishing time: kept
    queued = stored(5, "queued", None)
    runner.max_running = 0  # the queued job stays queued
    listed = {job.id for job in runner.list("alice")}
    assert listed == {recent.id, unfinished.id, queued.id}
    remaining = sorted(path.name for path in runner.folder.iterdir() if not path.name.startswith("."))
    assert remaining == sorted(f"{job.id}.{suffix}" for job in (recent, unfinished, queued) for suffix in ("json", "log"))
    assert not any(old.id in name for old in (old_done, old_failed) for name in remaining)
    shorter = JobRunner(tmp_path, keep_days=1, max_running=1)
    shorter.max_running = 0
    assert {job.id for job in shorter.list("alice")} == {unfinished.id, queued.id}


def test_a_process_stopped_holding_the_jobs_lock_blocks_no_listing_and_a_change_names_it(tmp_path):
    runner = JobRunner(tmp_path, lock_wait_s=1.0)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan = Job(id="20261101T000001-00000001", owner="alice", kind="cv", key="k1", params={}, status="running", total=5,
                 created="2026-11-01T00:00:01+00:00", pid=int(ended.stdout), pid_start=1)  # its process has gone
    runner._write(orphan)
    reporter = Reporter(runner, orphan.id, threading.Event())
    with lock_held_by_a_stopped_process(runner.folder / ".lock") as holder:
        started = time.monotonic()
        assert [(j.id, j.status) for j in runner.list("alice")] == [(orphan.id, "running")]  # as stored: nobody could mark it
        assert runner.status(orphan.id).status == "running"
        assert time.monotonic() - started < 3.0  # two waits of LIST_LOCK_WAIT_S (0.5 s), not for ever
        busy = f"locked by process {holder} \\(stopped\\) for more than 1 s"
        with pytest.raises(JobsBusy, match=busy):
            runner.submit("cv", {}, "alice", "k2")
        with pytest.raises(JobsBusy, match=busy):
            runner.cancel(orphan.id, "alice")
        reporter.progress(3, 5, "fold 3 of 5", check=False)  # the write waits for the next progress, the job goes on
        assert runner._read(orphan.id).done == 0
    assert reporter.flush() and runner._read(orphan.id).done == 3
    interrupted = runner.status(orphan.id)  # the lock is free: the gone process is noticed
    assert (interrupted.status, interrupted.done, interrupted.label) == ("interrupted", 3, "")
    assert job_ids(tmp_path) == {orphan.id}  # the refused submit stored nothing


@pytest.mark.parametrize("value", ["0", "-2", "forever", "inf", "nan"])
def test_the_days_a_finished_job_is_kept_must_be_a_number_above_zero(monkeypatch, value, tmp_path):
    monkeypatch.setenv(KEEP_DAYS_ENV, value)
    with pytest.raises(InputError, match=f"days a finished job is kept must be a number above 0, found '{value}'"):
        JobRunner(tmp_path)
    monkeypatch.setenv(KEEP_DAYS_ENV, "7.5")
    assert JobRunner(tmp_path).keep_days == 7.5 and job_keep_days(2) == 2.0
    monkeypatch.delenv(KEEP_DAYS_ENV)
    assert job_keep_days() == 30.0


def test_bad_ids_owners_and_kinds_are_refused(tmp_path):
    runner = JobRunner(tmp_path)
    with pytest.raises(InputError, match="not a job id"):
        runner.status("../../etc/passwd")
    with pytest.raises(InputError, match="owner"):
        runner.submit("cv", {}, "a/b", "k")
    with pytest.raises(InputError, match="unknown job kind 'mine'"):
        runner.submit("mine", {}, "alice", "k")


def test_a_tms_dataset_job_writes_the_dataset_of_the_direct_call(tmp_path):
    from core.jobs import tms_dataset_chunks, tms_dataset_job
    from core.tms.dataset import DatasetConfig, generate_dataset, load_dataset

    config = DatasetConfig(cell_types=["L4_LBC"], variants=[0], n_placements=2, sites_per_placement=2, rotations_per_site=1,
                           n_directions=2, chunk_size=2, n_regions=3, seed=3)  # 6 thresholds in 3 chunks
    runner = JobRunner(tmp_path / "job")
    params, key = tms_dataset_job(config, n_jobs=1)
    job = runner.wait(runner.submit("tms_dataset", params, "alice", key).id, 300)
    assert job.status == "done" and job.result_key == config.digest() and (job.done, job.total) == (6, 6), runner.log(job.id)
    assert tms_dataset_chunks(config, tmp_path / "job") == (3, 3)
    made = load_dataset(tmp_path / "job" / "tms" / key)
    direct = load_dataset(generate_dataset(config, tmp_path / "direct", n_jobs=1).folder)
    assert made.complete and direct.complete
    np.testing.assert_array_equal(made.rows["threshold_a_per_us"].to_numpy(), direct.rows["threshold_a_per_us"].to_numpy())
    np.testing.assert_array_equal(made.directions["threshold_v_per_m"].to_numpy(), direct.directions["threshold_v_per_m"].to_numpy())
