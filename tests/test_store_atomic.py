"""core.store.atomic: files and folders written whole or not at all, and temporaries a crash leaves."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from core.store.atomic import (
    STALE_AFTER_S,
    atomic_file,
    atomic_folder,
    atomic_write_bytes,
    atomic_write_text,
    is_stale_temporary,
    is_temporary,
    publish_folder,
    temporary_path,
)


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = multiprocessing.get_context("spawn" if not hasattr(os, "fork") else "fork").Process(target=int)
    process.start()
    process.join()
    return process.pid


def test_a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one_and_no_temporary(tmp_path):
    target = tmp_path / "table.parquet"
    atomic_write_bytes(target, b"old version")
    atomic_write_text(target, "new version")
    assert target.read_text() == "new version"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(target) as handle:
            handle.write(b"half of the next ver")
            raise RuntimeError("disk full")
    assert target.read_text() == "new version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.parquet"]
    with pytest.raises(ValueError, match="mode 'wb' or 'w'"):
        with atomic_file(target, "ab"):
            pass


def test_temporary_names_are_hidden_recognised_and_stale_only_when_their_process_is_gone(tmp_path):
    temporary = temporary_path(tmp_path / "fold_003.oof.npz")
    assert temporary.parent == tmp_path and temporary.name.startswith(".fold_003.oof.npz.tmp-")
    assert is_temporary(temporary) and not is_temporary(tmp_path / "fold_003.oof.npz") and not is_temporary(tmp_path / "cohorts" / "a.tmp-x")
    assert list(tmp_path.glob("fold_*.oof.npz")) == []  # listing code never matches one
    temporary.write_bytes(b"")
    assert not is_stale_temporary(temporary)  # this process still runs: maybe still writing
    dead = temporary.with_name(temporary.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    dead.write_bytes(b"")
    assert is_temporary(dead) and is_stale_temporary(dead)
    day_old = time.time() - STALE_AFTER_S - 60
    os.utime(temporary, (day_old, day_old))
    assert is_stale_temporary(temporary)  # a writer on another host sharing the folder: given a day
    assert not is_stale_temporary(tmp_path / "catalogue.duckdb")


def test_a_folder_is_staged_fsynced_and_published_as_a_new_version_beside_the_old_one(tmp_path):
    final = tmp_path / "cohorts" / "demo"
    with atomic_folder(final) as staging:
        (staging / "raw").mkdir()
        (staging / "features.parquet").write_bytes(b"v1")
        (staging / "raw" / "000001.npz").write_bytes(b"r1")
        assert is_temporary(staging) and staging.parent == final.parent
    first = publish_folder(staging, final)
    with atomic_folder(final) as staging:
        (staging / "features.parquet").write_bytes(b"v2")
    second = publish_folder(staging, final)
    assert first != second and first.name.startswith("demo@") and second.name.startswith("demo@")
    assert (first / "features.parquet").read_bytes() == b"v1" and (first / "raw" / "000001.npz").read_bytes() == b"r1"  # untouched
    assert (second / "features.parquet").read_bytes() == b"v2"
    with pytest.raises(KeyError):
        with atomic_folder(final) as staging:
            (staging / "features.parquet").write_bytes(b"half")
            raise KeyError("feature")
    assert sorted(p.name for p in final.parent.iterdir()) == sorted([first.name, second.name])  # the failed staging is gone
