"""The pages with background jobs, driven through AppTest: Train on the Prediction page starts a job,
shows its progress and Cancel, a new session opening the page reattaches to the running job, and the
finished job's run is the page's result; Cancel stops the job.

The job's process is paused (SIGSTOP) while the second session looks, so it is still running then,
however fast the machine.
"""

import os
import signal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.jobs import JobRunner
from core.jobs import runner as jobs_runner
from core.modelling.validation import CVSettings
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from tests.app_support import APP, captions, no_exception
from tests.jobs_support import finish_jobs, job_ids, wait_for_progress
from tests.store_support import lock_held_by_a_stopped_process

PAGE = "pages/prediction.py"

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


def open_prediction(repeats: int) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).switch_page(PAGE).run()
    at.number_input(key="pred-repeats").set_value(repeats).run()
    no_exception(at)
    return at


def job_panel(at) -> list[str]:
    """Ids of the jobs whose progress panel the page shows (from their Cancel buttons)."""
    return [b.key.removeprefix("job-cancel-") for b in at.button if (b.key or "").startswith("job-cancel-")]


def test_train_starts_a_job_that_a_new_session_reattaches_to_and_its_run_becomes_the_result(empty_workspace):
    at = open_prediction(repeats=2)
    at.button(key="pred-train").click().run()
    no_exception(at)
    runner = JobRunner(empty_workspace)
    (job,) = runner.list("local")
    os.killpg(job.pid, signal.SIGSTOP)  # hold it running while the second session looks
    try:
        assert job_panel(at) == [job.id] and job.kind == "cv"
        assert len(at.get("progress")) == 1
        assert any("Training xgboost (engineered features): 2 x 5-fold cross-validation" in m.value for m in at.markdown)
        assert not any("(trained and saved)" in c for c in captions(at))

        other = open_prediction(repeats=2)  # another browser, or the same user after closing the tab
        assert job_panel(other) == [job.id]
        assert runner.status(job.id).status == "running"
    finally:
        os.killpg(job.pid, signal.SIGCONT)
    (done,) = finish_jobs(empty_workspace)
    assert done.status == "done", runner.log(job.id)

    at.run()  # what the panel's poll does once the job has finished
    no_exception(at)
    assert job_panel(at) == []
    assert any(f"Run `{done.result_key}` (trained and saved)" in c for c in captions(at))
    other.run()
    assert any(f"Run `{done.result_key}` (loaded saved run)" in c for c in captions(other))  # that session did not train it
    tiny = Workspace(empty_workspace).load("tiny")
    assert done.result_key == CVSettings(n_repeats=2).run_digest(tiny)


def test_train_while_a_stopped_process_holds_the_jobs_lock_names_it_and_keeps_the_page(empty_workspace, monkeypatch):
    monkeypatch.setattr(jobs_runner, "LOCK_WAIT_S", 1.0)
    at = open_prediction(repeats=2)
    with lock_held_by_a_stopped_process(Path(empty_workspace) / "jobs" / ".lock") as holder:
        at.button(key="pred-train").click().run()
        no_exception(at)
        assert [e.value for e in at.error] == [f"{Path(empty_workspace) / 'jobs' / '.lock'}: the jobs of this workspace are locked by process {holder} (stopped) for more than 1 s; "
                                               "try again in a moment, or end that process if it is stuck."]
        assert at.selectbox(key="pred-model").value == "xgboost" and at.number_input(key="pred-repeats").value == 2  # the page above is kept
        assert job_ids(empty_workspace) == set()  # nothing was submitted
        other = open_prediction(repeats=2)  # a page that only looks for its job opens as usual
        assert job_panel(other) == [] and not other.error


def test_cancel_on_the_page_stops_the_job_and_says_what_was_kept(empty_workspace):
    at = open_prediction(repeats=20)  # 100 folds: still running when Cancel is pressed
    at.button(key="pred-train").click().run()
    runner = JobRunner(empty_workspace)
    (job,) = runner.list("local")
    wait_for_progress(runner, job.id)
    at.run()
    at.button(key=f"job-cancel-{job.id}").click().run()
    no_exception(at)
    (cancelled,) = finish_jobs(empty_workspace)
    assert cancelled.status == "cancelled"
    at.run()
    no_exception(at)
    assert job_panel(at) == []
    kept = Workspace(empty_workspace).cv_progress(cancelled.key)
    assert kept >= 1 and [w.value for w in at.warning] == [f"Training of this run was stopped with {kept} of 100 folds finished and kept: press **Train** to resume."]
    assert Workspace(empty_workspace).load_cv(cancelled.key, Workspace(empty_workspace).load("tiny")) is None


