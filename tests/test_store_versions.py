"""Workspace saves as versioned folders: old workspaces open and migrate, overwrites keep one version,
crash leftovers are swept when a workspace opens, fold checkpoints and deletes are clean."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.store.atomic import temporary_path
from core.store.workspace import Workspace
from tests.store_support import ablation_fingerprint, cohort_fingerprint, cv_fingerprint, leftovers, material

RUN, OTHER_RUN = "00000000000000aa", "00000000000000bb"


def _folders(path, kind: str) -> list[str]:
    return sorted(p.name for p in (path / kind).iterdir()) if (path / kind).is_dir() else []


def _make_old_layout(path) -> None:
    """Turn a workspace into the layout before versions: ``cohorts/<name>``, ``models/<run>``,
    ``ablation/<digest>``, and catalogue tables without a ``folder`` column."""
    with duckdb.connect(str(path / "catalogue.duckdb")) as db:
        for table, column in (("cohorts", "name"), ("cv_runs", "run"), ("ablation_runs", "digest")):
            for key, folder in db.execute(f"SELECT {column}, folder FROM {table}").fetchall():
                os.rename(path / folder, path / folder.split("@")[0])
            db.execute(f"ALTER TABLE {table} DROP COLUMN folder")


def test_a_workspace_of_the_old_layout_opens_loads_everything_and_moves_to_versions_when_saved_again(tmp_path):
    m = material()
    cohort, run, ablation = m.cohorts[0], m.cv_runs[0], m.ablations[0]
    ws = Workspace(tmp_path)
    ws.save(cohort)
    ws.save_cv(cohort, RUN, run)
    ws.save_ablation(cohort, ablation)
    _make_old_layout(tmp_path)
    assert _folders(tmp_path, "cohorts") == ["tiny"] and _folders(tmp_path, "models") == [RUN]

    old = Workspace(tmp_path)  # adds the column (NULL: the old folder), moves nothing
    assert old.names() == ["tiny"] and _folders(tmp_path, "cohorts") == ["tiny"]
    assert cohort_fingerprint(old.load("tiny")) == cohort_fingerprint(cohort)
    assert cv_fingerprint(old.load_cv(RUN, cohort), cohort) == cv_fingerprint(run, cohort)
    assert ablation_fingerprint(old.load_ablation(ablation.digest)) == ablation_fingerprint(ablation)
    assert old.ablation_saved_at(ablation.digest) is not None

    old.save(dataclasses.replace(m.cohorts[1], name="tiny"))
    old.save_cv(cohort, RUN, m.cv_runs[1])
    old.save_ablation(cohort, m.ablations[1])
    assert [n.split("@")[0] for n in _folders(tmp_path, "cohorts")] == ["tiny"] and "@" in _folders(tmp_path, "cohorts")[0]
    assert [n.split("@")[0] for n in _folders(tmp_path, "models")] == [RUN] and [n.split("@")[0] for n in _folders(tmp_path, "ablation")] == [ablation.digest]
    assert cohort_fingerprint(old.load("tiny")) == cohort_fingerprint(m.cohorts[1])
    assert cv_fingerprint(old.load_cv(RUN, cohort), cohort) == cv_fingerprint(m.cv_runs[1], cohort)
    assert ablation_fingerprint(old.load_ablation(ablation.digest)) == ablation_fingerprint(m.ablations[1])
    assert leftovers(tmp_path) == []


def test_a_run_folder_of_the_old_layout_without_its_row_still_loads(tmp_path):
    m = material()
    ws = Workspace(tmp_path)
    ws.save_cv(m.cohorts[0], RUN, m.cv_runs[0])
    _make_old_layout(tmp_path)
    with duckdb.connect(str(tmp_path / "catalogue.duckdb")) as db:
        db.execute("DELETE FROM cv_runs")
    assert cv_fingerprint(Workspace(tmp_path).load_cv(RUN, m.cohorts[0]), m.cohorts[0]) == cv_fingerprint(m.cv_runs[0], m.cohorts[0])
    assert Workspace(tmp_path).load_cv(OTHER_RUN, m.cohorts[0]) is None


def test_overwriting_keeps_one_version_and_a_refused_overwrite_writes_nothing(tmp_path):
    m = material()
    ws = Workspace(tmp_path)
    for i in range(3):
        ws.save(dataclasses.replace(m.cohorts[i % 2], name="tiny"))
        ws.save_cv(m.cohorts[0], RUN, m.cv_runs[i % 2])
        ws.save_ablation(m.cohorts[0], m.ablations[i % 2])
    assert len(_folders(tmp_path, "cohorts")) == len(_folders(tmp_path, "models")) == len(_folders(tmp_path, "ablation")) == 1
    assert cohort_fingerprint(ws.load("tiny")) == cohort_fingerprint(m.cohorts[0])
    before = _folders(tmp_path, "cohorts")
    with pytest.raises(InputError, match="a cohort named 'tiny' is already saved"):
        ws.save(dataclasses.replace(m.cohorts[1], name="tiny"), overwrite=False)
    assert _folders(tmp_path, "cohorts") == before and cohort_fingerprint(ws.load("tiny")) == cohort_fingerprint(m.cohorts[0])
    ws.delete("tiny")
    assert ws.names() == [] and _folders(tmp_path, "cohorts") == []
    with pytest.raises(InputError, match="is not a run digest"):
        ws.save_cv(m.cohorts[0], "../escape", m.cv_runs[0])


def test_opening_a_workspace_sweeps_what_crashed_saves_left_and_spares_what_a_live_save_writes(tmp_path):
    m = material()
    ws = Workspace(tmp_path)
    ws.save(m.cohorts[0])
    kept = _folders(tmp_path, "cohorts")
    crashed = [_temporary_of_a_dead_process(tmp_path / "cohorts" / "tiny"),  # a staging folder
               _temporary_of_a_dead_process(tmp_path / "learning_curves" / f"{RUN}.parquet")]  # a table
    crashed[0].mkdir()
    (crashed[0] / "features.parquet").write_bytes(b"half")
    crashed[1].parent.mkdir()
    crashed[1].write_bytes(b"half")
    unreferenced = tmp_path / "cohorts" / "tiny@0000000000000001"  # published, then killed before the catalogue commit
    unreferenced.mkdir()
    live = temporary_path(tmp_path / "models" / RUN)  # this process is alive: still being written
    live.mkdir(parents=True)
    Workspace(tmp_path)
    assert not any(p.exists() for p in crashed) and not unreferenced.exists() and live.exists()
    assert _folders(tmp_path, "cohorts") == kept and cohort_fingerprint(ws.load("tiny")) == cohort_fingerprint(m.cohorts[0])


def _temporary_of_a_dead_process(final):
    """The temporary name a process that has exited (and been reaped) would have used for ``final``."""
    process = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn").Process(target=int)
    process.start()
    process.join()
    return final.with_name(temporary_path(final).name.replace(f"-{os.getpid()}-", f"-{process.pid}-"))


def test_a_fold_checkpoint_counts_a_fold_once_its_arrays_are_complete(tmp_path):
    m = material()
    run = m.cv_runs[0]
    checkpoint = Workspace(tmp_path).fold_checkpoint(RUN)
    margin, values, base = np.arange(5.0), np.ones((5, 3)), np.zeros(5)
    checkpoint.keep(0, run.fold_models[0], margin, values, base, None)
    (checkpoint.folder / ".fold_001.oof.npz.tmp-00000000-1-00").write_bytes(b"half")  # a fold killed mid-write
    ws = Workspace(tmp_path)
    assert ws.cv_progress(RUN) == 1
    model, got_margin, got_values, got_base, _ = checkpoint.load(0)
    np.testing.assert_array_equal(got_margin, margin)
    np.testing.assert_array_equal(got_values, values)
    X = m.cohorts[0].features[run.features]
    np.testing.assert_array_equal(model.predict_proba(X), run.fold_models[0].predict_proba(X))
    assert checkpoint.load(1) is None
    ws.save_cv(m.cohorts[0], RUN, run)  # the completed run replaces its checkpoints
    assert ws.cv_progress(RUN) == 0 and not (tmp_path / "models" / f"{RUN}.partial").exists()


def test_result_tables_are_replaced_whole(tmp_path):
    ws = Workspace(tmp_path)
    first, second = pd.DataFrame({"n": [1, 2]}), pd.DataFrame({"n": [3, 4, 5]})
    ws.save_table("learning_curves", RUN, first)
    ws.save_table("learning_curves", RUN, second)
    pd.testing.assert_frame_equal(ws.load_table("learning_curves", RUN), second)
    assert sorted(p.name for p in (tmp_path / "learning_curves").iterdir()) == [f"{RUN}.parquet"]
