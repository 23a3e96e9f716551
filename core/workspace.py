"""A workspace folder: a DuckDB catalogue of cohorts plus their tables as Parquet files.

Layout::

    <workspace>/catalogue.duckdb            table ``cohorts``: one row per saved cohort
    <workspace>/cohorts/<name>/*.parquet    patients, features, outcomes (+ ground truth tables)

Nothing is pickled: tables are Parquet, provenance is JSON in the catalogue.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from core.cohort import Cohort, GroundTruth
from core.errors import InputError

DEFAULT_WORKSPACE_ENV = "NEUROPREDICT_WORKSPACE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
_TABLES = ("patients", "features", "outcomes")
_TRUTH_TABLES = ("latents", "terms", "feature_effects")


def default_workspace() -> Path:
    return Path(os.environ.get(DEFAULT_WORKSPACE_ENV, "workspace")).resolve()


class Workspace:
    """Saved cohorts in one folder; they survive restarts of the app.

    Parameters
    ----------
    path : the folder; created if missing.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_workspace()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the workspace folder: {exc.strerror}.", source=str(self.path)) from exc
        with self._connect() as db:
            db.execute(
                """CREATE TABLE IF NOT EXISTS cohorts (
                    name TEXT PRIMARY KEY, kind TEXT, n_patients INTEGER, n_features INTEGER,
                    responder_threshold_pct DOUBLE, digest TEXT, provenance TEXT, saved_at TIMESTAMP)"""
            )
            db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT)")

    def _connect(self):
        return duckdb.connect(str(self.path / "catalogue.duckdb"))

    @staticmethod
    def check_name(name: str) -> None:
        """Raise InputError unless ``name`` can be a saved cohort's name (and folder)."""
        if not _NAME.match(name or ""):
            raise InputError(
                f"cohort name {name!r} is not allowed; use 1-64 letters, digits, spaces, '_', '-' or '.', starting with a letter or digit.",
                field="name",
            )

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
        folder = self._folder(cohort.name)
        if not overwrite and cohort.name in self:
            raise InputError(f"a cohort named {cohort.name!r} is already saved; choose another name.", field="name")
        staging = folder.with_name(folder.name + ".saving")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for table in _TABLES:
            getattr(cohort, table).to_parquet(staging / f"{table}.parquet")
        if cohort.ground_truth is not None:
            for table in _TRUTH_TABLES:
                getattr(cohort.ground_truth, table).to_parquet(staging / f"{table}.parquet")
        # Swap folders only once every file is written, so a crash never leaves half a cohort.
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        with self._connect() as db:
            db.execute("DELETE FROM cohorts WHERE name = ?", [cohort.name])
            db.execute(
                "INSERT INTO cohorts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    cohort.name,
                    cohort.provenance.get("kind", "unknown"),
                    cohort.n_patients,
                    cohort.features.shape[1],
                    cohort.responder_threshold_pct,
                    cohort.digest,
                    json.dumps(cohort.provenance),
                    datetime.now(timezone.utc).replace(tzinfo=None),
                ],
            )

    def load(self, name: str) -> Cohort:
        folder = self._folder(name)
        with self._connect() as db:
            row = db.execute("SELECT provenance, responder_threshold_pct FROM cohorts WHERE name = ?", [name]).fetchone()
        if row is None:
            raise InputError(f"no saved cohort named {name!r}; saved cohorts: {', '.join(self.names()) or 'none'}.", source=str(self.path))
        provenance, threshold = json.loads(row[0]), float(row[1])
        try:
            tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in _TABLES}
            truth = None
            if all((folder / f"{t}.parquet").exists() for t in _TRUTH_TABLES):
                truth = GroundTruth(**{t: pd.read_parquet(folder / f"{t}.parquet") for t in _TRUTH_TABLES})
        except (OSError, ValueError) as exc:
            raise InputError(f"the saved files of cohort {name!r} cannot be read ({exc}); save it again.", source=str(folder)) from exc
        raw = None
        if provenance.get("kind") == "synthetic" and truth is not None:
            from core.synth import CohortConfig, SyntheticRawSource, missing_modalities

            config = CohortConfig.from_dict(provenance["config"])
            raw = SyntheticRawSource(config, truth.latents, missing_modalities(config, truth.latents.index))
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

    def delete(self, name: str) -> None:
        shutil.rmtree(self._folder(name), ignore_errors=True)
        with self._connect() as db:
            db.execute("DELETE FROM cohorts WHERE name = ?", [name])