def test_the_tms_page_generates_the_shipped_dataset_as_a_job_and_reattaches(tmp_path, monkeypatch):
    from core.jobs import shipped_tms_dataset_config

    workspace = tmp_path / "workspace"
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(workspace))
    at = AppTest.from_file(str(APP), default_timeout=300).switch_page("pages/tms.py").run()
    no_exception(at)
    assert any("not started in this workspace" in c for c in captions(at))
    at.number_input(key="tms-dataset-limit").set_value(1)
    at.button(key="tms-dataset-run").click().run()
    no_exception(at)
    runner = JobRunner(workspace)
    (job,) = runner.list("local")
    config = shipped_tms_dataset_config()
    assert (job.kind, job.key, job.params["limit"], job.params["config"]) == ("tms_dataset", config.digest(), 1, config.to_dict())
    assert job_panel(at) == [job.id]
    os.killpg(job.pid, signal.SIGSTOP)  # still running while the second session looks
    try:
        other = AppTest.from_file(str(APP), default_timeout=300).switch_page("pages/tms.py").run()
        assert job_panel(other) == [job.id]
    finally:
        os.killpg(job.pid, signal.SIGCONT)
    runner.cancel(job.id, "local")
    (cancelled,) = finish_jobs(workspace)
    assert cancelled.status == "cancelled"
    at.run()
    no_exception(at)
    assert job_panel(at) == []
    assert at.button(key="tms-dataset-run")  # offered again


def test_a_bad_job_limit_is_an_error_on_the_page_not_a_traceback(empty_workspace, monkeypatch):
    from core.jobs import MAX_JOBS_ENV

    monkeypatch.setenv(MAX_JOBS_ENV, "0")
    at = AppTest.from_file(str(APP), default_timeout=120).switch_page(PAGE).run()
    no_exception(at)
    assert [e.value for e in at.error] == [f"[{MAX_JOBS_ENV}] the number of jobs that may run at once must be a whole number of at least 1, found '0'."]


def open_cohort_page(monkeypatch, inline_max: int) -> AppTest:
    import components.panels.cohort as cohort_panels

    monkeypatch.setattr(cohort_panels, "INLINE_MAX_PATIENTS", inline_max)  # the AppTest runs the page in this process
    at = AppTest.from_file(str(APP), default_timeout=120).switch_page("pages/cohort.py").run()
    no_exception(at)
    return at


def test_a_cohort_above_the_page_size_is_generated_by_a_job_that_opens_it(empty_workspace, monkeypatch):
    from tests.test_page_cohort import page_caption, submit_form

    at = submit_form(open_cohort_page(monkeypatch, inline_max=100), **{"Cohort name": "large", "Patients": 120})
    no_exception(at)
    (job,) = JobRunner(empty_workspace).list("local")
    assert job.kind == "generate" and job.params["config"]["n_patients"] == 120
    os.killpg(job.pid, signal.SIGSTOP)  # hold it running while the page looks
    try:
        at.run()
        assert job_panel(at) == [job.id]
        assert any("Generating 120 patients as 'large' (1 chunk of 500)" in m.value for m in at.markdown)
        assert at.expander[0].label == "Generate a synthetic cohort" and at.expander[0].proto.expanded  # kept open while it runs
    finally:
        os.killpg(job.pid, signal.SIGCONT)
    (done,) = finish_jobs(empty_workspace)
    assert done.status == "done", JobRunner(empty_workspace).log(job.id)
    at.run()  # what the panel's poll does once the job has finished
    no_exception(at)
    assert job_panel(at) == [] and page_caption(at).startswith("**large** · 120 patients")
    assert Workspace(empty_workspace).load("large").n_patients == 120


def test_cancelling_a_generation_job_keeps_its_chunks_and_the_same_settings_resume(empty_workspace, monkeypatch):
    from core.synth.config import CohortConfig
    from tests.test_page_cohort import submit_form

    at = submit_form(open_cohort_page(monkeypatch, inline_max=100), **{"Cohort name": "stopped", "Patients": 6000})
    runner = JobRunner(empty_workspace)
    (job,) = runner.list("local")
    wait_for_progress(runner, job.id)
    at.run()
    at.button(key=f"job-cancel-{job.id}").click().run()
    (cancelled,) = finish_jobs(empty_workspace)
    assert cancelled.status == "cancelled"
    at.run()
    no_exception(at)
    kept = Workspace(empty_workspace).generation_progress(CohortConfig.from_dict(job.params["config"]))
    assert 1 <= kept < 12 and [i.value for i in at.info if "cancelled" in i.value] == [
        f"The generation of 'stopped' was cancelled with {kept} of 12 chunks of patients finished and kept: running it again resumes from them."]
    assert "stopped" not in Workspace(empty_workspace)
