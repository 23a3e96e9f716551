"""The job runner: one process per job, its state as one JSON file per job in the workspace.

Layout::

    <workspace>/jobs/<id>.json   the job's state (written atomically: temporary file, fsync, rename)
    <workspace>/jobs/<id>.log    the job process's output (tracebacks of unexpected errors)
    <workspace>/jobs/.lock       an flock held while a job's state is read, changed and written

A job runs as ``python -m core.jobs run <workspace> <id>`` in a session of its own, so closing the
browser tab, rerunning the page or restarting the Streamlit server does not stop it. At most
``NEUROPREDICT_MAX_JOBS`` jobs (default 1) run at once; the others wait in a queue, and whoever
looks at the jobs next (a page polling its job, a job that just finished) starts the next one.
Cancelling sends SIGTERM: the job stops at its next progress report, keeping what its kind keeps
(finished folds, ablation fits, pieces of an evaluation), and after ``CANCEL_GRACE_S`` its process
group is killed. A running job whose process has gone without a final state (a crash, a reboot,
SIGKILL) is marked ``interrupted`` the next time the jobs are looked at. A finished job's state
and log are removed ``NEUROPREDICT_KEEP_JOBS_DAYS`` days (default 30) after it finished; what it
made stays in the workspace.

Nobody waits on the lock for ever: a process holding it may be stopped (SIGSTOP, a debugger) or
stuck on a slow disk. Listing and polling read the state files without it after
``LIST_LOCK_WAIT_S`` (every write is an atomic rename, so what they read is whole, if a moment
old); a job skips a progress write it cannot make at once and makes it with the next one; a
change (submit, cancel, a job's final state) raises :class:`JobsBusy` naming the holder after
``LOCK_WAIT_S``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from core.errors import InputError
from core.store.locks import LockBusy, exclusive_lock, process_alive, process_start

MAX_JOBS_ENV = "NEUROPREDICT_MAX_JOBS"
KEEP_DAYS_ENV = "NEUROPREDICT_KEEP_JOBS_DAYS"
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "interrupted")
CANCEL_GRACE_S = 20.0  # after SIGTERM, seconds before the job's process group is killed
PROGRESS_EVERY_S = 0.5  # a job writes its progress at most this often (and always its last step)
LOCK_WAIT_S = 30.0  # a change to the jobs waits this long for the lock, then raises JobsBusy
LIST_LOCK_WAIT_S = 0.5  # listing and polling wait this long, then read the state files without the lock
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")
_OWNER = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``core`` package
_lock_depth = threading.local()


class JobCancelled(Exception):
    """Raised inside a job when it was cancelled; the message says what was kept."""


class JobsBusy(LockBusy):
    """The jobs folder's lock stayed held by another process for longer than the runner waits."""


@dataclass
class Job:
    """One job's state, as stored in ``<workspace>/jobs/<id>.json``.

    Attributes
    ----------
    id, owner, kind : who asked for what (``kind`` is a key of :data:`core.jobs.KINDS`).
    key : what the job makes, e.g. a run digest: a page finds its job by owner, kind and key.
    params : the kind's parameters (JSON).
    status : queued, running, done, failed, cancelled or interrupted.
    done, total, label : progress (e.g. folds trained of all folds) and what it is doing now.
    message : why it failed or what a cancelled job kept.
    result_key : where the result is in the workspace (run digest, ablation digest, dataset digest).
    created, started, finished : UTC times, ISO 8601.
    pid, pid_start : the job's process and its start time (clock ticks since boot; tells a reused pid apart).
    cancel_requested : whether cancel was asked for.
    detail : what the kind reports beside progress (e.g. ``losses``: each epoch's losses of a deep model).
    """

    id: str
    owner: str
    kind: str
    key: str
    params: dict
    status: str = "queued"
    done: int = 0
    total: int = 0
    label: str = ""
    message: str = ""
    result_key: str | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None
    pid: int | None = None
    pid_start: int | None = None
    cancel_requested: bool = False
    detail: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        """Share of the work done, 0 to 1."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def max_running_jobs(value: int | None = None) -> int:
    """How many jobs may run at once: ``value``, else ``NEUROPREDICT_MAX_JOBS``, else 1."""
    raw = value if value is not None else os.environ.get(MAX_JOBS_ENV, "1")
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 0
    if isinstance(raw, bool) or number < 1 or str(number) != str(raw).strip():
        raise InputError(f"the number of jobs that may run at once must be a whole number of at least 1, found {raw!r}.", field=MAX_JOBS_ENV)
    return number


def _timestamp(iso: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 time; infinity when there is none (or it is unreadable)."""
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return float("inf")


