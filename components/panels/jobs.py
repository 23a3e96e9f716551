"""The shared panel of background jobs (:mod:`core.jobs`): submit, follow a job's progress with a
Cancel button, and say what a finished job left when its result is not there.

A job runs in its own process, so closing the tab or rerunning the page does not stop it; the
page finds its job again by owner, kind and key (e.g. the run digest) and reattaches. The panel
polls the job's state once a second inside a fragment, and reruns the page once the job finished,
so the page then shows the stored result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st

from components import state
from core.errors import InputError
from core.jobs import Job, JobRunner, JobsBusy

POLL_S = 1.0
_SUBMITTED = "jobs.submitted"  # ids of the jobs this session submitted


def owner() -> str:
    """Who jobs belong to: :func:`components.state.owner_id` (the logged-in user's id, ``"local"``
    when logins are off). A user lists, reattaches to and cancels only their own jobs."""
    return state.owner_id()


@st.cache_resource(max_entries=16)
def _runner_at(path: str) -> JobRunner:
    return JobRunner(path)


def runner() -> JobRunner:
    """The job runner of the current workspace; a bad ``NEUROPREDICT_MAX_JOBS`` or an unwritable
    jobs folder is shown as an error and stops the page."""
    try:
        return _runner_at(str(state.workspace_path()))
    except InputError as exc:
        st.error(str(exc))
        st.stop()


def submit(kind: str, params: dict, key: str) -> Job:
    """Submit a job (or join this user's job of the same kind and key under way) and remember it in this
    session. While another process holds the jobs' lock too long, says so and stops the page there."""
    try:
        job = runner().submit(kind, params, owner(), key)
    except JobsBusy as exc:
        st.error(str(exc), icon=":material/hourglass_top:")
        st.stop()
    state.session_store(_SUBMITTED, set).add(job.id)
    return job


def cohort_workspace() -> str | None:
    """The workspace holding the current cohort when it is a colleague's, shared read-only (its
    jobs read it from there and store their results in this user's workspace); None for an own cohort."""
    key = state.current_cohort_key()
    if not key or "/" not in key:
        return None
    return str(state.accounts().workspace(key.split("/", 1)[0]).path)


def active(kind: str, key: str) -> Job | None:
    """This user's queued or running job of this kind and key: what the page reattaches to."""
    return runner().active(owner(), kind, key)


def latest(kind: str, key: str) -> Job | None:
    """This user's newest job of this kind and key, whatever its status."""
    return runner().latest(owner(), kind, key)


def submitted_here(job: Job) -> bool:
    """Whether this session submitted ``job``."""
    return job.id in state.session_store(_SUBMITTED, set)


def made_here(kind: str, key: str) -> bool:
    """Whether the stored result of this key came from a job this session submitted."""
    job = latest(kind, key)
    return job is not None and job.status == "done" and submitted_here(job)


def finished_notice(job: Job | None) -> None:
    """What a job that ended without a result says: its error, what a cancel kept, or that it was interrupted."""
    if job is None or job.active or job.status == "done" or not job.message:
        return
    if job.status == "failed":
        st.error(job.message)
    elif job.status == "cancelled":
        st.info(job.message, icon=":material/pause_circle:")
    else:
        st.warning(job.message, icon=":material/warning:")


def progress_panel(job: Job, title: str, *, detail: Callable[[Job], None] | None = None, cancel_help: str = "") -> None:
    """The job's progress, updated every second, with a Cancel button; ``detail(job)`` draws more
    (e.g. loss curves). Reruns the page once the job has finished."""
    _poll(job.id, title, detail, cancel_help)


def offer_or_follow(kind: str, built: tuple[dict, str], *, title: str, info: str, button: str, button_key: str, primary: bool = True,
                    cancel_help: str = "Stops after the step under way; the finished steps are kept, and the button resumes from them.") -> None:
    """Long work as a background job: follow this user's job of this kind and key (``built``: a job
    builder's ``(params, key)``), or say why there is no result (and what a failed or cancelled job
    said) and offer the button that starts it. The page shows the stored result once the job has finished."""
    params, key = built
    job = active(kind, key)
    if job is None:
        offer = st.empty()
        with offer.container():
            finished_notice(latest(kind, key))
            st.info(info, icon=":material/info:")
            clicked = st.button(button, type="primary" if primary else "secondary", key=button_key, icon=":material/play_arrow:")
        if clicked:
            job = submit(kind, params, key)
            offer.empty()  # the job's panel replaces the offer
    if job is not None:
        progress_panel(job, title, cancel_help=cancel_help)


@st.fragment(run_every=POLL_S)
def _poll(job_id: str, title: str, detail, cancel_help: str) -> None:
    job = runner().status(job_id, owner())
    if not job.active:
        st.rerun(scope="app")  # the page now shows the stored result (or why there is none)
    with st.container(border=True, key=f"job-{job_id}"):
        st.markdown(f"**{title}**")
        if job.status == "queued":
            st.progress(0.0, text=f"queued: waiting for a free slot ({runner().max_running} job(s) run at a time on this server)")
        else:
            st.progress(job.fraction, text=job.label or "starting")
        c = st.columns([1, 4], vertical_alignment="center")
        c[0].button("Cancel", key=f"job-cancel-{job_id}", icon=":material/stop_circle:", disabled=job.cancel_requested, help=cancel_help or None,
                    on_click=cancel, args=(job_id,))
        since = job.started or job.created
        c[1].caption(f"Job `{job.id}` · {job.status} since {_clock(since)} UTC · it runs on the server: closing this tab does not stop it, "
                     "and opening this page again shows it here.")
        if detail is not None:
            detail(job)


def cancel(job_id: str) -> None:
    """Cancel this user's job (the Cancel button's callback); a jobs lock held too long is shown, and the button stays."""
    try:
        runner().cancel(job_id, owner())
    except JobsBusy as exc:
        st.error(str(exc), icon=":material/hourglass_top:")


def _clock(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return "?"
