"""What the storage tests share: small cohorts, runs and ablations (made once per session), content
fingerprints to compare what a workspace gives back with what was saved, and a look at its files."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.store.atomic import VERSION_MARK, is_temporary

# Small runs test the storage, not the science: few trees, 3 folds, no permutations.
FAST = {"learning_rate": 0.3, "n_estimators": 20, "early_stopping_rounds": 5}


@dataclasses.dataclass
class Material:
    """Two versions of each kind of thing a workspace stores (a save may overwrite one with the other)."""

    cohorts: tuple  # two 60-patient synthetic cohorts (different seeds)
    cv_runs: tuple  # two CVResults of cohorts[0] (responder, improvement)
    ablations: tuple  # a complete AblationResult (clinical + EMG features of cohorts[0]) and a cancelled (partial) one of the same digest
    tables: tuple  # two result tables


@functools.lru_cache(maxsize=1)
def material() -> Material:
    from core.ablation.config import AblationConfig
    from core.ablation.result import AblationCancelled
    from core.ablation.run import run_ablation
    from core.modelling.validation import CohortSplitter, cross_validate
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    cohorts = tuple(generate_cohort(CohortConfig(name="tiny", n_patients=60, seed=seed), n_jobs=1) for seed in (3, 4))
    splitter = CohortSplitter(n_splits=3, n_repeats=1)
    runs = tuple(cross_validate(cohorts[0], outcome, splitter=splitter, params=FAST, n_jobs=1) for outcome in ("responder", "improvement_pct"))
    # two modalities (3 subsets x 3 folds = 9 fits): cheap, and the stored tables have the same shape as any run's
    two = dataclasses.replace(cohorts[0], features=cohorts[0].features.filter(regex=r"^(clin|emg)\."))
    config = AblationConfig(n_splits=3, n_repeats=1, n_permutations=0, model_params=FAST)
    complete = run_ablation(two, config, n_jobs=1)
    try:
        run_ablation(two, config, n_jobs=1, should_stop=lambda: True, resume=dataclasses.replace(complete, scores=complete.scores.iloc[:4]))
    except AblationCancelled as exc:
        partial = exc.partial
    assert partial.progress() == (4, 9) and complete.progress() == (9, 9)
    tables = (cohorts[0].features.head(40).reset_index(), cohorts[1].outcomes.reset_index())
    return Material(cohorts, runs, (complete, partial), tables)


def _frames_digest(*frames, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for frame in frames:
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        h.update("|".join(map(str, frame.columns)).encode())
    return h.hexdigest()[:16]


def cohort_fingerprint(cohort) -> str:
    """Every table of a cohort, its provenance and responder threshold (not its name)."""
    truth = cohort.ground_truth
    frames = [cohort.patients, cohort.features, cohort.outcomes] + ([truth.latents, truth.terms, truth.feature_effects] if truth is not None else [])
    return _frames_digest(*frames, extra=json.dumps(cohort.provenance, sort_keys=True, default=str) + repr(cohort.responder_threshold_pct))


def cv_fingerprint(result, cohort) -> str:
    """Out-of-fold predictions, SHAP values, folds, and what every fold model predicts for the cohort."""
    h = hashlib.sha256(json.dumps([result.outcome, result.features, result.scheme, result.model, result.params], sort_keys=True, default=str).encode())
    h.update(pd.util.hash_pandas_object(result.prediction_by_repeat, index=True).to_numpy().tobytes())
    h.update(np.ascontiguousarray(result.explanation.values, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(result.explanation.base_values, dtype=np.float64).tobytes())
    X = cohort.features[result.features]
    for fold, model in zip(result.folds, result.fold_models, strict=True):
        h.update(np.asarray(fold.test).tobytes())
        h.update(np.asarray(getattr(model, "predict_proba", model.predict)(X), dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def ablation_fingerprint(result) -> str:
    return _frames_digest(result.scores, result.permutation_scores, extra=json.dumps([result.digest, result.config.to_dict(), result.progress()], default=str))


def table_fingerprint(table: pd.DataFrame) -> str:
    return _frames_digest(table)


def leftovers(workspace: Path) -> list[str]:
    """Temporary files/folders anywhere in a workspace, and version folders no catalogue row names."""
    import duckdb

    found = [str(Path(root, name).relative_to(workspace)) for root, dirs, files in os.walk(workspace) for name in dirs + files if is_temporary(name)]
    with duckdb.connect(str(workspace / "catalogue.duckdb"), read_only=True) as db:
        referenced = {f for table in ("cohorts", "cv_runs", "ablation_runs") for (f,) in db.execute(f"SELECT folder FROM {table}").fetchall()}
    for kind in ("cohorts", "models", "ablation"):
        if (workspace / kind).is_dir():
            found += [f"{kind}/{p.name}" for p in (workspace / kind).iterdir() if VERSION_MARK in p.name and f"{kind}/{p.name}" not in referenced]
    return found


def catalogue_keys(workspace: Path, table: str) -> set[str]:
    """The keys a catalogue table lists (cohort names, run digests, ablation digests)."""
    import duckdb

    column = {"cohorts": "name", "cv_runs": "run", "ablation_runs": "digest"}[table]
    with duckdb.connect(str(workspace / "catalogue.duckdb"), read_only=True) as db:
        return {k for (k,) in db.execute(f"SELECT {column} FROM {table}").fetchall()}


@contextlib.contextmanager
def lock_held_by_a_stopped_process(lock_file: str | Path):
    """A process that takes the flock on ``lock_file`` as ``core.store.locks.exclusive_lock`` does and is
    then stopped (SIGSTOP) holding it; its pid."""
    script = ("import os, signal, sys; from core.store.locks import exclusive_lock\n"
              "with exclusive_lock(sys.argv[1], 0, 'the test lock is'):\n"
              "    print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)\n")
    Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", script, str(lock_file)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