def job_keep_days(value: float | None = None) -> float:
    """Days a finished job's state and log are kept: ``value``, else ``NEUROPREDICT_KEEP_JOBS_DAYS``,
    else 30. A server checks this at start, so a bad setting is reported before any job is lost."""
    raw = value if value is not None else os.environ.get(KEEP_DAYS_ENV, "30")
    try:
        days = float(raw)
    except (TypeError, ValueError):
        days = float("nan")
    if isinstance(raw, bool) or not days > 0 or days == float("inf"):
        raise InputError(f"the days a finished job is kept must be a number above 0, found {raw!r}.", field=KEEP_DAYS_ENV)
    return days


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half of one."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(staging, "w", encoding="utf-8") as handle:
        json.dump(data, handle, default=_plain)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)
    with contextlib.suppress(OSError):  # the rename itself survives a power cut once the folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _plain(value):
    """numpy scalars and other number-likes in a job's detail, as JSON numbers or text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class JobRunner:
    """Submit, follow and cancel background jobs of one workspace.

    Parameters
    ----------
    workspace : the workspace folder (jobs are kept in its ``jobs/`` subfolder).
    max_running : jobs that may run at once (default: ``NEUROPREDICT_MAX_JOBS``, else 1).
    cancel_grace_s : after a cancel, seconds a job has to stop at its next progress report before
        its process group is killed.
    keep_days : days a finished job's state and log are kept (default: ``NEUROPREDICT_KEEP_JOBS_DAYS``,
        else 30); older ones are removed the next time the jobs are looked at. The results a job
        stored are not touched.
    lock_wait_s : seconds a change (submit, cancel, a job's final state) waits for the jobs folder's
        lock before it raises :class:`JobsBusy` (default: ``LOCK_WAIT_S``, 30).

    Any number of runners (in the server, in another server process after a restart, in the jobs
    themselves) may look at one workspace at the same time: every change is made under an flock.
    """

    def __init__(self, workspace: str | Path, *, max_running: int | None = None, cancel_grace_s: float = CANCEL_GRACE_S, keep_days: float | None = None,
                 lock_wait_s: float | None = None):
        self.workspace = Path(workspace)
        self.folder = self.workspace / "jobs"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the jobs folder: {exc.strerror}.", source=str(self.folder)) from exc
        self.max_running = max_running_jobs(max_running)
        self.cancel_grace_s = float(cancel_grace_s)
        self.keep_days = job_keep_days(keep_days)
        self.lock_wait_s = float(LOCK_WAIT_S if lock_wait_s is None else lock_wait_s)
        self._children: dict[int, subprocess.Popen] = {}
        self._parsed: dict[str, tuple] = {}  # job id -> (file stamp, Job): see _all

    # --- the public API -----------------------------------------------------------------------------

    def submit(self, kind: str, params: dict, owner: str, key: str) -> Job:
        """Queue a job (it starts at once when a slot is free) and return its state.

        When ``owner`` already has a queued or running job of this ``kind`` and ``key``, that job
        is returned instead of a second one (two clicks, two tabs).
        """
        from core.jobs.kinds import KINDS

        if kind not in KINDS:
            raise InputError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}.", field="kind")
        self._check_owner(owner)
        if not isinstance(key, str) or not key:
            raise InputError(f"a job needs a key naming what it makes (e.g. a run digest), found {key!r}.", field="key")
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise InputError(f"job parameters must be plain JSON values ({exc}).", field="params") from exc
        with self._locked():
            for job in self._all():
                if job.owner == owner and job.kind == kind and job.key == key and job.active:
                    return job
            job = Job(id=self._new_id(), owner=owner, kind=kind, key=key, params=params, created=_now(), label="waiting for a free slot")
            self._write(job)
            self._pump()
            return self._read(job.id)

    def status(self, job_id: str, owner: str | None = None) -> Job:
        """The job's state now; InputError when there is no such job (of ``owner``, when given)."""
        job = self._read_checked(job_id, owner)
        if job.status == "queued" or (job.status == "running" and not self._alive(job)):
            with contextlib.suppress(JobsBusy), self._locked(LIST_LOCK_WAIT_S):  # busy: the job as stored, pumped next time
                self._pump()
                job = self._read(job_id)
        return job

    def list(self, owner: str, kind: str | None = None, key: str | None = None) -> list[Job]:
        """``owner``'s jobs (only theirs), newest first; of one kind and key when given."""
        self._check_owner(owner)
        try:
            with self._locked(LIST_LOCK_WAIT_S):
                jobs = self._pump()
        except JobsBusy:  # the jobs as stored; queued ones start and dead ones are marked the next time
            jobs = self._all()
        mine = [j for j in jobs if j.owner == owner and (kind is None or j.kind == kind) and (key is None or j.key == key)]
        return sorted(mine, key=lambda j: (j.created, j.id), reverse=True)

    def latest(self, owner: str, kind: str, key: str) -> Job | None:
        """``owner``'s newest job of this kind and key (any status), or None."""
        jobs = self.list(owner, kind, key)
        return jobs[0] if jobs else None

    def active(self, owner: str, kind: str, key: str) -> Job | None:
        """``owner``'s queued or running job of this kind and key, or None: what a page reattaches to."""
        return next((j for j in self.list(owner, kind, key) if j.active), None)

    def cancel(self, job_id: str, owner: str) -> Job:
        """Cancel ``owner``'s job: a queued one at once, a running one at its next progress report
        (its process group is killed after ``cancel_grace_s``). A finished job is left as it is."""
        self._check_owner(owner)
        with self._locked():
            job = self._read_checked(job_id, owner)
            if job.status == "queued":
                job.status, job.finished, job.message, job.label = "cancelled", _now(), "Cancelled before it started.", ""
                job.cancel_requested = True
                self._write(job)
            elif job.status == "running" and not job.cancel_requested:
                job.cancel_requested, job.label = True, "cancelling ..."
                self._write(job)
                if self._alive(job):
                    # The job's own process only: it stops its workers itself at its next progress report
                    # (the whole group is killed only after the grace period), so their finished work is kept.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(job.pid, signal.SIGTERM)
                else:
                    self._pump()
                    job = self._read(job_id)
            return job

    def wait(self, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.1) -> Job:
        """Block until the job has finished (any final status); TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.status(job_id)
            if not job.active:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s:g} s ({job.done} of {job.total}: {job.label})")
            time.sleep(poll_s)

    def log(self, job_id: str) -> str:
        """The job process's output (empty before it started)."""
        self._check_id(job_id)
        path = self.folder / f"{job_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- state files --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, wait_s: float | None = None):
        """Hold the jobs folder's flock (re-entrant within a thread); :class:`JobsBusy` when another
        process holds it for longer than ``wait_s`` (default ``lock_wait_s``; 0: one try)."""
        depth = getattr(_lock_depth, "value", 0)
        if depth:
            _lock_depth.value = depth + 1
            try:
                yield
            finally:
                _lock_depth.value = depth
            return
        wait_s = self.lock_wait_s if wait_s is None else wait_s
        with exclusive_lock(self.folder / ".lock", wait_s, "the jobs of this workspace are", JobsBusy):
            _lock_depth.value = 1
            try:
                yield
            finally:
                _lock_depth.value = 0

    @staticmethod
    def _new_id() -> str:
        return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not isinstance(job_id, str) or not _ID.match(job_id):
            raise InputError(f"{job_id!r} is not a job id (e.g. 20260101T120000-0a1b2c3d).", field="job")

    @staticmethod
    def _check_owner(owner: str) -> None:
        if not isinstance(owner, str) or not _OWNER.match(owner):
            raise InputError(f"a job's owner must be a user name of 1-200 printable characters without slashes, found {owner!r}.", field="owner")

    def _read(self, job_id: str) -> Job | None:
        path = self.folder / f"{job_id}.json"
        try:
            return Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"the stored state of job {job_id} cannot be read ({exc}).", source=str(path)) from exc

    def _read_checked(self, job_id: str, owner: str | None) -> Job:
        self._check_id(job_id)
        job = self._read(job_id)
        if job is None or (owner is not None and job.owner != owner):  # another owner's job does not exist for you
            raise InputError(f"no job {job_id}" + (f" of {owner!r}" if owner is not None else "") + ".", field="job")
        return job

    def _write(self, job: Job) -> None:
        _write_json(self.folder / f"{job.id}.json", job.to_dict())

    def _all(self) -> list[Job]:
        """Every job of the folder. A file is parsed again only when it was replaced since it was last
        read (its inode and mtime changed: every write is a rename of a new file)."""
        jobs, seen = [], {}
        for path in self.folder.glob("*.json"):
            if not _ID.match(path.stem):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._parsed.get(path.stem)
            if cached is not None and cached[0] == stamp:
                job = cached[1]
            else:
                job = self._read(path.stem)
                if job is None:
                    continue
            seen[path.stem] = (stamp, job)
            jobs.append(copy.copy(job))  # callers set fields of what they get; the cache keeps its own
        self._parsed = seen
        return jobs

    # --- processes ----------------------------------------------------------------------------------

    def _alive(self, job: Job) -> bool:
        child = self._children.get(job.pid or -1)
        if child is not None:
            return child.poll() is None
        return process_alive(job.pid, job.pid_start)

    def _pump(self) -> list[Job]:
        """Remove finished jobs older than ``keep_days``, mark running jobs whose process has gone, then
        start queued jobs while slots are free (oldest first); every job left, as now. Call with the lock held."""
        jobs = self._prune(self._all())
        running = 0
        for job in jobs:
            if job.status != "running":
                continue
            if self._alive(job):
                running += 1
                continue
            if job.cancel_requested:
                job.status, job.message = "cancelled", job.message or "Cancelled: the job's process ended before it could say how far it got; submitting it again resumes from what was kept."
            else:
                job.status = "interrupted"
                job.message = ("The job's process ended before it finished (a server restart, a crash, or it was killed); "
                               "submit it again: it resumes from what was kept.")
            job.finished, job.label = _now(), ""
            self._write(job)
        queued = sorted((j for j in jobs if j.status == "queued"), key=lambda j: (j.created, j.id))
        for job in queued[: max(0, self.max_running - running)]:
            self._launch(job)
        return jobs

    def _prune(self, jobs: list[Job]) -> list[Job]:
        """``jobs`` less those finished more than ``keep_days`` ago, whose state and log are removed."""
        cutoff = datetime.now(timezone.utc).timestamp() - self.keep_days * 86400.0
        kept = []
        for job in jobs:
            if job.status in FINISHED and _timestamp(job.finished) < cutoff:
                for suffix in (".log", ".json"):  # the state last: a job without one is not listed
                    with contextlib.suppress(FileNotFoundError):
                        (self.folder / f"{job.id}{suffix}").unlink()
            else:
                kept.append(job)
        return kept

    def _launch(self, job: Job) -> None:
        from core.parallel import child_python_env  # imports joblib: only when a job starts

        try:
            with open(self.folder / f"{job.id}.log", "ab") as log:
                process = subprocess.Popen([sys.executable, "-m", "core.jobs", "run", str(self.workspace.resolve()), job.id], cwd=str(_ROOT), env=child_python_env(),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            job.status, job.finished, job.message = "failed", _now(), f"could not start the job's process: {exc}."
            self._write(job)
            return
        self._children[process.pid] = process
        threading.Thread(target=process.wait, name=f"reap-job-{job.id}", daemon=True).start()  # no zombie once it exits
        job.status, job.pid, job.pid_start, job.started, job.label = "running", process.pid, process_start(process.pid), _now(), "starting"
        self._write(job)


class Reporter:
    """What a running job calls: progress, detail, and whether it was cancelled.

    ``progress(done, total, label)`` writes the job's state at most every ``PROGRESS_EVERY_S`` (and
    always the last step), and raises :class:`JobCancelled` once the job was cancelled (unless
    ``check=False``: kinds that stop at their own pace call :meth:`should_stop` instead).
    """

    def __init__(self, runner: JobRunner, job_id: str, stop: threading.Event):
        self.runner, self.job_id, self.stop = runner, job_id, stop
        self._state: dict = {}
        self._detail: dict = {}
        self._written = 0.0

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def check(self) -> None:
        if self.stop.is_set():
            raise JobCancelled("Cancelled.")

    def progress(self, done: int, total: int, label: str = "", *, check: bool = True) -> None:
        self._state = {"done": int(done), "total": int(total), "label": label}
        if time.monotonic() - self._written >= PROGRESS_EVERY_S or done >= total:
            self.flush()
        if check:
            self.check()

    def note(self, name: str, value) -> None:
        """Set ``detail[name]`` (written with the next progress)."""
        self._detail[name] = value

    def append(self, name: str, row: dict) -> None:
        """Add ``row`` to the list ``detail[name]`` (written with the next progress)."""
        self._detail.setdefault(name, []).append(row)
        if time.monotonic() - self._written >= PROGRESS_EVERY_S:
            self.flush()

    def flush(self, wait_s: float = 0.0) -> bool:
        """Write the progress and detail so far; whether it was written. While another process holds
        the jobs' lock for longer than ``wait_s`` the write is left to the next one (nothing is lost:
        each write carries everything so far)."""
        try:
            with self.runner._locked(wait_s):
                job = self.runner._read(self.job_id)
                if job is None:
                    return False
                if job.cancel_requested:
                    self.stop.set()
                for name, value in self._state.items():
                    setattr(job, name, value)
                job.detail = {**job.detail, **self._detail}
                self.runner._write(job)
        except JobsBusy:
            return False
        self._written = time.monotonic()
        return True


def run_job(workspace: str | Path, job_id: str) -> int:
    """Run one job in this process (``python -m core.jobs run <workspace> <id>``) and store its final state.

    SIGTERM (cancel) asks the job to stop at its next progress report; if it has not stopped after
    the runner's grace period, the whole process group is killed.
    """
    from core.jobs.kinds import KINDS
    from core.store.workspace import Workspace

    runner = JobRunner(workspace)
    runner._check_id(job_id)
    job = runner._read(job_id)
    if job is None:
        print(f"no job {job_id} in {runner.folder}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()
        signal.signal(signal.SIGALRM, lambda *_: os.killpg(os.getpgrp(), signal.SIGKILL))
        signal.setitimer(signal.ITIMER_REAL, runner.cancel_grace_s)

    signal.signal(signal.SIGTERM, on_term)
    reporter = Reporter(runner, job_id, stop)
    result_key = None
    print(f"{_now()} job {job_id}: {job.kind} of {job.owner!r}, key {job.key}", flush=True)
    try:
        reporter.flush(runner.lock_wait_s)  # a cancel that came before this process was listening
        if reporter.should_stop():
            raise JobCancelled("Cancelled before it started; nothing was computed.")
        result_key = KINDS[job.kind].run(Workspace(workspace), job.params, reporter)
    except JobCancelled as exc:
        status, message = "cancelled", str(exc)
    except InputError as exc:
        status, message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a job must always leave a final state
        traceback.print_exc()
        status, message = "failed", f"The job stopped on an unexpected error ({type(exc).__name__}: {exc}); its log is {runner.folder / (job_id + '.log')}."
    else:
        status, message = "done", ""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the result is in; a late cancel changes nothing
    signal.setitimer(signal.ITIMER_REAL, 0)
    with runner._locked():
        job = runner._read(job_id)
        job.status, job.message, job.result_key, job.finished = status, message, result_key, _now()
        if reporter._state:
            job.done, job.total = reporter._state["done"], reporter._state["total"]
        if status == "done":
            job.done, job.label = max(job.done, job.total), "done"
        else:
            job.label = ""
        job.detail = {**job.detail, **reporter._detail}
        runner._write(job)
        runner._pump()  # the next queued job takes this one's slot
    print(f"{_now()} job {job_id}: {status} {message}", flush=True)
    return 0
