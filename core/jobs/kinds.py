"""What each kind of job runs: exactly the core calls the pages and ``python -m core`` make, so a job
stores the same result (under the same digest) as the page did when it ran the work itself.

Each kind has a builder for the pages (``generate_job``, ``cv_job``, ``learning_curves_job``, ``ablation_job``,
``any_outcome_job``, ``transfer_job``, ``bound_job``, ``tms_dataset_job``) that returns the job's JSON parameters and its key (the digest the result is
stored under), and a runner ``run(workspace, params, reporter) -> result key`` that the job process calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.errors import InputError
from core.jobs.runner import JobCancelled


@dataclass(frozen=True)
class Kind:
    """A kind of job: its name, how people call it, and what its process runs."""

    name: str
    label: str
    run: Callable


def _cohort(workspace, params: dict):
    """The saved cohort a job works on (from ``params["cohort_workspace"]`` when it is a colleague's
    cohort shared read-only, else from the job's workspace); InputError if it was saved again with
    other content since the job was submitted."""
    from core.store.workspace import Workspace

    name = params.get("cohort")
    holder = Workspace(params["cohort_workspace"]) if params.get("cohort_workspace") else workspace
    cohort = holder.load(name)
    if cohort.digest != params.get("cohort_digest"):
        raise InputError(f"cohort {name!r} was saved again with other content after this job was submitted; start it again.", source=name)
    return cohort


def _cohort_params(cohort, cohort_workspace) -> dict:
    params = {"cohort": cohort.name, "cohort_digest": cohort.digest}
    if cohort_workspace is not None:
        params["cohort_workspace"] = str(cohort_workspace)
    return params


# --- synthetic cohorts ---------------------------------------------------------------------------------


def generate_job(config, *, replace: bool = False) -> tuple[dict, str]:
    """Parameters and key (:func:`core.synth.generator.generation_key`) of generating and saving the synthetic
    cohort of ``config`` (:class:`~core.synth.CohortConfig`); ``replace``: over a saved cohort of the same name."""
    from core.synth.generator import generation_key

    return {"config": config.to_dict(), "replace": bool(replace)}, generation_key(config)


def _run_generate(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.generate`, as the Cohort page and ``python -m core generate``: kept chunks
    of a stopped generation of the same config are reused."""
    from core.synth.config import CohortConfig
    from core.synth.generator import generation_key

    config = CohortConfig.from_dict(params["config"])
    report.progress(0, 1, "latent factors of every patient")
    _resumable(report, f"generation of {config.name!r}", "chunks of patients",
               lambda progress: workspace.generate(config, replace=bool(params.get("replace")), progress=progress))
    return generation_key(config)


# --- cross-validation (xgboost, deep fusion, stacked) ------------------------------------------------


def cv_job(cohort, settings, cohort_workspace=None) -> tuple[dict, str]:
    """Parameters and key (the run digest) of a cross-validation job of ``settings``
    (:class:`~core.modelling.validation.CVSettings`) on a saved ``cohort``; ``cohort_workspace``: the
    workspace holding the cohort when it is not the job's own (a cohort shared read-only)."""
    return {**_cohort_params(cohort, cohort_workspace), "settings": settings.to_dict()}, settings.run_digest(cohort)


def _run_cv(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.train_cv`, as the Prediction page's Train button and ``python -m core train``."""
    from core.modelling.validation import CVSettings

    cohort = _cohort(workspace, params)
    settings = CVSettings.from_dict(params["settings"])
    run = settings.run_digest(cohort)
    total = settings.n_splits * settings.n_repeats
    deep = settings.model != "xgboost"
    kept = workspace.cv_progress(run)
    report.progress(kept, total, f"resuming: {kept} of {total} folds kept" if kept else "splitting the cohort into folds")

    def on_epoch(fold, row):
        report.append("losses", {"fold": f"repeat {fold.repeat + 1}, fold {fold.fold + 1}", **row})
        report.check()

    try:
        workspace.train_cv(cohort, settings, progress=lambda done, n: report.progress(done, n, f"fold {done} of {n} trained and explained"),
                           on_epoch=on_epoch if deep else None,
                           tensor_progress=(lambda done, n: report.progress(kept, total, f"raw-data tensors: chunk {done} of {n}")) if deep else None)
    except JobCancelled:
        kept = workspace.cv_progress(run)
        raise JobCancelled(f"Training was cancelled with {kept} of {total} folds finished and kept: Train resumes from them." if kept
                           else "Training was cancelled before its first fold finished; nothing was kept.") from None
    return run


def learning_curves_job(cohort, settings, cohort_workspace=None) -> tuple[dict, str]:
    """Parameters and key (:func:`core.evaluation.learning.learning_curve_key`) of the Prediction page's
    learning curves: every model of ``settings``' folds at each size of ``LEARNING_CURVE_SIZES``."""
    from core.evaluation.learning import LEARNING_CURVE_SIZES, learning_curve_key
    from core.modelling.validation import CVSettings

    models = list(CVSettings.MODELS)
    key = learning_curve_key(cohort, settings, models, LEARNING_CURVE_SIZES)
    return {**_cohort_params(cohort, cohort_workspace), "settings": settings.to_dict(), "models": models,
            "sizes": [int(n) for n in LEARNING_CURVE_SIZES]}, key


def _run_learning_curves(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.learning_curves`, as the Prediction page computed it."""
    from core.evaluation.learning import learning_curve_key
    from core.modelling.validation import CVSettings

    cohort = _cohort(workspace, params)
    settings = CVSettings.from_dict(params["settings"])
    models, sizes = list(params["models"]), [int(n) for n in params["sizes"]]
    key = learning_curve_key(cohort, settings, models, sizes)
    report.progress(0, 1, "raw-data tensors of the cohort (cached in the workspace)")
    try:
        workspace.learning_curves(cohort, settings, models, sizes, progress=lambda done, total, label: report.progress(done, total, f"{label}: done ({done} of {total})"),
                                  tensor_progress=lambda done, n: report.progress(0, 1, f"raw-data tensors: chunk {done} of {n}"))
    except JobCancelled:
        kept, fitting = workspace.piece_checkpoint("learning_curves", key).count(), sum(n <= cohort.n_patients for n in sizes)
        raise JobCancelled(f"The learning curves were cancelled with {kept} of {fitting} cohort sizes finished and kept: running them again resumes from them."
                           if kept else "The learning curves were cancelled before the first cohort size finished; nothing was kept.") from None
    return key


# --- modality ablation ---------------------------------------------------------------------------------


def ablation_job(cohort, config, cohort_workspace=None) -> tuple[dict, str]:
    """Parameters and key (the ablation digest) of an ablation job of ``config``
    (:class:`~core.ablation.AblationConfig`) on a saved ``cohort``; ``cohort_workspace`` as for :func:`cv_job`."""
    from core.ablation.config import ablation_digest

    return {**_cohort_params(cohort, cohort_workspace), "config": config.to_dict()}, ablation_digest(cohort, config)


def _run_ablation(workspace, params: dict, report) -> str:
    """:func:`core.ablation.run_ablation` with its result stored, as the Ablation page and ``python -m core ablate``:
    a saved partial run is resumed; a cancelled run stores its finished fits as a partial run."""
    from core.ablation import AblationCancelled, AblationConfig, ablation_digest, run_ablation

    cohort = _cohort(workspace, params)
    config = AblationConfig.from_dict(params["config"])
    digest = ablation_digest(cohort, config)
    saved = workspace.load_ablation(digest)
    if saved is not None and saved.is_complete:
        return digest
    if saved is not None:
        report.note("resumed_from", saved.progress()[0])  # fits of the saved partial run, kept and not refitted
        report.progress(*saved.progress(), "resuming: {} of {} model fits kept".format(*saved.progress()))
    else:
        report.progress(0, 1, "building the folds")
    try:
        result = run_ablation(cohort, config, progress=lambda done, total: report.progress(done, total, f"{done} of {total} model fits", check=False),
                              should_stop=report.should_stop, resume=saved)
    except AblationCancelled as exc:
        workspace.save_ablation(cohort, exc.partial)
        done, total = exc.partial.progress()
        raise JobCancelled(f"Ablation stopped after {done} of {total} model fits; they are saved. Press Resume to finish.") from None
    workspace.save_ablation(cohort, result)
    return digest


# --- any outcome: the held-out evaluation, the transfer curve and the distillation bound ----------------


def any_outcome_job(cohort, settings, cohort_workspace=None) -> tuple[dict, str]:
    """Parameters and key of the held-out any-outcome evaluation of ``settings``
    (:class:`~core.evaluation.anyoutcome.AnyOutcomeSettings`) on a saved ``cohort``."""
    return {**_cohort_params(cohort, cohort_workspace), "settings": settings.to_dict()}, settings.key(cohort)


def _run_any_outcome(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.any_outcome_evaluation`, as the Any outcome page and ``python -m core any-outcome``."""
    from core.evaluation.anyoutcome import AnyOutcomeSettings

    cohort = _cohort(workspace, params)
    settings = AnyOutcomeSettings.from_dict(params["settings"])
    report.progress(0, 1, "fitting the first fold's seen measures")
    _resumable(report, "held-out evaluation", "folds x held-out families", lambda progress: workspace.any_outcome_evaluation(cohort, settings, progress=progress))
    return settings.key(cohort)


def _resumable(report, what: str, unit: str, compute) -> None:
    """``compute(progress)``, an evaluation whose finished pieces the workspace keeps; a cancelled one
    says how many it kept (the same job resumes from them)."""
    finished = [0, 0]

    def progress(done, total, *rest):
        finished[:] = [done, total]
        report.progress(done, total, f"{done} of {total} {unit}")

    try:
        compute(progress)
    except JobCancelled:
        done, total = finished
        if not done:
            raise JobCancelled(f"The {what} was cancelled before any of its {unit} finished; nothing was kept.") from None
        raise JobCancelled(f"The {what} was cancelled with {done} of {total} {unit} finished and kept: running it again resumes from them.") from None


def transfer_job(cohort, cheap_modalities, sizes, cohort_workspace=None, n_reference: int | None = None) -> tuple[dict, str]:
    """Parameters and key (:func:`core.evaluation.transfer.transfer_key`) of the transfer curve of a saved ``cohort``;
    ``n_reference``: patients of the cheap-only limit's reference cohort (synthetic cohorts; default ``CHEAP_LIMIT_REFERENCE``)."""
    from core.evaluation.transfer import CHEAP_LIMIT_REFERENCE, transfer_key

    cheap, sizes = [str(m) for m in cheap_modalities], [int(n) for n in sizes]
    return {**_cohort_params(cohort, cohort_workspace), "cheap": cheap, "sizes": sizes, "n_reference": int(n_reference or CHEAP_LIMIT_REFERENCE)}, transfer_key(cohort, cheap, sizes)


def _run_transfer(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.transfer_curve` (the curve, and on a synthetic cohort the cheap-only limit first),
    as the Any outcome page and ``python -m core transfer``."""
    from core.evaluation.transfer import transfer_key

    cohort = _cohort(workspace, params)
    cheap, sizes = list(params["cheap"]), [int(n) for n in params["sizes"]]
    synthetic = (cohort.provenance or {}).get("kind") == "synthetic"
    n_reference = int(params["n_reference"])
    report.progress(0, len(sizes), f"the cheap-only limit on {n_reference:,} further patients of the same generator" if synthetic else "the smallest cohort size")
    _resumable(report, "transfer curve", "cohort sizes", lambda progress: workspace.transfer_curve(cohort, cheap, sizes, progress=progress, n_reference=n_reference))
    return transfer_key(cohort, cheap, sizes)


def bound_job(cohort, cheap_modalities, cohort_workspace=None) -> tuple[dict, str]:
    """Parameters and key (:func:`core.evaluation.transfer.bound_key`) of the distillation bound of a saved synthetic ``cohort``."""
    from core.evaluation.transfer import bound_key

    cheap = [str(m) for m in cheap_modalities]
    return {**_cohort_params(cohort, cohort_workspace), "cheap": cheap}, bound_key(cohort, cheap)


def _run_bound(workspace, params: dict, report) -> str:
    """:meth:`core.store.Workspace.distillation_bound`, as the Any outcome page and ``python -m core transfer --bound``."""
    from core.evaluation.transfer import bound_key

    cohort = _cohort(workspace, params)
    cheap = list(params["cheap"])
    report.progress(0, 1, "the first subsample")
    _resumable(report, "distillation bound", "subsamples", lambda progress: workspace.distillation_bound(cohort, cheap, progress=progress))
    return bound_key(cohort, cheap)


# --- TMS threshold dataset -----------------------------------------------------------------------------


def tms_dataset_job(config, *, n_jobs: int = 2, limit: int | None = None) -> tuple[dict, str]:
    """Parameters and key (the config digest) of a TMS dataset job (:class:`~core.tms.dataset.DatasetConfig`);
    ``n_jobs`` worker processes; ``limit``: at most this many more chunks (as ``python -m core tms-dataset --limit``)."""
    return {"config": config.to_dict(), "n_jobs": int(n_jobs), "limit": None if limit is None else int(limit)}, config.digest()


def shipped_tms_dataset_config():
    """The surrogate's dataset config shipped in ``assets/tms/dataset.yaml`` (the defaults when it is missing),
    as ``python -m core tms-dataset`` reads it."""
    from pathlib import Path

    from core.tms.dataset import DatasetConfig

    shipped = Path(__file__).resolve().parents[2] / "assets" / "tms" / "dataset.yaml"
    return DatasetConfig.from_yaml(shipped) if shipped.exists() else DatasetConfig()


def tms_dataset_chunks(config, workspace) -> tuple[int, int | None]:
    """Chunks of ``config``'s dataset in the workspace: (written, planned), planned None before the
    first generation planned it (planning the full dataset takes tens of seconds, so it is not done here)."""
    import json

    from core.tms.dataset import dataset_folder

    folder = dataset_folder(config, workspace)
    try:
        plan = json.loads((folder / "plan.json").read_text())
        names = list(plan["grid_chunks"]) + list(plan["direction_chunks"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, None
    return sum((folder / name).exists() for name in names), len(names)


def _run_tms_dataset(workspace, params: dict, report) -> str:
    """:func:`core.tms.dataset.generate_dataset` into the workspace, as ``python -m core tms-dataset``.
    Chunks are written whole, so a cancelled or interrupted job resumes at the next chunk."""
    from core.tms.dataset import DatasetConfig, generate_dataset

    config = DatasetConfig.from_dict(params["config"])
    report.progress(0, 1, "planning the coil placements and cells (tens of seconds for the full dataset)")
    try:
        outcome = generate_dataset(config, workspace.path, n_jobs=int(params.get("n_jobs", 2)), limit=params.get("limit"),
                                   progress=lambda done, total: report.progress(done, total, f"{done} of {total} thresholds"))
    except JobCancelled:
        raise JobCancelled("Dataset generation was cancelled; the finished chunks are kept and generating again resumes there.") from None
    if not outcome.complete:
        report.progress(report._state.get("done", 0), report._state.get("total", 1), "stopped at the chunk limit; run again to continue", check=False)
    return config.digest()


KINDS: dict[str, Kind] = {
    "generate": Kind("generate", "cohort generation", _run_generate),
    "cv": Kind("cv", "cross-validation", _run_cv),
    "learning_curves": Kind("learning_curves", "learning curves", _run_learning_curves),
    "ablation": Kind("ablation", "modality ablation", _run_ablation),
    "any_outcome": Kind("any_outcome", "held-out any-outcome evaluation", _run_any_outcome),
    "transfer": Kind("transfer", "transfer curve", _run_transfer),
    "bound": Kind("bound", "distillation bound", _run_bound),
    "tms_dataset": Kind("tms_dataset", "TMS threshold dataset", _run_tms_dataset),
}
