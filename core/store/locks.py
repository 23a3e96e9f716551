"""Exclusive file locks that never wait for ever, and the facts about processes they report.

Several processes share a workspace: the server's sessions, a server started after a restart, and
the background jobs. Each change to a shared file is made under an ``flock`` on a lock file beside
it. A process stopped (SIGSTOP, a debugger) or stuck on a slow disk while it holds such a lock must
not freeze everyone else, so :func:`exclusive_lock` polls for the lock and, after ``wait_s``
seconds, raises :class:`LockBusy` naming the process that holds it (from ``/proc/locks``, Linux).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError


class LockBusy(InputError):
    """A lock file stayed held by another process for longer than the caller waits."""


def proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: [0] the state letter, [19] the start
    time in clock ticks since boot (Linux). OSError when there is no such process or no /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and brackets


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or None where unknown."""
    try:
        return int(proc_stat(pid)[19])
    except OSError:
        return None


def process_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, given its ``start`` (:func:`process_start`), is
    the process that started then rather than a later one that reused the pid."""
    if not pid:
        return False
    try:
        fields = proc_stat(pid)
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True
    return fields[0] not in ("Z", "X", "x") and (start is None or int(fields[19]) == start)


def lock_holder(path: str | Path) -> str:
    """'process 1234 (stopped)': the process holding the flock on ``path``, from ``/proc/locks`` (Linux);
    'another process' where that cannot be told."""
    try:
        stat = Path(path).stat()
        file_id = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        held = [line.split() for line in Path("/proc/locks").read_text().splitlines() if "->" not in line]  # "->": a waiter
        pid = next(int(f[4]) for f in held if len(f) > 5 and f[1] == "FLOCK" and f[5] == file_id)
        code = proc_stat(pid)[0]
    except (OSError, ValueError, StopIteration):
        return "another process"
    kind = {"T": "stopped", "t": "stopped by a debugger", "D": "waiting on the disk", "Z": "ended"}.get(code, "running")
    return f"process {pid} ({kind})"


@contextlib.contextmanager
def exclusive_lock(path: str | Path, wait_s: float, subject: str, busy: type[LockBusy] = LockBusy) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    path : the lock file.
    wait_s : seconds to wait for another holder to let go (0: one try).
    subject : what the lock guards, with its verb, as the error begins it: "the jobs of this workspace are".
    busy : the :class:`LockBusy` subclass raised when the wait runs out; its message names the holder.
    """
    path = Path(path)
    with open(path, "a") as handle:
        deadline, pause = time.monotonic() + wait_s, 0.001
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy(f"{subject} locked by {lock_holder(path)} for more than {wait_s:g} s; "
                               "try again in a moment, or end that process if it is stuck.", source=str(path)) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
