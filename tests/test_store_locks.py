"""core.store.locks: file locks that never wait for ever, and the facts about processes they report."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from core.errors import InputError
from core.store.locks import LockBusy, exclusive_lock, lock_holder, proc_stat, process_alive, process_start
from tests.store_support import lock_held_by_a_stopped_process


def test_a_lock_held_by_a_stopped_process_is_refused_after_the_wait_naming_it(tmp_path):
    lock = tmp_path / "data.lock"
    with lock_held_by_a_stopped_process(lock) as holder:
        assert lock_holder(lock) == f"process {holder} (stopped)"
        started = time.monotonic()
        with pytest.raises(LockBusy) as busy, exclusive_lock(lock, 0.3, "the test data are"):
            pytest.fail("entered a lock that another process holds")
        assert 0.3 <= time.monotonic() - started < 2.0
    assert isinstance(busy.value, InputError) and busy.value.source == str(lock)
    assert str(busy.value) == (f"{lock}: the test data are locked by process {holder} (stopped) for more than 0.3 s; "
                               "try again in a moment, or end that process if it is stuck.")
    started = time.monotonic()
    with exclusive_lock(lock, 0.0, "the test data are"):  # the holder has gone: one try is enough
        assert lock_holder(lock) == f"process {os.getpid()} (running)"
    assert time.monotonic() - started < 0.5
    assert lock_holder(lock) == "another process"  # nobody holds it now


def test_a_waiter_takes_the_lock_as_soon_as_its_holder_lets_go(tmp_path):
    lock, held, order = tmp_path / "data.lock", threading.Event(), []

    def hold():
        with exclusive_lock(lock, 0.0, "the test data are"):
            held.set()
            time.sleep(0.3)
            order.append("released")

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    with exclusive_lock(lock, 10.0, "the test data are"):  # each open of the file is its own flock, even in one process
        order.append("taken")
        waited = time.monotonic() - started
    thread.join()
    assert order == ["released", "taken"] and 0.1 < waited < 1.0


def test_process_alive_tells_running_ended_zombie_and_reused_pids_apart():
    me = os.getpid()
    assert process_alive(me) and process_alive(me, process_start(me))
    assert process_start(me) == int(proc_stat(me)[19])
    assert not process_alive(me, process_start(me) + 1)  # another process that once had this pid
    assert not process_alive(None) and not process_alive(0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while proc_stat(child.pid)[0] != "Z" and time.monotonic() < deadline:  # ended, not yet reaped
        time.sleep(0.01)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)
