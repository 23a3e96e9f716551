"""Command line: ``python -m core demo|generate|list|train|ablate|report|jobs|any-outcome|predict-outcome|transfer|export-upload|tms-dataset|tms-train``.

``train``, ``ablate`` and ``report`` are the Prediction and Ablation pages without the browser, for
a cluster node: they store and read the same runs in the same workspace (under the same digests),
so a run made here opens in the app and the other way round. ``python -m core <command> --help``
explains every option.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from core.errors import InputError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="NeuroPredict engine commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="make sure the workspace holds the demo cohort")
    demo.add_argument("--workspace", default=None)
    gen = sub.add_parser("generate", help="generate a synthetic cohort and save it")
    gen.add_argument("--workspace", default=None)
    gen.add_argument("--config", help="YAML config file (see assets/cohorts/)")
    gen.add_argument("--preset", help="name of a shipped preset, e.g. default")
    gen.add_argument("--name", help="save under this name instead of the config's")
    gen.add_argument("--n-patients", type=int)
    gen.add_argument("--seed", type=int)
    lst = sub.add_parser("list", help="list saved cohorts")
    lst.add_argument("--workspace", default=None)
    from core.tms.dataset import add_cli as add_tms_dataset

    add_tms_dataset(sub)
    from core.tms.surrogate import add_cli as add_tms_train

    add_tms_train(sub)
    add_research_commands(sub)
    add_outcome_commands(sub)
    args = parser.parse_args(argv)
    if args.command in RESEARCH_COMMANDS:
        try:
            return RESEARCH_COMMANDS[args.command](args, [str(a) for a in (sys.argv[1:] if argv is None else argv)])
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted: nothing more was saved.", file=sys.stderr)
            return 130
    if args.command in ("tms-dataset", "tms-train"):
        if args.command == "tms-dataset":
            from core.tms.dataset import run_cli
        else:
            from core.tms.surrogate import run_cli

        try:
            return run_cli(args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    from core.store.workspace import Workspace

    try:
        workspace = Workspace(args.workspace)
        if args.command == "list":
            print(workspace.catalogue().to_string(index=False))
            return 0
        from core.synth.config import GENERATOR_VERSION, CohortConfig, presets
        from core.synth.generator import CHUNK_SIZE

        if args.command == "demo":
            config = presets()["default"]
            if config.name in workspace and workspace.load(config.name).provenance.get("generator_version") == GENERATOR_VERSION:
                print(f"workspace {workspace.path} already holds the demo cohort {config.name!r}")
                return 0
        elif args.config:
            config = CohortConfig.from_yaml(args.config)
        else:
            available = presets()
            if (args.preset or "default") not in available:
                raise InputError(f"no preset {args.preset!r}; available: {', '.join(available)}.")
            config = available[args.preset or "default"]
        overrides = {k: v for k, v in (("name", getattr(args, "name", None)), ("n_patients", getattr(args, "n_patients", None)), ("seed", getattr(args, "seed", None))) if v is not None}
        config = CohortConfig.from_dict({**config.to_dict(), **overrides})
        start = time.perf_counter()
        cohort = _resumable(lambda progress: workspace.generate(config, replace=True, progress=progress), f"chunks of {CHUNK_SIZE} patients of {config.name!r}",
                            [str(a) for a in (sys.argv[1:] if argv is None else argv)])
        if cohort is None:
            return 130
        print(f"saved {cohort.n_patients} patients as {cohort.name!r} in {workspace.path} ({time.perf_counter() - start:.1f} s)")
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# --- research commands: train, ablate, report ---------------------------------------------------------


def _field_list(options: dict) -> str:
    """Config fields with the option that sets each, e.g. "n_splits (--folds)"."""
    return ", ".join(field if field == dest else f"{field} (--{dest.replace('_', '-')})" for field, dest in options.items())


_WORKSPACE_HELP = "workspace folder holding the cohort (default: $NEUROPREDICT_WORKSPACE, else ./workspace): the folder the app opens"
_COHORT_HELP = "name of a cohort saved in the workspace (python -m core list shows them)"
# Command-line option (argparse dest) of each CVSettings field.
_RUN_OPTIONS = {"outcome": "outcome", "n_splits": "folds", "n_repeats": "repeats", "max_depth": "max_depth",
                "learning_rate": "learning_rate", "n_estimators": "trees", "early_stopping_rounds": "patience",
                "model": "model", "fusion": "fusion", "max_epochs": "epochs", "inner_splits": "inner_folds"}
# Command-line option (argparse dest) of each AblationConfig field that has one.
_ABLATION_OPTIONS = {"outcome": "outcome", "n_splits": "folds", "n_repeats": "repeats", "seed": "seed",
                     "group_by_site": "group_by_site", "n_permutations": "permutations"}


def _within(low, high):
    """argparse type: a number of ``low``'s type (int or float) from ``low`` to ``high``."""
    kind = type(low)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, found {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, found {text}")
        return value

    return parse


def _add_run_options(p) -> None:
    """The options that define a cross-validation run (:class:`CVSettings`): train and report share them."""
    from core.data.schema import OUTCOMES
    from core.modelling.validation import CVSettings

    d, lim = CVSettings(), CVSettings.LIMITS
    p.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    p.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    p.add_argument("--config", metavar="FILE",
                   help="run settings as YAML (or .json) with any of the fields " + _field_list(_RUN_OPTIONS)
                        + "; an option given on the command line overrides the file's value")
    p.add_argument("--outcome", choices=list(OUTCOMES),
                   help=f"what the model predicts: the responder label (binary) or the improvement in %% (default {d.outcome})")
    p.add_argument("--folds", type=_within(*lim["n_splits"]), metavar="K", help="K of the K-fold cross-validation, %d-%d (default %d)" % (*lim["n_splits"], d.n_splits))
    p.add_argument("--repeats", type=_within(*lim["n_repeats"]), metavar="R",
                   help="repetitions of the K-fold split, each reshuffled; predictions are averaged over them, %d-%d (default %d)" % (*lim["n_repeats"], d.n_repeats))
    p.add_argument("--max-depth", type=_within(*lim["max_depth"]), metavar="D", help="xgboost tree depth, %d-%d (default %d)" % (*lim["max_depth"], d.max_depth))
    p.add_argument("--learning-rate", type=_within(*lim["learning_rate"]), metavar="ETA", help="xgboost learning rate, %g-%g (default %g)" % (*lim["learning_rate"], d.learning_rate))
    p.add_argument("--trees", type=_within(*lim["n_estimators"]), metavar="N",
                   help="most trees; early stopping on an inner split of each training fold picks how many are used, %d-%d (default %d)" % (*lim["n_estimators"], d.n_estimators))
    p.add_argument("--patience", type=_within(*lim["early_stopping_rounds"]), metavar="N",
                   help="early-stopping patience: stop after N trees without improvement, %d-%d (default %d)" % (*lim["early_stopping_rounds"], d.early_stopping_rounds))
    p.add_argument("--model", choices=list(CVSettings.MODELS),
                   help="; ".join(f"{k}: {v}" for k, v in CVSettings.MODELS.items()) + f" (default {d.model}); fusion and stacked predict the responder label")
    p.add_argument("--fusion", choices=list(CVSettings.FUSIONS),
                   help=f"deep models: intermediate (one head on the joined branch embeddings) or late (mean of one head per branch) fusion (default {d.fusion})")
    p.add_argument("--epochs", type=_within(*lim["max_epochs"]), metavar="N",
                   help="deep models: most epochs; early stopping on an inner split of each training fold picks the one used, %d-%d (default %d)" % (*lim["max_epochs"], d.max_epochs))
    p.add_argument("--inner-folds", type=_within(*lim["inner_splits"]), metavar="K",
                   help="stacked model: folds of the inner cross-validation that gives training patients their fusion log-odds, %d-%d (default %d)" % (*lim["inner_splits"], d.inner_splits))


def add_research_commands(subparsers) -> None:
    """Register ``train``, ``ablate``, ``report`` and ``jobs`` on the ``python -m core`` parser."""
    from core.ablation.config import AblationConfig
    from core.data.schema import OUTCOMES
    from core.evaluation.metrics import METRICS

    epilog = ("A run is stored in the workspace under a digest of the cohort's content and these settings, the same key the "
              "Prediction page uses: give the page the same settings (Outcome, Repeats, Folds, Model settings) and it shows the run as "
              "'loaded saved run'.")
    train = subparsers.add_parser("train", help="cross-validate the response model and store the run, as the Prediction page's Train button",
                                  description="Repeated K-fold cross-validation of a response model (xgboost, deep fusion or stacked) on a saved "
                                              "cohort: out-of-fold predictions, explanations and the fold models, stored in the workspace. A run "
                                              "already stored is not trained again. Progress per fold (and per epoch for deep models) goes to "
                                              "stderr; Ctrl-C stops the run and keeps its finished folds, and the same command resumes.", epilog=epilog)
    _add_run_options(train)
    train.add_argument("--n-jobs", type=int, default=-1, metavar="N",
                       help="folds trained side by side (default -1: one per core); the numbers do not depend on it")

    report = subparsers.add_parser("report", help="write a stored run's model report (HTML) and, with --csv, its predictions and SHAP values",
                                   description="The TRIPOD+AI model report of a stored run, the same bytes as the Prediction page's "
                                               "'Model report (HTML)' download for the same run and threshold. The run is named by the "
                                               "same settings it was trained with.", epilog=epilog)
    _add_run_options(report)
    report.add_argument("--threshold", type=float, default=0.5, metavar="P",
                        help="decision threshold (predicted probability of response) of the threshold-dependent figures, rounded to 0.01 "
                             "as the page's slider; binary outcome only (default 0.5)")
    report.add_argument("--out", metavar="FILE",
                        help="where to write the HTML (default: <cohort>-<outcome>-<run>-model-report.html in the current folder)")
    report.add_argument("--csv", action="store_true",
                        help="also write the out-of-fold predictions (<name>-oof-predictions.csv) and SHAP values (<name>-shap.csv) "
                             "next to the HTML, as the page's Export tab")

    d = AblationConfig()
    ablate = subparsers.add_parser("ablate", help="modality ablation of a cohort, stored as the Ablation page stores it",
                                   description="Every subset of the cohort's modalities fitted on the same folds, plus a permutation test of "
                                               "the full model; prints the leave-one-modality-out changes and the modality Shapley values. "
                                               "A partial run of the same settings is resumed; Ctrl-C keeps the fits finished so far.",
                                   epilog="The run is stored under the same digest as the Ablation page's: give the page the same "
                                          "settings (Outcome, Repeats, Folds, Permutations, seed, sites) and it shows the run as 'loaded saved run'.")
    ablate.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    ablate.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    ablate.add_argument("--config", metavar="FILE",
                        help="ablation settings as YAML (or .json) with any of the fields " + _field_list(_ABLATION_OPTIONS)
                             + ", model_params (xgboost settings, e.g. {max_depth: 4}); an option given on the command line overrides the file's value")
    ablate.add_argument("--outcome", choices=list(OUTCOMES), help=f"the outcome the models predict (default {d.outcome})")
    ablate.add_argument("--folds", type=int, metavar="K", help=f"K of the K-fold cross-validation of every subset, 2-20 (default {d.n_splits})")
    ablate.add_argument("--repeats", type=int, metavar="R",
                        help=f"repetitions of the K-fold split, 1-50; more give tighter intervals and take longer (default {d.n_repeats})")
    ablate.add_argument("--seed", type=int, metavar="S", help=f"seed of the folds and the permutations (default {d.seed})")
    ablate.add_argument("--group-by-site", choices=["auto", "never"],
                        help=f"auto: keep each site within one fold when there are at least K sites; never: ignore sites (default {d.group_by_site})")
    ablate.add_argument("--permutations", type=int, metavar="N",
                        help=f"label permutations for the test of the full model against chance, 0-10000; 0 skips it (default {d.n_permutations})")
    ablate.add_argument("--metric", choices=[m for m in METRICS if METRICS[m].chance is not None],
                        help="figure of merit of the printed tables (default: AUC for the responder, R² for the improvement); every one is stored")
    ablate.add_argument("--n-jobs", type=int, default=-1, metavar="N", help="fits run side by side (default -1: one per core); the numbers do not depend on it")

    jobs = subparsers.add_parser("jobs", help="list the background jobs the pages started, cancel one, or print its log",
                                 description="The background jobs of a workspace (core.jobs): what the pages' Train, Run ablation, Run the "
                                             "held-out evaluation and similar buttons started, newest first, with their progress. With logins "
                                             "on, each user's workspace is <root>/users/<id> and their jobs are theirs: give that folder and --owner.")
    jobs.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    jobs.add_argument("--owner", default="local", metavar="ID", help="whose jobs (default local: the owner when logins are off)")
    jobs.add_argument("--cancel", metavar="JOB", help="cancel this job (it stops at its next progress report, as the page's Cancel)")
    jobs.add_argument("--log", metavar="JOB", help="print this job's log")

    make_example, write_example = example_upload_commands()
    export = subparsers.add_parser("export-upload", help="write a cohort's raw data as an upload folder (zip) that the Upload page reads back",
                                   description="participants.tsv (roles, clinical features, improvement_pct and the outcome measures) and, per "
                                               "patient, the FA map (NIfTI), EMG (EDF+ with TMS and voluntary annotations) and hand trajectory "
                                               "(C3D), laid out as the Upload page expects (core.io.export). The Upload page's example folder is "
                                               f"this command on a cohort made by: {make_example}, then {write_example}")
    export.add_argument("out", metavar="ZIP", help="the zip to write")
    export.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    export.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    export.add_argument("--patients", type=int, metavar="N", help="only the first N patients (default: all)")
    export.add_argument("--measures", metavar="LIST", help="comma-separated outcome measures to write, or none (default: every one the cohort holds)")


def _settings(cls, args, options: dict):
    """``cls`` read from ``--config`` (when given), with the options given on the command line on top."""
    given = {field: getattr(args, dest) for field, dest in options.items() if getattr(args, dest) is not None}
    if not args.config:
        return cls.from_dict(given, source="command-line options")
    from_file = cls.from_file(args.config)
    if not given:
        return from_file
    return cls.from_dict({**from_file.to_dict(), **given}, source=f"{Path(args.config).name} with the command-line options")


class _Progress:
    """Progress on stderr: one line rewritten in place on a terminal; in a log file, a line per step
    when ``every_step``, else a line per tenth of the work."""

    def __init__(self, what: str, every_step: bool):
        self.what, self.every_step = what, every_step
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last_tenth = -1
        self.done = self.total = 0

    def __call__(self, done: int, total: int, *label) -> None:
        self.done, self.total = done, total
        line = f"  {self.what} {done} of {total} ({time.perf_counter() - self.start:.0f} s)"
        if self.tty:
            print(f"\r{line}", end="\n" if done == total else "", file=sys.stderr, flush=True)
            return
        tenth = 10 * done // max(total, 1)
        if self.every_step or tenth > self.last_tenth or done == total:
            self.last_tenth = tenth
            print(line, file=sys.stderr, flush=True)


def _resumable(compute, unit: str, argv: list):
    """``compute(progress)``, an evaluation whose finished pieces the workspace keeps; on Ctrl-C, None after
    saying how many it kept and how to resume."""
    progress = _Progress(f"{unit} done:", every_step=False)
    try:
        return compute(progress)
    except KeyboardInterrupt:
        print(f"\nstopped: {progress.done} of {progress.total or '?'} {unit} finished and kept in the workspace. Run the same command again to resume:\n"
              f"  {shlex.join(['python', '-m', 'core', *argv])}", file=sys.stderr)
        return None


def _check_jobs(n_jobs: int) -> None:
    if n_jobs == 0 or n_jobs < -1:
        raise InputError(f"--n-jobs must be a positive number of workers, or -1 for one per core; found {n_jobs}.")


def _train_command(workspace, cohort_name: str, settings) -> str:
    """The ``python -m core train`` line that stores the run of these settings."""
    words = ["python", "-m", "core", "train", "--workspace", str(workspace.path.resolve()), "--cohort", cohort_name,
             "--outcome", settings.outcome, "--folds", str(settings.n_splits), "--repeats", str(settings.n_repeats)]
    defaults = type(settings)()
    for field, dest in _RUN_OPTIONS.items():
        if field not in ("outcome", "n_splits", "n_repeats") and getattr(settings, field) != getattr(defaults, field):
            words += ["--" + dest.replace("_", "-"), str(getattr(settings, field))]
    return shlex.join(words)


def _performance_summary(cohort, result) -> str:
    """The Prediction page's table of the run at threshold 0.5: every figure with its 95% CI, model beside the baselines."""
    from core.evaluation.performance import N_BOOT, binary_ci_tables, regression_ci_tables, score_table
    from core.evaluation.report import ci_table

    scores = score_table(cohort, result)
    tables = binary_ci_tables(scores, 0.5, n_boot=N_BOOT) if result.is_binary else regression_ci_tables(scores, n_boot=N_BOOT)
    heading = (f"Out-of-fold performance with 95% bootstrap intervals over patients ({N_BOOT} resamples"
               + ("; threshold-dependent rows at a predicted probability of 0.50):" if result.is_binary else "):"))
    return heading + "\n" + ci_table(tables).to_string()


def _train(args, argv: list) -> int:
    from core.modelling.validation import CVSettings
    from core.store.workspace import Workspace

    settings = _settings(CVSettings, args, _RUN_OPTIONS)
    _check_jobs(args.n_jobs)
    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    run = settings.run_digest(cohort)
    try:
        stored = workspace.load_cv(run, cohort)
    except InputError as exc:  # unreadable files: train the run again, as the page offers
        print(f"warning: {exc}", file=sys.stderr)
        stored = None
    if stored is not None:
        print(f"run {run} of cohort {cohort.name!r} ({settings.describe()}) is already stored in {workspace.path}: nothing was retrained.")
        result = stored
    else:
        print(f"training run {run} of cohort {cohort.name!r}: {settings.describe()}", file=sys.stderr)
        kept = workspace.cv_progress(run)
        if kept:
            print(f"  resuming: {kept} fold(s) of a stopped run are kept", file=sys.stderr)
        try:
            workspace.train_cv(cohort, settings, progress=_Progress("folds trained and explained:", every_step=True), on_epoch=_print_epoch,
                               tensor_progress=_Progress("raw-data tensors, chunks cached:", every_step=True), n_jobs=args.n_jobs)
        except KeyboardInterrupt:
            print(f"\nstopped: {workspace.cv_progress(run)} finished fold(s) are kept; the same command resumes.", file=sys.stderr)
            return 130
        result = workspace.load_cv(run, cohort)
        print(f"trained and stored run {run} of cohort {cohort.name!r} ({settings.describe()}) in {workspace.path}")
    print(f"validation: {result.scheme}; {len(result.fold_models)} fold models\n")
    print(_performance_summary(cohort, result))
    return 0


def _print_epoch(fold, row) -> None:
    print(f"  repeat {fold.repeat + 1} fold {fold.fold + 1}: epoch {row['epoch']} train loss {row['train_loss']:.4f} "
          f"held-out loss {row['valid_loss']:.4f}", file=sys.stderr, flush=True)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    except OSError as exc:
        raise InputError(f"cannot write the file: {exc.strerror}.", source=str(path)) from exc


def _report(args, argv: list) -> int:
    from core.evaluation.performance import score_table
    from core.evaluation.report import model_report_html, prediction_table
    from core.modelling.validation import CVSettings
    from core.store.workspace import Workspace

    settings = _settings(CVSettings, args, _RUN_OPTIONS)
    if not 0 < args.threshold < 1:
        raise InputError(f"the threshold is a probability strictly between 0 and 1, found {args.threshold:g}.", field="--threshold")
    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    run = settings.run_digest(cohort)
    result = workspace.load_cv(run, cohort)
    if result is None:
        raise InputError(f"no stored run of cohort {cohort.name!r} with these settings ({settings.describe()}; run {run}). "
                         f"Train it first:\n  {_train_command(workspace, cohort.name, settings)}")
    scores = score_table(cohort, result)
    html = model_report_html(cohort, result, run, threshold=round(args.threshold, 2), scores=scores)
    out = Path(args.out) if args.out else Path.cwd() / f"{cohort.name}-{result.outcome}-{run}-model-report.html"
    _write(out, html)
    print(f"model report of run {run} ({settings.describe()}): {out}")
    if args.csv:
        stem = out.stem.removesuffix("-model-report")
        for suffix, table in (("oof-predictions", prediction_table(result, scores)), ("shap", result.explanation.to_frame())):
            path = out.with_name(f"{stem}-{suffix}.csv")
            _write(path, table.to_csv())
            print(f"{suffix.replace('-', ' ')}: {path}")
    return 0


class _StopOnInterrupt:
    """Ctrl-C asks a running ablation to stop after the fits under way; a second Ctrl-C quits at once.

    Installed only in the main thread (the only one that receives signals); elsewhere it does nothing.
    """

    def __init__(self):
        self.requested = threading.Event()
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nstopping after the fits under way, then saving them (Ctrl-C again quits without saving those) ...", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _ablation_tables(result, metric: str) -> str:
    """The headline of a complete ablation run as text: the full model, leave-one-out changes, Shapley values."""
    import pandas as pd

    from core.data.schema import MODALITY_LABELS
    from core.evaluation.metrics import METRICS

    label = METRICS[metric].label
    full = result.subsets(metric).set_index("subset").loc[result.full_label]
    chance = float(result.scores.loc[result.scores["subset"] == result.full_label, f"chance_{metric}"].mean())
    perm = result.permutation_test(metric)
    lines = [f"Full model {label}: {full['mean']:.3f} (95% CI {full['ci_low']:.3f} – {full['ci_high']:.3f}); chance level {chance:.3f}"]
    if perm["n_permutations"]:
        lines.append(f"Permutation test against chance: p = {perm['p_value']:.3f} ({perm['n_permutations']} permutations; "
                     f"the smallest possible p is {1 / (perm['n_permutations'] + 1):.3f})")

    def name(modality: str) -> str:
        return MODALITY_LABELS.get(modality, modality)

    loo = result.design("leave_one_out", metric)
    lines += ["", f"Leaving one modality out: change in {label} against the full model (paired per fold, corrected resampled t-test)",
              pd.DataFrame({"without": loo["modality"].map(name), label: loo["mean"].map("{:.3f}".format), "change": loo["change"].map("{:+.3f}".format),
                            "95% CI": [f"{lo:+.3f} – {hi:+.3f}" for lo, hi in zip(loo["ci_low"], loo["ci_high"])],
                            "p (Holm)": loo["p_holm"].map("{:.3g}".format)}).to_string(index=False),
              loo.attrs["note"]]
    shapley = result.shapley(metric)
    lines += ["", f"Modality Shapley values: share of the full model's {label} above chance ({shapley.attrs['total']:.3f} in all)",
              pd.DataFrame({"modality": shapley.index.map(name), "value": shapley["value"].map("{:.3f}".format), "share": shapley["share"].map("{:.0%}".format),
                            "95% CI": [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(shapley["ci_low"], shapley["ci_high"])],
                            "p (Holm)": shapley["p_holm"].map("{:.3g}".format)}).to_string(index=False)]
    return "\n".join(lines)


def _ablate(args, argv: list) -> int:
    from core.ablation import AblationCancelled, AblationConfig, ablation_digest, run_ablation
    from core.evaluation.metrics import check_metric
    from core.store.workspace import Workspace

    config = _settings(AblationConfig, args, _ABLATION_OPTIONS)
    metric = check_metric(args.metric, config.outcome)
    _check_jobs(args.n_jobs)
    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    digest = ablation_digest(cohort, config)
    saved = workspace.load_ablation(digest)
    what = (f"ablation run {digest} of cohort {cohort.name!r} ({config.outcome}; {config.n_repeats} x {config.n_splits}-fold CV per subset, "
            f"{config.n_permutations} permutations)")
    if saved is not None and saved.is_complete:
        print(f"{what} is already stored in {workspace.path}: nothing was refitted.")
        result = saved
    else:
        resume = saved
        if resume is not None:
            print("resuming {}: {} of {} model fits are saved".format(what, *resume.progress()), file=sys.stderr)
        else:
            print(f"running {what}", file=sys.stderr)
        with _StopOnInterrupt() as stop:
            try:
                result = run_ablation(cohort, config, n_jobs=args.n_jobs, progress=_Progress("model fits done:", every_step=False),
                                      should_stop=stop.requested.is_set, resume=resume)
            except AblationCancelled as exc:
                workspace.save_ablation(cohort, exc.partial)
                done, total = exc.partial.progress()
                print(f"stopped after {done} of {total} model fits; they are saved in {workspace.path}. "
                      f"Run the same command again to resume:\n  {shlex.join(['python', '-m', 'core', *argv])}", file=sys.stderr)
                return 130
        workspace.save_ablation(cohort, result)
        print(f"{what}: done and stored in {workspace.path}")
    print(f"validation: {result.meta.get('scheme', '')}\n")
    print(_ablation_tables(result, metric))
    return 0


def add_outcome_commands(subparsers) -> None:
    """Register ``any-outcome`` (the held-out evaluation) and ``predict-outcome`` (one measure, zero-shot)."""
    evaluate = subparsers.add_parser(
        "any-outcome", help="held-out evaluation of zero-shot and few-shot prediction of the cohort's outcome measures",
        description="Every instrument family of the cohort's described measures is held out in turn, on the shared patient folds: "
                    "its measures are predicted from their descriptions (zero-shot), by the description baselines, from K = 10, 20, 50 "
                    "and 100 labelled patients (meta-matching against xgboost on those patients), and by the supervised and ceiling "
                    "references. Prints signed Pearson r (never |r|) per method, the paired differences over families with bootstrap "
                    "CIs and r by similarity to the nearest seen measure. The result is stored in the workspace, as the Any outcome page stores it.")
    evaluate.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    evaluate.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    evaluate.add_argument("--folds", type=int, default=5, metavar="K", help="patient folds, 2-10 (default 5)")
    evaluate.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the folds and the few-shot draws (default 0)")
    evaluate.add_argument("--csv", metavar="DIR", help="also write every table (per measure, summary, paired, by similarity, splits) as CSV into DIR")
    predict = subparsers.add_parser(
        "predict-outcome", help="zero-shot predictions of one outcome measure for every patient, from its description",
        description="Predicts a measure of the bank (--measure KEY, predicted as if its whole instrument family had never been seen) or "
                    "a measure you describe (--description with --indication and --direction) for every patient of that indication, on the "
                    "standardised scale (SD from the cohort's mean; higher = a higher score). Writes a CSV.")
    predict.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    predict.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    predict.add_argument("--measure", metavar="KEY", help="key of a measure of the outcome bank (assets/outcome_bank.yaml)")
    predict.add_argument("--description", metavar="TEXT", help="a new measure, described as a clinician would")
    predict.add_argument("--indication", choices=["stroke", "parkinsons"], help="whose measure the description is")
    predict.add_argument("--direction", choices=["higher_better", "higher_worse"], help="whether a higher score is better or worse")
    predict.add_argument("--weeks", type=float, default=12.0, help="time point of the described measure, weeks (default 12)")
    predict.add_argument("--out", metavar="FILE", help="CSV to write (default <cohort>-<measure>-zero-shot.csv)")
    transfer = subparsers.add_parser(
        "transfer", help="what skipping the costly scan costs: full, cheap-only and distilled-student AUC by cohort size",
        description="The full model (all modalities, DTI included), the cheap-only model and a student distilled from the DTI teacher's "
                    "nested out-of-fold predictions, on the same folds at N = 100, 200, 500, 1000, 2000 (up to the cohort's size), with paired "
                    "differences against cheap-only; on synthetic cohorts also a large-sample cheap-only limit. Stored in the workspace as the "
                    "Any outcome page's 'Skip the scan' tab stores it.")
    transfer.add_argument("--workspace", default=None, metavar="DIR", help=_WORKSPACE_HELP)
    transfer.add_argument("--cohort", required=True, metavar="NAME", help=_COHORT_HELP)
    transfer.add_argument("--cheap", metavar="LIST", help="comma-separated cheap modalities, e.g. clin,emg (default: every modality but dti)")
    transfer.add_argument("--csv", metavar="FILE", help="also write the curve as CSV")
    transfer.add_argument("--bound", type=int, default=0, metavar="N",
                          help="also the most distillation could add at 200 patients: the student beside students taught by the true "
                               "probabilities (synthetic cohorts), over N subsamples (at least 2)")


def _any_outcome(args, argv: list) -> int:
    import pandas as pd

    from core.evaluation.anyoutcome import METHOD_LABELS, AnyOutcomeSettings
    from core.store.workspace import Workspace

    settings = AnyOutcomeSettings(n_splits=args.folds, seed=args.seed)
    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    stored = workspace.any_outcome_evaluation(cohort, settings, compute=False)
    if stored is None:
        print(f"evaluating {len(cohort.measure_specs())} measures of cohort {cohort.name!r} ({settings.n_splits} folds x each held-out family)", file=sys.stderr)
    evaluation = stored or _resumable(lambda progress: workspace.any_outcome_evaluation(cohort, settings, progress=progress), "folds x held-out families", argv)
    if evaluation is None:
        return 130
    print(("loaded the stored evaluation " if stored is not None else "stored evaluation ") + settings.key(cohort))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nMean signed r over held-out families:\n" + evaluation.summary().drop(columns="label").round(3).to_string(index=False))
        print("\nZero-shot minus each baseline (mean over families, bootstrap 95% CI):\n" + evaluation.paired().round(3).to_string(index=False))
        few = evaluation.paired("meta_matching_stacked", ("xgboost_k",), k=50)
        print("\nFew-shot, K = 50: stacked meta-matching minus xgboost on the same 50 patients:\n" + few.round(3).to_string(index=False))
        print("\nSigned r by similarity of the measure to its nearest seen one:\n" + evaluation.by_similarity().rename(columns=METHOD_LABELS).round(3).to_string())
    print("\n" + evaluation.summary_sentence())
    if args.csv:
        folder = Path(args.csv)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in evaluation.to_csv_tables().items():
            table.to_csv(folder / f"{cohort.name}-{name}.csv", index=False)
        print(f"wrote {len(evaluation.to_csv_tables())} CSV tables to {folder}")
    return 0


def _predict_outcome(args, argv: list) -> int:
    from core.data.outcome_bank import described_outcome, load_outcome_bank
    from core.modelling.anyoutcome import zero_shot_table
    from core.store.workspace import Workspace

    if bool(args.measure) == bool(args.description):
        raise InputError("give either --measure KEY (a measure of the bank) or --description TEXT (a new measure).", field="measure")
    if args.measure:
        bank = {s.key: s for s in load_outcome_bank()}
        if args.measure not in bank:
            raise InputError(f"no measure {args.measure!r} in the outcome bank; available: {', '.join(bank)}.", field="measure")
        spec = bank[args.measure]
    else:
        if not (args.indication and args.direction):
            raise InputError("a described measure needs --indication and --direction.", field="description")
        spec = described_outcome(args.description, args.indication, args.direction, time_point_weeks=args.weeks)
    from core.evaluation.anyoutcome import AnyOutcomeSettings
    from core.modelling.anyoutcome import fit_on_cohort

    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    model = fit_on_cohort(cohort, exclude_families=(spec.family,))
    table = zero_shot_table(cohort, spec, model)
    out = Path(args.out or f"{cohort.name}-{spec.key}-zero-shot.csv")
    table.to_csv(out)
    print(f"wrote zero-shot predictions of {spec.name!r} for {len(table)} {spec.indication} patients to {out}")
    similarity = model.similarities(spec)
    print("nearest seen measures (description similarity): " + ", ".join(f"{k} {v:.2f}" for k, v in similarity.head(3).items()))
    evaluation = workspace.any_outcome_evaluation(cohort, AnyOutcomeSettings(), compute=False)
    if evaluation is None:
        print("no stored held-out evaluation of this cohort: run `python -m core any-outcome` to see how far to trust zero-shot at this similarity.")
    else:
        r = evaluation.reliability(float(similarity.iloc[0]))
        print(f"reliability: held-out measures at similarity {r['similarity_low']:.2f}-{r['similarity_high']:.2f} got zero-shot signed r "
              f"{r['r_min']:.2f} to {r['r_max']:.2f} (mean {r['r_mean']:.2f})")
    return 0


BOUND_COLUMNS = ("auc", "diff_vs_cheap_only", "diff_ci_low", "diff_ci_high", "target_truth_r", "teacher_truth_r")


def _transfer(args, argv: list) -> int:
    from core.evaluation.transfer import TRANSFER_CURVE_SIZES, distillation_bound_sentence, distillation_bound_summary, transfer_sentence
    from core.modelling.transfer import cheap_and_privileged
    from core.store.workspace import Workspace

    workspace = Workspace(args.workspace)
    cohort = workspace.load(args.cohort)
    cheap = [m.strip() for m in args.cheap.split(",") if m.strip()] if args.cheap else [m for m in cohort.modalities if m != "dti"]
    cheap_and_privileged(cohort.features.columns, cheap)  # an unknown modality is refused before any work
    sizes = tuple(n for n in TRANSFER_CURVE_SIZES if n < cohort.n_patients) + (cohort.n_patients,)
    stored = workspace.transfer_curve(cohort, cheap, sizes, compute=False)
    if stored is None:
        print(f"computing the transfer curve of cohort {cohort.name!r} (cheap: {', '.join(cheap)}; N = {', '.join(map(str, sizes))})", file=sys.stderr)
        stored = _resumable(lambda progress: workspace.transfer_curve(cohort, cheap, sizes, progress=progress), "cohort sizes", argv)
        if stored is None:
            return 130
    curve, limit = stored
    print(curve[["n_patients", "model", "auc", "ci_low", "ci_high", "diff_vs_cheap_only", "diff_ci_low", "diff_ci_high", "diff_p"]].round(4).to_string(index=False))
    if limit is not None:
        print(f"cheap-only limit (xgboost on {int(limit['n_reference'].iloc[0]):,} further patients of the same generator): AUC {float(limit['cheap_limit_auc'].iloc[0]):.3f}")
    print(transfer_sentence(curve))
    if args.csv:
        curve.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.bound:
        table = workspace.distillation_bound(cohort, cheap, args.bound, compute=False)
        if table is None:
            print(f"computing the distillation bound over {args.bound} subsamples", file=sys.stderr)
            table = _resumable(lambda progress: workspace.distillation_bound(cohort, cheap, args.bound, progress=progress), "subsamples", argv)
            if table is None:
                return 130
        bound = distillation_bound_summary(table)
        print(f"distillation bound at {int(table['n_patients'].iloc[0])} patients (mean over {args.bound} subsamples; "
              "oracle_taught: the student's method taught by the true probabilities):")
        print(bound[list(BOUND_COLUMNS)].round(4).to_string())
        print(distillation_bound_sentence(bound))
    return 0


def _jobs(args, argv: list) -> int:
    from core.jobs import JobRunner
    from core.store.workspace import Workspace

    runner = JobRunner(Workspace(args.workspace).path)
    if args.log:
        runner.status(args.log, args.owner)  # InputError when it is not this owner's job
        print(runner.log(args.log), end="")
        return 0
    if args.cancel:
        job = runner.cancel(args.cancel, args.owner)
        print(f"job {job.id} ({job.kind}): {'cancel requested' if job.active else job.status}")
        return 0
    listed = runner.list(args.owner)
    if not listed:
        print(f"no jobs of {args.owner!r} in {runner.folder}")
        return 0
    print(f"{'job':32} {'kind':16} {'status':12} {'progress':>9}  started (UTC)        what")
    for job in listed:
        what = job.label if job.active else (job.message or (f"stored under {job.result_key}" if job.result_key else ""))
        print(f"{job.id:32} {job.kind:16} {job.status:12} {f'{job.done}/{job.total}':>9}  {(job.started or job.created)[:19]:20} {what}")
    return 0


def example_upload_commands(workspace: str = "WORKSPACE", out: str = "example.zip") -> tuple[str, str]:
    """The two commands that write the Upload page's example folder (the same bytes)."""
    from core.io.export import EXAMPLE_UPLOAD as e

    return (f"python -m core generate --workspace {workspace} --preset {e['preset']} --name {e['name']} --n-patients {e['n_patients']} --seed {e['seed']}",
            f"python -m core export-upload {out} --workspace {workspace} --cohort {e['name']} --measures {','.join(e['measures'])}")


def _export_upload(args, argv: list) -> int:
    from core.io.export import upload_folder_zip
    from core.store.workspace import Workspace

    cohort = Workspace(args.workspace).load(args.cohort)
    if args.patients is not None and args.patients < 1:
        raise InputError(f"--patients must be at least 1, found {args.patients}.", field="patients")
    ids = list(cohort.patients.index[: args.patients])
    measures = None if args.measures is None else [] if args.measures.strip().lower() == "none" else [m.strip() for m in args.measures.split(",") if m.strip()]
    data = upload_folder_zip(cohort, ids, measures=measures)
    Path(args.out).write_bytes(data)
    print(f"wrote {len(ids)} patients of {cohort.name!r} as an upload folder to {args.out} ({len(data) / 1e6:.1f} MB)")
    return 0


RESEARCH_COMMANDS = {"train": _train, "ablate": _ablate, "report": _report, "any-outcome": _any_outcome, "predict-outcome": _predict_outcome, "transfer": _transfer, "jobs": _jobs, "export-upload": _export_upload}
