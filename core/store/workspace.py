"""A workspace folder: a DuckDB catalogue of cohorts plus their tables as Parquet files.

Layout::

    <workspace>/catalogue.duckdb                      tables ``cohorts``, ``settings``, ``cv_runs``, ``ablation_runs``
    <workspace>/cohorts/<name>@<version>/*.parquet    patients, features, outcomes (+ ground truth tables, raw/)
    <workspace>/models/<run>@<version>/               cross-validation runs (fold models, out-of-fold results)
    <workspace>/models/<run>.partial/                 finished folds of a run still training
    <workspace>/ablation/<digest>@<version>/          modality ablation runs (per-fold scores)
    <workspace>/<kind>/<key>.parquet                  result tables (:meth:`Workspace.save_table`)
    <workspace>/<kind>/<key>.partial/                 finished pieces of long work still running (an evaluation, a generation)
    <workspace>/tensors/<key>/chunk_NNNN.npz          cached fusion inputs

Nothing is pickled: tables are Parquet, provenance is JSON in the catalogue.

Every save is atomic and durable (see :mod:`core.store.atomic`): a cohort, run or ablation is
written into a temporary folder, fsynced, renamed to a new version folder, and only then does one
catalogue transaction point its row at that version; the old version is removed after the commit.
So a row in the catalogue always names a complete folder, and a crash at any instant leaves the old
or the new version loadable. Single files (tables, chunks, fold checkpoints) are written to a
temporary file, fsynced and renamed. Workspaces written before versions existed (rows without a
``folder``, folders named ``<name>``) open as they are and move to versions when saved again.

The app and the CLI may use one workspace at once: each catalogue access opens DuckDB briefly
(one process at a time may hold the file), retrying with backoff while another holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core.data.cohort import Cohort, GroundTruth
from core.data.schema import OUTCOMES
from core.errors import InputError
from core.store.atomic import (
    VERSION_MARK,
    atomic_file,
    atomic_folder,
    atomic_write_text,
    fsync_file,
    fsync_folder,
    is_stale_temporary,
    is_temporary,
    publish_folder,
    remove_tree,
    temporary_path,
)
from core.store.locks import exclusive_lock

DEFAULT_WORKSPACE_ENV = "NEUROPREDICT_WORKSPACE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
_TABLES = ("patients", "features", "outcomes")
_TRUTH_TABLES = ("latents", "terms", "feature_effects")
_DIGEST = re.compile(r"^[0-9a-f]{16}$")
FUSION_CHUNK_SIZE = 250
# Where each versioned kind lives: catalogue table, its key column, the folder under the workspace.
_VERSIONED = {"cohorts": ("name", "cohorts"), "cv_runs": ("run", "models"), "ablation_runs": ("digest", "ablation")}

# One lock per catalogue file and process: DuckDB shares one database between the connections of a
# process, so threads (Streamlit sessions) take turns here; processes take turns on DuckDB's file lock.
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _reset_locks_after_fork() -> None:
    global _PROCESS_LOCKS_GUARD
    _PROCESS_LOCKS.clear()  # a lock held by another thread at the fork would never be released in the child
    _PROCESS_LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _process_lock(path: Path) -> threading.RLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(str(path.resolve()), threading.RLock())


def _damaged(error: Exception) -> bool:
    """Whether DuckDB refused a catalogue file as damaged (a crash during a checkpoint can leave one so)."""
    text = str(error).lower()
    return "corrupt" in text or "checksum" in text or "metadatareader" in text


# Catalogue files this process has read whole, with their identity then (Workspace._catalogue_file_identity).
_READ_WHOLE: dict[str, tuple] = {}


def _read_whole(db) -> None:
    """Read every table of a catalogue whole: DuckDB finds a damaged block only when a query reads it."""
    for (table,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        db.execute(f'SELECT * FROM "{table}"').fetchall()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def fusion_inputs_key(cohort: Cohort) -> str:
    """Folder name of a cohort's cached fusion inputs: its content digest and the tensor layout."""
    from core.features.tensors import FA_CROP_SHAPE, MEP_SHAPE, REACH_SHAPE, VOLUNTARY_SHAPE

    layout = json.dumps([FA_CROP_SHAPE, MEP_SHAPE, VOLUNTARY_SHAPE, REACH_SHAPE, cohort.provenance.get("config_digest")])
    return hashlib.sha256((cohort.digest + layout).encode()).hexdigest()[:16]


def default_workspace() -> Path:
    return Path(os.environ.get(DEFAULT_WORKSPACE_ENV, "workspace")).resolve()


