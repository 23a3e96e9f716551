"""Two processes on one workspace at once (the app and the CLI): no lock errors, a consistent end state.

DuckDB lets one process at a time hold a database file; the workspace opens its catalogue only for
short transactions and retries with backoff while another process holds it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import time
import traceback

import duckdb
import pytest

from core.errors import InputError
from core.store.workspace import Workspace
from tests.store_support import cohort_fingerprint, material

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")

FORK = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
ROUNDS = 12


def _hammer(me: int, path, report) -> None:
    """Save, load, list and set settings on the shared workspace, ROUNDS times; report 'ok' or the traceback."""
    try:
        rng = random.Random(me)
        cohorts = material().cohorts
        known = {cohort_fingerprint(c) for c in cohorts}
        for k in range(ROUNDS):
            ws = Workspace(path)  # a page rerun or a CLI command opens the workspace afresh
            ws.save(dataclasses.replace(cohorts[k % 2], name=f"w{me}-{k % 2}"))
            ws.set_setting(f"round-{me}", str(k))
            ws.set_setting("last_cohort", f"w{me}-{k % 2}")
            assert ws.get_setting(f"round-{me}") == str(k)
            names = ws.names()
            assert f"w{me}-{k % 2}" in names
            other = rng.choice(names)
            assert cohort_fingerprint(ws.load(other)) in known, other
            ws.catalogue()
            ws.saved_at(other)
        report.send(("ok", me))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        report.send(("error", traceback.format_exc()))


def test_two_processes_saving_loading_and_setting_on_one_workspace_never_fail_and_agree_at_the_end(tmp_path):
    cohorts = material().cohorts
    path = tmp_path / "workspace"
    Workspace(path)
    receive, send = FORK.Pipe(duplex=False)
    workers = [FORK.Process(target=_hammer, args=(me, path, send)) for me in (0, 1)]
    for worker in workers:
        worker.start()
    reports = [receive.recv() for _ in workers]
    for worker in workers:
        worker.join(60)
    assert [r for r in reports if r[0] != "ok"] == []
    ws = Workspace(path)
    assert sorted(ws.names()) == ["w0-0", "w0-1", "w1-0", "w1-1"]
    for me in (0, 1):
        for variant in (0, 1):
            assert cohort_fingerprint(ws.load(f"w{me}-{variant}")) == cohort_fingerprint(cohorts[variant])
        assert ws.get_setting(f"round-{me}") == str(ROUNDS - 1)
    assert ws.get_setting("last_cohort") in {f"w{me}-{(ROUNDS - 1) % 2}" for me in (0, 1)}
    assert sorted(p.name.split("@")[0] for p in (path / "cohorts").iterdir()) == ["w0-0", "w0-1", "w1-0", "w1-1"]  # one version each, no leftovers


def _hold_catalogue(path, seconds: float, pipe) -> None:
    with duckdb.connect(str(path / "catalogue.duckdb")) as db:
        db.execute("SELECT 1").fetchone()
        pipe.send_bytes(b"holding")
        time.sleep(seconds)


def _holder(path, seconds: float):
    receive, send = FORK.Pipe(duplex=False)
    process = FORK.Process(target=_hold_catalogue, args=(path, seconds, send))
    process.start()
    assert receive.poll(30) and receive.recv_bytes() == b"holding"
    return process


def test_a_workspace_waits_for_a_process_holding_it_and_then_says_who_holds_it(tmp_path):
    ws = Workspace(tmp_path)
    holder = _holder(tmp_path, 0.5)  # briefly, as another save would: waited for, then done
    ws.set_setting("last_cohort", "a")
    holder.join()
    assert holder.exitcode == 0 and Workspace(tmp_path).get_setting("last_cohort") == "a"

    holder = _holder(tmp_path, 30)  # far longer than the workspace waits
    try:
        ws.lock_timeout_s = 0.3
        with pytest.raises(InputError, match=r"another process holds the workspace \(its catalogue stayed locked for 0.3 s\)"):
            ws.set_setting("last_cohort", "b")
        with pytest.raises(InputError, match="another process holds the workspace"):
            Workspace(tmp_path, lock_timeout_s=0.3)
    finally:
        holder.kill()
        holder.join()
    assert Workspace(tmp_path).get_setting("last_cohort") == "a"