class Workspace:
    """Saved cohorts in one folder; they survive restarts of the app.

    Parameters
    ----------
    path : the folder; created if missing.
    lock_timeout_s : how long each catalogue access waits while another process holds the
        workspace (default :attr:`lock_timeout_s`, 10 s) before an InputError says so.

    Opening a workspace also sweeps what crashed saves left behind: temporary files and folders of
    processes that no longer run, and version folders that no catalogue row names.
    """

    #: How long a catalogue access waits for another process holding the workspace (s).
    lock_timeout_s: float = 10.0

    def __init__(self, path: str | Path | None = None, *, lock_timeout_s: float | None = None):
        self.path = Path(path) if path is not None else default_workspace()
        if lock_timeout_s is not None:
            self.lock_timeout_s = float(lock_timeout_s)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the workspace folder: {exc.strerror}.", source=str(self.path)) from exc
        with self._connect() as db:
            db.begin()
            db.execute(
                """CREATE TABLE IF NOT EXISTS cohorts (
                    name TEXT PRIMARY KEY, kind TEXT, n_patients INTEGER, n_features INTEGER,
                    responder_threshold_pct DOUBLE, digest TEXT, provenance TEXT, saved_at TIMESTAMP)"""
            )
            db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                """CREATE TABLE IF NOT EXISTS cv_runs (
                    run TEXT PRIMARY KEY, cohort TEXT, cohort_digest TEXT, outcome TEXT, scheme TEXT, saved_at TIMESTAMP)"""
            )
            db.execute(
                """CREATE TABLE IF NOT EXISTS ablation_runs (
                    digest TEXT PRIMARY KEY, cohort TEXT, cohort_digest TEXT, outcome TEXT,
                    fits_done INTEGER, fits_total INTEGER, saved_at TIMESTAMP)"""
            )
            for table in _VERSIONED:  # workspaces written before versioned folders get the column (NULL: the old folder)
                db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS folder TEXT")
            db.commit()
            retired = self._retire_unreferenced(db)
        for path in retired + self._stale_temporaries():
            remove_tree(path)

    @contextlib.contextmanager
    def _connect(self):
        """The catalogue, held by this thread alone until the block ends; keep the block short.

        Another process holding the file makes DuckDB refuse to open it: retried with exponential
        backoff (from 5 ms, with jitter) for up to :attr:`lock_timeout_s`, then an InputError.
        A block that changed the catalogue checkpoints it and copies it to ``catalogue.duckdb.backup``
        before letting go, so a catalogue damaged by a later crash is restored from that copy.
        """
        with _process_lock(self.path):
            db = self._open_catalogue()
            try:
                yield db
                self._back_up_catalogue(db)
            except duckdb.Error as exc:
                if not _damaged(exc):
                    raise
                seen = self._catalogue_file_identity()
                db.close()
                self._restore_catalogue(exc, seen)
                raise InputError(f"the workspace catalogue was found damaged while in use ({exc}); its last good copy is restored: "
                                 "please repeat what you were doing.", source=str(self.path / "catalogue.duckdb")) from exc
            finally:
                db.close()

    def _back_up_catalogue(self, db) -> None:
        """Checkpoint what this connection wrote and copy the catalogue, while DuckDB's file lock keeps
        every other process out; nothing is copied when the catalogue is unchanged since the last copy.

        The copy is DuckDB's own (``COPY FROM DATABASE``): it reads the rows and builds fresh indexes, so
        a damaged block of the source is found here rather than copied (a damaged index block is
        otherwise found only by the query that reads it)."""
        file = self.path / "catalogue.duckdb"
        wal = file.with_name(file.name + ".wal")
        backup = file.with_name(file.name + ".backup")
        if wal.exists() and wal.stat().st_size:
            db.execute("CHECKPOINT")
        if backup.exists() and backup.stat().st_mtime_ns >= file.stat().st_mtime_ns:
            return
        (source,) = db.execute("SELECT current_database()").fetchone()
        folder = temporary_path(backup)  # a folder, so that a killed copy leaves nothing the sweep misses (DuckDB adds a WAL)
        folder.mkdir()
        try:
            staging = folder / file.name
            quoted = str(staging).replace("'", "''")
            db.execute(f"ATTACH '{quoted}' AS catalogue_copy")
            try:
                db.execute(f'COPY FROM DATABASE "{source}" TO catalogue_copy')
            finally:
                db.execute("DETACH catalogue_copy")
            fsync_file(staging)
            os.replace(staging, backup)
            fsync_folder(self.path)
        finally:
            remove_tree(folder)
        _READ_WHOLE[str(file)] = self._catalogue_file_identity()  # the copy has just read every row

    def _catalogue_file_identity(self) -> tuple | None:
        try:
            stat = (self.path / "catalogue.duckdb").stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _restore_catalogue(self, damage: Exception, seen: tuple | None) -> None:
        """Put the last good copy of a damaged catalogue in its place (the damaged file and its WAL are kept
        beside it as ``catalogue.duckdb.damaged-<time>``); an InputError when there is no copy. ``seen``: the
        damaged file's identity when the damage was found; a file changed since was restored by another process."""
        import shutil

        file = self.path / "catalogue.duckdb"
        backup = file.with_name(file.name + ".backup")
        # One process restores; the others find it restored.
        with exclusive_lock(self.path / ".catalogue-restore.lock", self.lock_timeout_s, "the restore of this workspace's catalogue is"):
            if self._catalogue_file_identity() != seen:
                return
            if not backup.exists():
                raise InputError(f"the workspace catalogue is damaged ({damage}) and there is no earlier copy to restore; "
                                 "the cohorts and runs are still in their folders, but the catalogue that lists them must be rebuilt.",
                                 source=str(file)) from damage
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            for part in (file, file.with_name(file.name + ".wal")):
                if part.exists():
                    os.replace(part, part.with_name(f"{part.name}.damaged-{stamp}"))
            with atomic_file(file) as handle, open(backup, "rb") as source:
                shutil.copyfileobj(source, handle)
            print(f"NeuroPredict: the workspace catalogue {file} was damaged ({damage}); restored its last good copy, "
                  f"the damaged file is kept as {file.name}.damaged-{stamp}.", file=sys.stderr, flush=True)

    def _check_read_whole(self, db) -> None:
        """Read the catalogue whole once per change of its file, so that damage is found, and restored, on
        opening rather than in the middle of a query (the catalogue is small: a few milliseconds)."""
        file, identity = self.path / "catalogue.duckdb", self._catalogue_file_identity()
        if _READ_WHOLE.get(str(file)) != identity:
            _read_whole(db)
            _READ_WHOLE[str(file)] = identity

    def _open_catalogue(self):
        file = self.path / "catalogue.duckdb"
        deadline, delay = time.monotonic() + self.lock_timeout_s, 0.005
        restored = False
        while True:
            try:
                db = duckdb.connect(str(file))
                try:
                    self._check_read_whole(db)
                except duckdb.Error:
                    db.close()
                    raise
                return db
            except duckdb.Error as exc:
                if _damaged(exc) and not restored:
                    self._restore_catalogue(exc, seen=self._catalogue_file_identity())
                    restored = True
                    continue
                if _damaged(exc):
                    raise InputError(f"the workspace catalogue and its last good copy are both damaged ({exc}); the cohorts and runs are "
                                     "still in their folders, but the catalogue that lists them must be rebuilt.", source=str(file)) from exc
                if not isinstance(exc, duckdb.IOException):
                    raise
                if "lock" not in str(exc).lower() and "resource temporarily unavailable" not in str(exc).lower():
                    raise InputError(f"the workspace catalogue cannot be opened ({exc}).", source=str(file)) from exc
                if time.monotonic() + delay > deadline:
                    raise InputError(f"another process holds the workspace (its catalogue stayed locked for {self.lock_timeout_s:g} s); "
                                     "try again when it has finished saving.", source=str(file)) from exc
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.25)

    # --- versioned folders: written whole, then one catalogue transaction points at them -------------
    def _versioned_folder(self, table: str, key: str, folder: str | None) -> Path:
        """The folder of a catalogue row: its ``folder`` column, or the old unversioned one when NULL."""
        return self.path / folder if folder else self.path / _VERSIONED[table][1] / key

    def _row_folder(self, table: str, key: str) -> tuple[bool, Path]:
        """(whether the row exists, the folder it names) of a versioned kind."""
        column = _VERSIONED[table][0]
        with self._connect() as db:
            row = db.execute(f"SELECT folder FROM {table} WHERE {column} = ?", [key]).fetchone()
        return row is not None, self._versioned_folder(table, key, None if row is None else row[0])

    def _commit_version(self, table: str, key: str, staging: Path, row: dict, *, replace: bool = True) -> Path:
        """Publish the complete, fsynced ``staging`` folder as a new version and point the row of
        ``key`` at it in one transaction; then remove the version it replaces. Returns the folder.

        ``replace=False``: an InputError (and nothing changed) when the row exists.
        """
        column, kind = _VERSIONED[table]
        final = self.path / kind / key
        version = committed = None
        old_folder = None
        try:
            with self._connect() as db:
                old = db.execute(f"SELECT folder FROM {table} WHERE {column} = ?", [key]).fetchone()
                if old is not None and not replace:
                    raise InputError(f"a cohort named {key!r} is already saved; choose another name or tick 'Replace'.", field="name")
                version = publish_folder(staging, final)  # under the lock: a sweep never sees it unreferenced
                values = {column: key, **row, "folder": version.relative_to(self.path).as_posix()}
                db.begin()
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", [key])
                db.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values()))
                db.commit()
                committed = version
                if old is not None:
                    old_folder = self._versioned_folder(table, key, old[0])
                # a folder of the old layout (never in the catalogue after a crash of the old code) is superseded too
                legacy = self._retire(final) if final.is_dir() else None
                retired = self._retire(old_folder) if old_folder is not None and old_folder != final else None
        finally:
            if committed is None:
                remove_tree(version if version is not None else staging)
        for path in (legacy, retired):
            if path is not None:
                remove_tree(path)
        return committed

    def _retire(self, folder: Path) -> Path | None:
        """Rename a superseded folder to a temporary name (atomic: never half-deleted under its name)."""
        temporary = temporary_path(folder)
        try:
            os.rename(folder, temporary)
        except FileNotFoundError:
            return None
        return temporary

    def _retire_unreferenced(self, db) -> list[Path]:
        """Rename version folders that no row names (a crash between publish and commit) to temporaries."""
        retired = []
        for table, (column, kind) in _VERSIONED.items():
            parent = self.path / kind
            if not parent.is_dir():
                continue
            referenced = {f for (f,) in db.execute(f"SELECT folder FROM {table} WHERE folder IS NOT NULL").fetchall()}
            for entry in parent.iterdir():
                if VERSION_MARK in entry.name and not is_temporary(entry) and entry.relative_to(self.path).as_posix() not in referenced:
                    path = self._retire(entry)
                    if path is not None:
                        retired.append(path)
        return retired

    def _stale_temporaries(self) -> list[Path]:
        """Temporary files and folders that crashed writers left (up to three levels down, not
        inside version folders)."""
        found, todo = [], [(self.path, 0)]
        while todo:
            folder, depth = todo.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if is_temporary(entry.name):
                    if is_stale_temporary(entry.path):
                        found.append(Path(entry.path))
                elif depth < 2 and VERSION_MARK not in entry.name and entry.is_dir(follow_symlinks=False):
                    todo.append((Path(entry.path), depth + 1))
        return found

    @staticmethod
    def check_name(name: str) -> None:
        """Raise InputError unless ``name`` can be a saved cohort's name (and folder)."""
        if not _NAME.match(name or ""):
            raise InputError(
                f"cohort name {name!r} is not allowed; use 1-64 letters, digits, spaces, '_', '-' or '.', starting with a letter or digit.",
                field="name",
            )

    def check_new_name(self, name: str, *, replace: bool = False) -> None:
        """Raise InputError unless a cohort can be saved under ``name``: an allowed name, and not
        already taken unless ``replace``. Check before long work, not after it."""
        self.check_name(name)
        if not replace and name in self:
            raise InputError(f"a cohort named {name!r} is already saved; choose another name or tick 'Replace'.", field="name")

    def _folder(self, name: str) -> Path:
        self.check_name(name)
        return self.path / "cohorts" / name

    # --- catalogue -----------------------------------------------------------------------------
    def catalogue(self) -> pd.DataFrame:
        """Saved cohorts, newest first."""
        with self._connect() as db:
            return db.execute(
                "SELECT name, kind, n_patients, n_features, responder_threshold_pct, saved_at FROM cohorts ORDER BY saved_at DESC"
            ).df()

    def names(self) -> list[str]:
        return self.catalogue()["name"].tolist()

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    # --- save / load ---------------------------------------------------------------------------
    def save(self, cohort: Cohort, *, overwrite: bool = True) -> None:
        """Store the cohort under its name, all or nothing; an overwritten cohort stays loadable (old
        version) until the new one is complete and committed."""
        folder = self._folder(cohort.name)
        self.check_new_name(cohort.name, replace=overwrite)
        with atomic_folder(folder) as staging:
            for table in _TABLES:
                getattr(cohort, table).to_parquet(staging / f"{table}.parquet")
            if cohort.ground_truth is not None:
                for table in _TRUTH_TABLES:
                    getattr(cohort.ground_truth, table).to_parquet(staging / f"{table}.parquet")
            if cohort.raw is not None and cohort.provenance.get("kind") != "synthetic":  # synthetic raw data are remade from the seed
                _save_raw(cohort, staging / "raw")
        row = {"kind": cohort.provenance.get("kind", "unknown"), "n_patients": cohort.n_patients, "n_features": cohort.features.shape[1],
               "responder_threshold_pct": cohort.responder_threshold_pct, "digest": cohort.digest, "provenance": json.dumps(cohort.provenance),
               "saved_at": _now()}
        self._commit_version("cohorts", cohort.name, staging, row, replace=overwrite)

    def generate(self, config, *, replace: bool = False, progress=None, n_jobs: int = -1) -> Cohort:
        """Generate the synthetic cohort of ``config`` (:class:`~core.synth.CohortConfig`) and save it under its
        name (refused before any work when the name is taken and not ``replace``). Each finished chunk of
        patients is kept in ``<workspace>/generation/<key>.partial/`` (:func:`~core.synth.generator.generation_key`),
        so a stopped generation of the same config resumes from them; ``progress(done, total)`` counts chunks."""
        from core.synth.generator import generate_cohort, generation_key

        self.check_new_name(config.name, replace=replace)
        checkpoint = self.piece_checkpoint("generation", generation_key(config))
        cohort = generate_cohort(config, progress=progress, n_jobs=n_jobs, checkpoint=checkpoint)
        self.save(cohort, overwrite=replace)
        checkpoint.clear()
        return cohort

    def generation_progress(self, config) -> int:
        """How many chunks of a stopped generation of ``config`` are kept (0 when none)."""
        from core.synth.generator import generation_key

        return self.piece_checkpoint("generation", generation_key(config)).count()

    def load(self, name: str) -> Cohort:
        self.check_name(name)
        for attempt in range(3):
            with self._connect() as db:
                row = db.execute("SELECT provenance, responder_threshold_pct, folder FROM cohorts WHERE name = ?", [name]).fetchone()
            if row is None:
                raise InputError(f"no saved cohort named {name!r}; saved cohorts: {', '.join(self.names()) or 'none'}.", source=str(self.path))
            provenance, threshold = json.loads(row[0]), float(row[1])
            folder = self._versioned_folder("cohorts", name, row[2])
            try:
                tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in _TABLES}
                truth = None
                if all((folder / f"{t}.parquet").exists() for t in _TRUTH_TABLES):
                    truth = GroundTruth(**{t: pd.read_parquet(folder / f"{t}.parquet") for t in _TRUTH_TABLES})
                break
            except (OSError, ValueError) as exc:
                if attempt < 2 and self._row_folder("cohorts", name)[1] != folder:
                    continue  # saved again by another process while this one read: read the new version
                raise InputError(f"the saved files of cohort {name!r} cannot be read ({exc}); save it again.", source=str(folder)) from exc
        raw = None
        if provenance.get("kind") == "synthetic" and truth is not None:
            from core.synth.config import CohortConfig
            from core.synth.generator import SyntheticRawSource
            from core.synth.latents import missing_modalities

            config = CohortConfig.from_dict(provenance["config"])
            raw = SyntheticRawSource(config, truth.latents, missing_modalities(config, truth.latents.index))
        elif (folder / "raw").is_dir():
            raw = StoredRawSource(folder / "raw", tables["patients"].index)
        return Cohort(name=name, responder_threshold_pct=threshold, provenance=provenance, ground_truth=truth, raw=raw, **tables)

    def saved_at(self, name: str):
        """When the cohort was last saved (a cache key that changes when it is saved again)."""
        with self._connect() as db:
            row = db.execute("SELECT saved_at FROM cohorts WHERE name = ?", [name]).fetchone()
        return None if row is None else row[0]

    # --- settings that survive a restart (e.g. the cohort last opened) ---------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else row[0]

    def set_setting(self, key: str, value: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])

    # --- cross-validation runs: trained fold models and out-of-fold results ---------------------
    def save_cv(self, cohort: Cohort, run: str, result) -> None:
        """Store a :class:`~core.modelling.validation.CVResult` under its run digest (see ``run_digest``),
        all or nothing; the run's fold checkpoints (``<run>.partial``) are removed once it is committed."""
        if not _DIGEST.match(run or ""):
            raise InputError(f"run {run!r} is not a run digest (16 hex digits).", field="run")
        with atomic_folder(self.path / "models" / run) as folder:
            self._write_cv(folder, result)
        self._commit_version("cv_runs", run, folder, {"cohort": cohort.name, "cohort_digest": cohort.digest, "outcome": result.outcome,
                                                      "scheme": result.scheme, "saved_at": _now()})
        partial = self._retire(self.path / "models" / f"{run}.partial")
        if partial is not None:
            remove_tree(partial)

    @staticmethod
    def _write_cv(folder: Path, result) -> None:
        for i, model in enumerate(result.fold_models):
            model.save(folder / f"fold_{i:03d}")
        result.prediction_by_repeat.to_parquet(folder / "prediction_by_repeat.parquet")
        explanation = result.explanation
        explanation.frame().to_parquet(folder / "shap.parquet")
        explanation.data_frame().to_parquet(folder / "shap_data.parquet")
        pd.Series(explanation.base_values, index=explanation.index, name="base").to_frame().to_parquet(folder / "shap_base.parquet")
        if result.interaction is not None:
            np.save(folder / "interaction.npy", result.interaction.astype(np.float32), allow_pickle=False)
        folds = pd.DataFrame([{"repeat": f.repeat, "fold": f.fold, "test": f.test.tolist(), "train": f.train.tolist()} for f in result.folds])
        folds.to_parquet(folder / "folds.parquet")
        meta = {"outcome": result.outcome, "features": result.features, "scheme": result.scheme, "params": result.params, "model": result.model}
        (folder / "meta.json").write_text(json.dumps(meta))

    def train_cv(self, cohort: Cohort, settings, *, progress=None, on_epoch=None, tensor_progress=None, n_jobs: int = -1):
        """Cross-validate the model of ``settings`` (:class:`~core.modelling.validation.CVSettings`) and store the run.

        The page's Train button and ``python -m core train`` both call this. Each finished fold is
        kept, so a stopped run resumes. Deep models read the cohort's cached tensors (built first when
        missing, ``tensor_progress(done, total)``), and the stacked model reuses the stored fusion run
        of the same settings for its outer folds when there is one. ``n_jobs``: xgboost folds side by side.
        """
        from dataclasses import replace

        run = settings.run_digest(cohort)
        inputs = fusion_run = None
        checkpoint = self.fold_checkpoint(run)
        if settings.model != "xgboost":
            inputs = self.fusion_inputs(cohort, progress=tensor_progress)
        if settings.model == "stacked":
            try:
                fusion_run = self.load_cv(replace(settings, model="fusion").run_digest(cohort), cohort)
            except InputError:  # unreadable: the stacked model trains its own outer fusion models
                fusion_run = None
        result = settings.cross_validate(cohort, inputs, fusion_run=fusion_run, progress=progress, on_epoch=on_epoch, checkpoint=checkpoint, n_jobs=n_jobs)
        self.save_cv(cohort, run, result)
        return result

    def save_table(self, kind: str, key: str, table: pd.DataFrame) -> None:
        """Store a result table (e.g. ``kind="learning_curves"``) under a digest key, atomically."""
        if not (_DIGEST.match(key or "") and re.fullmatch(r"[a-z_]+", kind or "")):
            raise InputError(f"cannot store a {kind!r} table under key {key!r}: expected a lower-case kind and a 16-hex-digit key.", field="key")
        with atomic_file(self.path / kind / f"{key}.parquet") as handle:
            table.to_parquet(handle)

    def load_table(self, kind: str, key: str) -> pd.DataFrame | None:
        """A table stored by :meth:`save_table`, or None; InputError when unreadable."""
        path = self.path / kind / f"{key}.parquet"
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"the stored {kind} table cannot be read ({exc}); compute it again.", source=str(path)) from exc

    def any_outcome_evaluation(self, cohort, settings, progress=None, compute: bool = True):
        """The stored any-outcome evaluation of this cohort with these settings
        (:class:`~core.evaluation.anyoutcome.AnyOutcomeSettings`); computed and stored first when
        ``compute`` (else None when not stored). One path for the page and the CLI."""
        import json

        from core.evaluation.anyoutcome import SPLIT_LIST_COLUMNS, AnyOutcomeEvaluation

        key = settings.key(cohort)
        tables = {kind: self.load_table(f"any_outcome_{kind}", key) for kind in ("predictions", "splits", "similarity")}
        if all(t is not None for t in tables.values()):
            splits = tables["splits"].assign(**{c: tables["splits"][c].map(json.loads) for c in SPLIT_LIST_COLUMNS})
            return AnyOutcomeEvaluation.from_tables(tables["predictions"], splits, tables["similarity"], cohort.measure_specs(), settings.n_splits)
        if not compute:
            return None
        checkpoint = self.piece_checkpoint("any_outcome_predictions", key)
        evaluation = settings.evaluate(cohort, progress=progress, checkpoint=checkpoint)
        splits = evaluation.splits.assign(**{c: evaluation.splits[c].map(json.dumps) for c in SPLIT_LIST_COLUMNS})
        # predictions last: a table set counts as stored only once all three are there
        self.save_table("any_outcome_splits", key, splits)
        self.save_table("any_outcome_similarity", key, evaluation.similarity)
        self.save_table("any_outcome_predictions", key, evaluation.predictions)
        checkpoint.clear()
        return evaluation

    def transfer_curve(self, cohort, cheap_modalities, sizes, progress=None, compute: bool = True, n_reference: int | None = None):
        """The stored costly-to-cheap transfer curve of this cohort (and, for a synthetic cohort,
        the large-sample cheap-only limit as a one-row table, trained on ``n_reference`` patients,
        default ``CHEAP_LIMIT_REFERENCE``), computed and stored first when ``compute``;
        ``(curve, limit or None)``, or None when not stored and not ``compute``."""
        from core.evaluation.transfer import CHEAP_LIMIT_REFERENCE, cheap_bayes_limit, transfer_curve, transfer_key

        key = transfer_key(cohort, cheap_modalities, sizes)
        curve, limit = self.load_table("transfer_curves", key), self.load_table("transfer_limits", key)
        synthetic = (cohort.provenance or {}).get("kind") == "synthetic"
        if curve is not None and (limit is not None or not synthetic):
            return curve, limit
        if not compute:
            return None
        n_reference = n_reference or CHEAP_LIMIT_REFERENCE
        if limit is not None and int(limit["n_reference"].iloc[0]) != n_reference:
            limit = None
        if synthetic and limit is None:  # a resumed curve keeps the limit it stored first
            from core.synth.config import CohortConfig

            config = CohortConfig.from_dict(cohort.provenance["config"])
            limit = pd.DataFrame([cheap_bayes_limit(config, cheap_modalities, n_reference=n_reference, cohort=cohort)])
            self.save_table("transfer_limits", key, limit)
        checkpoint = self.piece_checkpoint("transfer_curves", key)
        curve = transfer_curve(cohort, sizes, cheap_modalities, progress=progress, checkpoint=checkpoint)
        self.save_table("transfer_curves", key, curve)
        checkpoint.clear()
        return curve, limit

    def learning_curves(self, cohort, settings, models, sizes, progress=None, tensor_progress=None):
        """:func:`~core.evaluation.learning.learning_curve` of ``models`` with ``settings``' folds, stored as the
        ``learning_curves`` table under :func:`~core.evaluation.learning.learning_curve_key` (the Prediction page
        reads it there). The stored whole-cohort runs of these settings are reused, the raw-data tensors
        are built first when missing (``tensor_progress(done, total)``), and each finished size is kept,
        so a stopped curve resumes."""
        from dataclasses import replace

        from core.evaluation.learning import learning_curve, learning_curve_key

        key = learning_curve_key(cohort, settings, models, sizes)
        runs = {}
        for model in models:
            run = self.load_cv(replace(settings, model=model).run_digest(cohort), cohort)
            if run is not None:
                runs[model] = run
        inputs = self.fusion_inputs(cohort, progress=tensor_progress)
        checkpoint = self.piece_checkpoint("learning_curves", key)
        table = learning_curve(cohort, inputs, settings, models, sizes, runs=runs, progress=progress, checkpoint=checkpoint)
        self.save_table("learning_curves", key, table)
        checkpoint.clear()
        return table

    def distillation_bound(self, cohort, cheap_modalities, n_subsamples: int | None = None, progress=None, compute: bool = True):
        """The stored :func:`~core.evaluation.transfer.distillation_bound` table of this synthetic cohort at
        :func:`~core.evaluation.transfer.bound_patients` patients, computed and stored first when ``compute``; None when
        not stored and not ``compute``. ``n_subsamples`` defaults to ``BOUND_SUBSAMPLES``."""
        from core.evaluation.transfer import BOUND_SUBSAMPLES, bound_key, bound_patients, distillation_bound

        n_subsamples = BOUND_SUBSAMPLES if n_subsamples is None else n_subsamples
        key = bound_key(cohort, cheap_modalities, n_subsamples=n_subsamples)
        table = self.load_table("transfer_bounds", key)
        if table is not None or not compute:
            return table
        checkpoint = self.piece_checkpoint("transfer_bounds", key)
        table = distillation_bound(cohort, bound_patients(cohort), n_subsamples, cheap_modalities, progress=progress, checkpoint=checkpoint)
        self.save_table("transfer_bounds", key, table)
        checkpoint.clear()
        return table

    def fold_checkpoint(self, run: str):
        """Where a long cross-validation keeps finished folds (:class:`~core.modelling.validation.FoldCheckpoint`).

        ``<workspace>/models/<run>.partial/``: each fold's model and its out-of-fold arrays; a fold
        counts as done only once its arrays are written, so an interrupted save is redone.
        :meth:`save_cv` of the completed run removes the folder.
        """
        if not _DIGEST.match(run or ""):
            raise InputError(f"run {run!r} is not a run digest (16 hex digits).", field="run")
        return _FoldFiles(self.path / "models" / f"{run}.partial")

    def piece_checkpoint(self, kind: str, key: str):
        """Where a long evaluation stored as a ``kind`` table under ``key`` (:meth:`save_table`) keeps its finished
        pieces (:class:`~core.parallel.PieceCheckpoint`): ``<workspace>/<kind>/<key>.partial/``.

        A piece counts as kept only once its marker is written after its tables, so an interrupted
        write is computed again; the method that stores the finished table removes the folder.
        """
        if not (_DIGEST.match(key or "") and re.fullmatch(r"[a-z_]+", kind or "")):
            raise InputError(f"no checkpoint for a {kind!r} table under key {key!r}: expected a lower-case kind and a 16-hex-digit key.", field="key")
        return _TablePieces(self.path / kind / f"{key}.partial")

    def cv_progress(self, run: str) -> int:
        """How many folds of a stopped run are kept (0 when none)."""
        folder = self.path / "models" / f"{run}.partial"
        return len(list(folder.glob("fold_*.oof.npz"))) if folder.exists() else 0

    def load_cv(self, run: str, cohort: Cohort):
        """The stored run of this cohort, or None when this run was never saved.

        The cohort gives the feature values the stored SHAP values explain.
        """
        if not _DIGEST.match(run or ""):
            raise InputError(f"run {run!r} is not a run digest (16 hex digits).", field="run")
        for attempt in range(3):
            exists, folder = self._row_folder("cv_runs", run)  # an old workspace's run without its row is read from its folder
            if not (folder / "meta.json").exists():
                if exists and attempt < 2 and self._row_folder("cv_runs", run)[1] != folder:
                    continue
                return None
            try:
                return self._read_cv(folder, cohort)
            except InputError:
                if attempt < 2 and self._row_folder("cv_runs", run)[1] != folder:
                    continue  # saved again by another process while this one read: read the new version
                raise

    @staticmethod
    def _read_cv(folder: Path, cohort: Cohort):
        from core.modelling.estimators import load_estimator
        from core.modelling.explanation import OUTPUT_SPACES, Explanation
        from core.modelling.validation import CVResult, Fold

        try:
            meta = json.loads((folder / "meta.json").read_text())
            folds_table = pd.read_parquet(folder / "folds.parquet")
            folds = [Fold(int(r.repeat), int(r.fold), np.asarray(r.train), np.asarray(r.test)) for r in folds_table.itertuples()]
            by_repeat = pd.read_parquet(folder / "prediction_by_repeat.parquet")
            shap = pd.read_parquet(folder / "shap.parquet")
            base = pd.read_parquet(folder / "shap_base.parquet")["base"]
            features = list(meta["features"])
            data_file = folder / "shap_data.parquet"  # runs saved before it was kept explain the cohort's features
            data = pd.read_parquet(data_file)[features] if data_file.exists() else cohort.features.loc[shap.index, features]
            explanation = Explanation(shap[features].to_numpy(), base.to_numpy(), data.to_numpy(dtype=float),
                                      tuple(features), OUTPUT_SPACES[OUTCOMES[meta["outcome"]]], shap.index)
            interaction_file = folder / "interaction.npy"
            return CVResult(
                outcome=meta["outcome"],
                features=features,
                prediction=by_repeat.mean(axis=1).rename("prediction"),
                prediction_by_repeat=by_repeat,
                explanation=explanation,
                interaction=np.load(interaction_file, allow_pickle=False) if interaction_file.exists() else None,
                folds=folds,
                fold_models=[load_estimator(folder / f"fold_{i:03d}") for i in range(len(folds))],
                scheme=meta["scheme"],
                params={k: v for k, v in meta["params"].items() if k != "outcome"},
                model=meta.get("model", "xgboost"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"the saved model run {folder.name.split(VERSION_MARK)[0]} cannot be read ({exc}); train it again.", source=str(folder)) from exc

    # --- ablation runs: per-fold scores of every modality subset (complete or partial) ----------
    def _ablation_folder(self, digest: str) -> Path:
        if not _DIGEST.match(digest or ""):
            raise InputError(f"ablation run {digest!r} is not a run digest (16 hex digits).", field="digest")
        return self.path / "ablation" / digest

    def save_ablation(self, cohort: Cohort, result) -> None:
        """Store an :class:`~core.ablation.AblationResult` under its digest (see ``ablation_digest``).

        A partial result (``AblationCancelled.partial``) is stored the same way; saving the
        completed run later replaces it.
        """
        with atomic_folder(self._ablation_folder(result.digest)) as staging:
            result.save(staging)
        done, total = result.progress()
        self._commit_version("ablation_runs", result.digest, staging, {"cohort": cohort.name, "cohort_digest": cohort.digest, "outcome": result.config.outcome,
                                                                       "fits_done": done, "fits_total": total, "saved_at": _now()})

    def load_ablation(self, digest: str):
        """The stored ablation run (complete or partial), or None when it was never saved.

        Raises InputError when the stored files cannot be read.
        """
        from core.ablation.result import AblationResult

        self._ablation_folder(digest)
        for attempt in range(3):
            exists, folder = self._row_folder("ablation_runs", digest)
            if not (folder / "ablation.json").exists():
                if exists and attempt < 2 and self._row_folder("ablation_runs", digest)[1] != folder:
                    continue
                return None
            try:
                return AblationResult.load(folder)
            except InputError:
                if attempt < 2 and self._row_folder("ablation_runs", digest)[1] != folder:
                    continue  # saved again by another process while this one read: read the new version
                raise

    def ablation_saved_at(self, digest: str):
        """When the ablation run was last saved (None if never): a cache key that changes on resume."""
        self._ablation_folder(digest)
        with self._connect() as db:
            row = db.execute("SELECT saved_at, folder FROM ablation_runs WHERE digest = ?", [digest]).fetchone()
        if row is None or not (self._versioned_folder("ablation_runs", digest, row[1]) / "ablation.json").exists():
            return None
        return row[0]

    # --- fusion inputs: each patient's raw data as fixed-size arrays, cached per cohort ------------
    def fusion_inputs(self, cohort: Cohort, *, progress=None, should_stop=None, chunk_size: int = FUSION_CHUNK_SIZE):
        """The deep fusion model's inputs of every patient (:class:`core.features.tensors.FusionInputs`).

        Built once per cohort content in chunks of ``chunk_size`` patients, each saved as it is
        done (``<workspace>/tensors/<key>/chunk_NNNN.npz``, float16), so an interrupted build
        resumes where it stopped and every later fold and run reads the cache. The key covers the
        cohort's content and the tensor layout, so a changed cohort gets a new cache.
        ``progress(done, total)`` counts chunks; ``should_stop()`` is checked between chunks and
        stops the build with InputError (the finished chunks are kept).
        """
        from core.features.tensors import FusionInputs, inputs_from_raw

        if cohort.raw is None:
            raise InputError("this cohort has no raw data, so the deep fusion model has nothing to learn from; upload the recordings with the table.",
                             source=cohort.name)
        folder = self.path / "tensors" / fusion_inputs_key(cohort)
        folder.mkdir(parents=True, exist_ok=True)
        ids = list(cohort.patients.index)
        chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
        parts = []
        for number, chunk in enumerate(chunks):
            path = folder / f"chunk_{number:04d}.npz"
            if not path.exists():
                if should_stop is not None and should_stop():
                    raise InputError(f"stopped after {number} of {len(chunks)} chunks; the finished ones are kept, so building again resumes there.",
                                     source=cohort.name)
                make = getattr(cohort.raw, "fusion_inputs", None)
                part = make(chunk) if make is not None else inputs_from_raw([cohort.raw_data(pid) for pid in chunk])
                with atomic_file(path) as handle:  # a chunk is listed only once it is complete
                    np.savez(handle, **part.to_arrays())
            with np.load(path, allow_pickle=False) as arrays:
                parts.append(FusionInputs.from_arrays(arrays))
            if progress:
                progress(number + 1, len(chunks))
        inputs = FusionInputs.concat(parts)
        if list(inputs.patient_ids) != ids:
            raise InputError("the cached fusion inputs do not match the cohort's patients; delete the workspace's tensors folder and build again.",
                             source=str(folder))
        return inputs

    def delete(self, name: str) -> None:
        """Remove a saved cohort: its row first (one transaction), then its files."""
        legacy = self._folder(name)
        with self._connect() as db:
            db.begin()
            row = db.execute("SELECT folder FROM cohorts WHERE name = ?", [name]).fetchone()
            db.execute("DELETE FROM cohorts WHERE name = ?", [name])
            db.commit()
            retired = [self._retire(legacy)]
            if row is not None and row[0]:
                retired.append(self._retire(self._versioned_folder("cohorts", name, row[0])))
        for path in retired:
            if path is not None:
                remove_tree(path)


class _FoldFiles:
    """Finished folds of one cross-validation run, as files (see :meth:`Workspace.fold_checkpoint`)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, number: int):
        from core.modelling.estimators import load_estimator

        arrays_file = self.folder / f"fold_{number:03d}.oof.npz"
        if not arrays_file.exists():
            return None
        with np.load(arrays_file, allow_pickle=False) as arrays:
            interaction = arrays["interaction"] if "interaction" in arrays.files else None
            return load_estimator(self.folder / f"fold_{number:03d}"), arrays["margin"], arrays["values"], arrays["base"], interaction

    def keep(self, number: int, model, margin, values, base, interaction) -> None:
        """Write the fold's model, fsync it, then its arrays (atomically): the arrays mark the fold done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"fold_{number:03d}"
        model.save(self.folder / stem)
        for path in self.folder.glob(f"{stem}*"):
            if path.is_file() and not path.name.endswith(".oof.npz"):
                fsync_file(path)
        fsync_folder(self.folder)
        interaction = {} if interaction is None else {"interaction": np.asarray(interaction)}  # xgboost's, first repeat only
        with atomic_file(self.folder / f"{stem}.oof.npz") as handle:
            np.savez(handle, margin=np.asarray(margin), values=np.asarray(values), base=np.asarray(base), **interaction)


class _TablePieces:
    """Finished pieces of one long evaluation, as Parquet tables (see :meth:`Workspace.piece_checkpoint`)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _marker(self, piece: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", piece or ""):
            raise InputError(f"piece name {piece!r}: expected letters, digits, '_' or '-'.", field="piece")
        return self.folder / f"{piece}.done.json"

    def load(self, piece: str) -> dict[str, pd.DataFrame] | None:
        marker = self._marker(piece)
        try:
            names = json.loads(marker.read_text())
            return {name: pd.read_parquet(self.folder / f"{piece}.{name}.parquet") for name in names}
        except (OSError, ValueError, TypeError):
            return None  # not kept, or damaged: computed again

    def keep(self, piece: str, tables: dict[str, pd.DataFrame]) -> None:
        """Write each table atomically, then the marker that names them: the marker marks the piece kept."""
        marker = self._marker(piece)
        for name, table in tables.items():
            if not re.fullmatch(r"[a-z_]+", name):
                raise InputError(f"table name {name!r}: expected lower-case letters and '_'.", field="piece")
            with atomic_file(self.folder / f"{piece}.{name}.parquet") as handle:
                table.to_parquet(handle)
        atomic_write_text(marker, json.dumps(list(tables)))

    def count(self) -> int:
        """How many pieces are kept."""
        return len(list(self.folder.glob("*.done.json"))) if self.folder.exists() else 0

    def clear(self) -> None:
        remove_tree(self.folder)


def _save_raw(cohort: Cohort, folder: Path) -> None:
    """Each patient's raw recordings as ``<folder>/<row>.npz`` (FA inside the brain mask, float32)."""
    from core.anatomy import load_anatomy

    brain = load_anatomy().brain_mask
    folder.mkdir(parents=True)
    for row, patient_id in enumerate(cohort.patients.index):
        raw = cohort.raw.load(patient_id)
        arrays = {}
        if raw.fa is not None:
            arrays["fa_in_brain"] = np.asarray(raw.fa, np.float32)[brain]
        if raw.lesion_mask is not None:
            arrays["lesion_in_brain"] = np.asarray(raw.lesion_mask, bool)[brain]
        if raw.emg is not None:
            emg = raw.emg
            arrays.update(emg_fs_hz=np.float64(emg.fs_hz), emg_muscles=np.array(list(emg.muscles), dtype=str), emg_mep_sweeps_uv=np.asarray(emg.mep_sweeps_uv),
                          emg_sweep_start_ms=np.float64(emg.sweep_start_ms), emg_voluntary_uv=np.asarray(emg.voluntary_uv))
        if raw.trajectory is not None:
            arrays.update(trajectory_fs_hz=np.float64(raw.trajectory.fs_hz), trajectory_position_mm=np.asarray(raw.trajectory.position_mm))
        if arrays:
            np.savez(folder / f"{row:06d}.npz", **arrays)


class StoredRawSource:
    """Raw recordings of a saved uploaded cohort, read from its folder one patient at a time."""

    def __init__(self, folder: Path, patient_ids):
        self.folder = folder
        self._row = {pid: row for row, pid in enumerate(patient_ids)}

    def load(self, patient_id: str):
        from core.anatomy import load_anatomy
        from core.data.raw import EMGRecording, PatientRaw, Trajectory

        anatomy = load_anatomy()
        raw = PatientRaw(patient_id=patient_id, affine=anatomy.affine)
        path = self.folder / f"{self._row[patient_id]:06d}.npz"
        if not path.exists():
            return raw
        try:
            with np.load(path, allow_pickle=False) as a:
                if "fa_in_brain" in a:
                    raw.fa = np.zeros(anatomy.shape, np.float32)
                    raw.fa[anatomy.brain_mask] = a["fa_in_brain"]
                if "lesion_in_brain" in a:
                    raw.lesion_mask = np.zeros(anatomy.shape, bool)
                    raw.lesion_mask[anatomy.brain_mask] = a["lesion_in_brain"]
                if "emg_fs_hz" in a:
                    raw.emg = EMGRecording(float(a["emg_fs_hz"]), tuple(str(m) for m in a["emg_muscles"]), a["emg_mep_sweeps_uv"], float(a["emg_sweep_start_ms"]),
                                           a["emg_voluntary_uv"])
                if "trajectory_fs_hz" in a:
                    raw.trajectory = Trajectory(float(a["trajectory_fs_hz"]), a["trajectory_position_mm"])
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"the saved raw data of patient {patient_id!r} cannot be read ({exc}); upload the cohort again.", source=str(path)) from exc
        return raw
