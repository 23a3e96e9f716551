"""Honest cross-validation: shared folds, out-of-fold predictions and out-of-fold SHAP values.

Every patient is predicted and explained only by models that never saw them. The splitter is one
reusable object, so the response model, the baselines and modality ablation all see the same folds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from core.config import Settings
from core.data.schema import FUSION_LOGIT, OUTCOMES, outcome_kind
from core.errors import InputError
from core.modelling.estimators import ResponseEstimator, check_features, check_outcome, estimator_for, outcome_strata
from core.modelling.explanation import OUTPUT_SPACES, Explanation


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray  # row positions
    test: np.ndarray


@dataclass(frozen=True)
class CohortSplitter:
    """Repeated stratified K-fold, grouped by site when the cohort has enough sites.

    Parameters
    ----------
    n_splits, n_repeats : K and the number of repetitions (default 5 x 5).
    seed : every repetition reshuffles from ``seed + repeat``.
    group_by_site : "auto" groups folds by site (no site in both training and test) when there
        are at least ``n_splits`` sites, and otherwise stratifies by site x outcome so every fold
        holds every site in proportion; "never" ignores sites.
    """

    n_splits: int = 5
    n_repeats: int = 5
    seed: int = 0
    group_by_site: str = "auto"

    def scheme(self, groups) -> str:
        """Which scheme :meth:`split` uses for these groups, in words for the page."""
        n_groups = 0 if groups is None else len(pd.unique(np.asarray(groups)))
        base = f"{self.n_repeats} x {self.n_splits}-fold cross-validation"
        if self.group_by_site == "auto" and n_groups >= self.n_splits:
            return f"{base}, grouped by site ({n_groups} sites: no site in both training and test)"
        if n_groups > 1 and self.group_by_site == "auto":
            return f"{base}, stratified by site x outcome ({n_groups} sites are too few to group into {self.n_splits} folds)"
        return f"{base}, stratified by outcome"

    def split(self, y, groups=None) -> list[Fold]:
        """Folds for outcome ``y`` (binary, or continuous: stratified on its quintiles)."""
        y = np.asarray(y, dtype=float)
        n = len(y)
        binary = set(np.unique(y)) <= {0.0, 1.0}
        strata = outcome_strata(y, binary)
        smallest = np.bincount(strata).min() if binary else n
        if n < 2 * self.n_splits or smallest < self.n_splits:
            raise InputError(
                f"{self.n_splits}-fold cross-validation needs at least {self.n_splits} patients in each outcome class; "
                f"found {n} patients, {int(smallest)} in the smallest class.",
                field="outcome",
            )
        groups = None if groups is None else np.asarray(groups)
        n_groups = 0 if groups is None else len(pd.unique(groups))
        folds = []
        for r in range(self.n_repeats):
            state = self.seed + r
            if self.group_by_site == "auto" and n_groups >= self.n_splits:
                splits = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=state).split(np.zeros(n), strata, groups)
            else:
                label = strata if n_groups <= 1 or self.group_by_site != "auto" else pd.factorize(pd.Series(strata).astype(str) + "|" + pd.Series(groups).astype(str))[0]
                splits = StratifiedKFold(self.n_splits, shuffle=True, random_state=state).split(np.zeros(n), label)
            folds.extend(Fold(r, k, train, test) for k, (train, test) in enumerate(splits))
        return folds


class FoldCheckpoint:
    """Where a long cross-validation keeps its finished folds (e.g. :meth:`core.store.Workspace.fold_checkpoint`).

    ``load(number)`` returns fold ``number``'s ``(model, margin, shap_values, base_values, interaction)``
    when it was kept, else None; ``keep(number, model, margin, shap_values, base_values, interaction)``
    stores it. Folds are numbered in :meth:`CohortSplitter.split` order.
    """

    def load(self, number: int):
        return None

    def keep(self, number: int, model, margin, values, base, interaction) -> None:
        pass


@dataclass
class CVResult:
    """Out-of-fold results of one model on one cohort.

    Attributes
    ----------
    outcome : "responder" or "improvement_pct".
    features : feature columns used.
    prediction : (n,) out-of-fold prediction, mean over repeats: response probability, or
        predicted improvement (%).
    prediction_by_repeat : (n, n_repeats) the same per repeat (each a full out-of-fold pass).
    explanation : :class:`~core.modelling.explanation.Explanation` of every patient by the models
        that never saw them: SHAP values and base values averaged over repeats, in the model's
        output space; ``values.sum(1) + base_values`` is the mean out-of-fold margin.
    interaction : (n, n_features, n_features) out-of-fold SHAP interaction values of the first
        repeat, or None.
    folds : the folds, shared with baselines and ablation.
    fold_models : fitted estimators per fold, in ``folds`` order.
    scheme : the splitter's description.
    params : the estimator parameters that differ from the defaults.
    model : "xgboost" (engineered features, SHAP per feature) or "fusion" (raw data, Shapley values
        per modality).
    """

    outcome: str
    features: list
    prediction: pd.Series
    prediction_by_repeat: pd.DataFrame
    explanation: Explanation
    interaction: np.ndarray | None
    folds: list
    fold_models: list
    scheme: str
    params: dict = field(default_factory=dict)
    model: str = "xgboost"

    @property
    def is_binary(self) -> bool:
        return OUTCOMES[self.outcome] == "binary"

    def importance(self) -> pd.Series:
        """Mean |SHAP| per feature, largest first."""
        return self.explanation.mean_abs()

    def modality_importance(self) -> pd.Series:
        """Sum over each modality's features of their mean |SHAP|, largest first."""
        return self.explanation.mean_abs(by="modality")

    def models_blind_to(self, position: int) -> list[ResponseEstimator]:
        """The fold models that never saw the patient at this row position (one per repeat)."""
        return [m for f, m in zip(self.folds, self.fold_models) if position in set(f.test.tolist())]


def training_data(cohort, outcome: str, features: list | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The checked feature table and outcome of a cohort: what every model here is trained on.

    Raises InputError for non-numeric or infinite features, a feature missing for every patient,
    and an outcome a model cannot learn (missing values, a single class, a constant).
    """
    outcome_kind(outcome)
    features = list(features or cohort.features.columns)
    X = check_features(cohort.features[features], source=cohort.name)
    all_missing = [c for c in features if X[c].isna().all()]
    if all_missing:
        raise InputError(f"feature(s) {all_missing} are missing for every patient; remove them or upload their data.", source=cohort.name)
    y = check_outcome(cohort.outcomes[outcome].astype(float), outcome)
    return X, y


class _EpochLog:
    """Stands in for ``on_epoch`` where a fold trains on a Dask worker: keeps the rows for the caller."""

    def __init__(self):
        self.rows = []

    def __call__(self, row):
        self.rows.append(row)


def _fit_fold(args):
    """Fit one fold: ``(model, test margin, SHAP values, base values, interactions, epoch rows kept on a worker)``."""
    design, y, fold, make_model, with_interactions, fit_kwargs = args
    model = make_model().fit(_rows(design, fold.train), y[fold.train], **fit_kwargs)
    X_test = _rows(design, fold.test)
    explanation = model.explain(X_test)
    interaction = model.shap_interaction_values(X_test)[:, :-1, :-1] if with_interactions else None
    log = fit_kwargs.get("on_epoch")
    return model, model.predict_margin(X_test), explanation.values, explanation.base_values, interaction, log.rows if isinstance(log, _EpochLog) else []


def _rows(design, rows):
    """Rows (positions) of a model's design: a feature table, or any design with ``take``."""
    return design.iloc[rows] if isinstance(design, pd.DataFrame) else design.take(rows)


def _out_of_fold(cohort, outcome, design, y, *, features, data, make_model, splitter, params, interactions, n_jobs, progress,
                 fit_params=lambda fold: {}, model: str = "xgboost", checkpoint=None, on_epoch=None) -> CVResult:
    """Fit ``make_model()`` on every training fold of ``splitter`` and collect out-of-fold results.

    The one cross-validation loop of every model: the same folds, the same averaging over repeats.
    ``data`` (n, k) are the values the explanation explains, named ``features``. ``fit_params(fold)``:
    the fold's extra ``fit`` arguments (evaluated here; they travel to a Dask worker with the fold).
    ``on_epoch(fold, row)``: passed to ``fit`` as each fold's ``on_epoch(row)``; on a Dask cluster the
    rows are kept on the worker and handed to ``on_epoch`` here, in the caller's thread, when the fold
    is done. ``checkpoint`` (see :class:`FoldCheckpoint`) keeps each finished fold and hands back those
    already done.
    """
    from core.parallel import on_cluster, parallel_map

    folds = splitter.split(y, cohort.groups)
    remote = on_cluster() and n_jobs != 1

    def fit_kwargs(fold):
        kwargs = dict(fit_params(fold))
        if on_epoch is not None:
            kwargs["on_epoch"] = _EpochLog() if remote else (lambda row: on_epoch(fold, row))
        return kwargs

    jobs = [(design, y, f, make_model, interactions and f.repeat == 0, fit_kwargs(f)) for f in folds]
    kept = [None] * len(jobs) if checkpoint is None else [checkpoint.load(number) for number in range(len(jobs))]
    todo = [number for number, done in enumerate(kept) if done is None]
    before = len(jobs) - len(todo)
    if checkpoint is not None and before and progress:
        progress(before, len(jobs))

    def finished(position, result):  # in the caller's thread, as each fold finishes
        number = todo[position]
        for row in result[5]:
            on_epoch(folds[number], row)
        if checkpoint is not None:  # kept at once, so a stopped run resumes
            checkpoint.keep(number, *result[:5])

    # Folds run side by side as n_jobs says (threads, or the cluster); each is kept as soon as it is done.
    fresh = parallel_map(_fit_fold, [jobs[number] for number in todo], n_jobs=n_jobs, prefer="threads",
                         progress=(lambda done, _total: progress(before + done, len(jobs))) if progress else None, on_result=finished)
    for number, result in zip(todo, fresh):
        kept[number] = result[:5]
    results = kept
    n, k = data.shape
    margin = np.full((n, splitter.n_repeats), np.nan)
    shap_sum = np.zeros((n, k))
    base_sum = np.zeros(n)
    interaction = np.zeros((n, k, k)) if interactions else None
    for fold, (_, fold_margin, values, base, inter) in zip(folds, results):
        margin[fold.test, fold.repeat] = fold_margin
        shap_sum[fold.test] += values
        base_sum[fold.test] += base
        if inter is not None:
            interaction[fold.test] = inter
    fold_models = [r[0] for r in results]
    index = cohort.features.index
    by_repeat = pd.DataFrame(fold_models[0].output_from_margin(margin), index=index, columns=[f"repeat_{r}" for r in range(splitter.n_repeats)])
    explanation = Explanation(shap_sum / splitter.n_repeats, base_sum / splitter.n_repeats, data, tuple(features), OUTPUT_SPACES[OUTCOMES[outcome]], index)
    return CVResult(
        outcome=outcome,
        features=list(features),
        prediction=by_repeat.mean(axis=1).rename("prediction"),
        prediction_by_repeat=by_repeat,
        explanation=explanation,
        interaction=interaction,
        folds=folds,
        fold_models=fold_models,
        scheme=splitter.scheme(cohort.groups),
        params=params,
        model=model,
    )


def cross_validate(
    cohort,
    outcome: str = "responder",
    *,
    features: list | None = None,
    splitter: CohortSplitter | None = None,
    params: dict | None = None,
    interactions: bool = True,
    n_jobs: int = -1,
    progress=None,
    engine: str = "auto",
    checkpoint: FoldCheckpoint | None = None,
) -> CVResult:
    """Out-of-fold predictions and SHAP values of the outcome's estimator on a cohort.

    A :class:`~core.modelling.estimators.ResponseClassifier` for the responder label, a
    :class:`~core.modelling.estimators.ResponseRegressor` for the improvement. All preprocessing and
    tuning (early stopping) happen inside each training fold. ``progress(done, total)`` reports
    finished folds.

    ``engine``: "auto" trains each fold with ``xgboost.dask`` across the Dask cluster when
    ``NEUROPREDICT_DASK_SCHEDULER`` is set and the cohort has at least
    :data:`core.modelling.cluster.DASK_XGBOOST_MIN_PATIENTS` patients (folds one after another, the same
    folds; no interaction values), and otherwise fits whole folds side by side (on the cluster when it is
    set); "xgboost.dask" always uses ``xgboost.dask``; "xgboost" never does. ``checkpoint`` keeps each
    finished fold (:class:`FoldCheckpoint`), so a stopped run resumes with the folds it finished.
    """
    from core.modelling.cluster import dask_estimator_for, use_dask_xgboost

    splitter = splitter or CohortSplitter()
    features = list(features or cohort.features.columns)
    X, y = training_data(cohort, outcome, features)
    params = dict(params or {})
    if use_dask_xgboost(len(y), engine):
        return _out_of_fold(cohort, outcome, X, y, features=features, data=X.to_numpy(dtype=float), make_model=lambda: dask_estimator_for(outcome, **params),
                            splitter=splitter, params=params, interactions=False, n_jobs=1, progress=progress, checkpoint=checkpoint)
    return _out_of_fold(cohort, outcome, X, y, features=features, data=X.to_numpy(dtype=float), make_model=lambda: estimator_for(outcome, **params),
                        splitter=splitter, params=params, interactions=interactions, n_jobs=n_jobs, progress=progress, checkpoint=checkpoint)


def cross_validate_fusion(cohort, inputs, *, splitter: CohortSplitter | None = None, params: dict | None = None, progress=None, on_epoch=None,
                          checkpoint: FoldCheckpoint | None = None) -> CVResult:
    """Out-of-fold predictions and modality Shapley values of the deep fusion model on a cohort.

    The same folds as :func:`cross_validate` for the same splitter (paired comparisons); the
    responder outcome. ``inputs``: the cohort's cached :class:`~core.features.tensors.FusionInputs`
    (:meth:`core.store.Workspace.fusion_inputs`). Folds run one after another, each on torch's
    threads. ``progress(done, total)`` reports finished folds; ``on_epoch(fold, row)`` each
    epoch's ``train_loss`` and ``valid_loss``; ``checkpoint`` keeps finished folds (a stopped run resumes).
    """
    from core.modelling.fusion import FUSION_MODALITIES, FusionClassifier, fusion_design

    splitter = splitter or CohortSplitter()
    design = fusion_design(cohort, inputs)
    _, y = training_data(cohort, "responder", list(design.clinical_names) or None)
    params = dict(params or {})
    return _out_of_fold(cohort, "responder", design, y, features=FUSION_MODALITIES, data=design.masks().astype(float),
                        make_model=lambda: FusionClassifier(**params), splitter=splitter, params=params, interactions=False, n_jobs=_deep_jobs(),
                        progress=progress, on_epoch=on_epoch, model="fusion", checkpoint=checkpoint)


def _deep_jobs() -> int:
    """Deep models train one fold at a time on torch's threads here, and side by side on a Dask cluster."""
    from core.parallel import on_cluster

    return -1 if on_cluster() else 1


def cross_validate_stacked(cohort, inputs, *, splitter: CohortSplitter | None = None, params: dict | None = None, fusion_run: CVResult | None = None,
                           progress=None, on_epoch=None, checkpoint: FoldCheckpoint | None = None) -> CVResult:
    """Out-of-fold predictions and SHAP values of the stacked model (xgboost + nested fusion log-odds).

    The same folds as :func:`cross_validate` and :func:`cross_validate_fusion` for the same
    splitter. ``params``: :class:`~core.modelling.stacking.StackedClassifier` parameters
    (``fusion_params``, ``xgboost_params``, ``inner_splits``). ``fusion_run``: a fusion run of the same
    cohort, folds and fusion parameters, whose fold models then serve as each fold's fusion model
    for the test patients (the inner folds are trained either way). ``progress`` counts outer
    folds; ``on_epoch(fold, row)`` sees every fusion epoch.
    """
    from core.modelling.stacking import StackedClassifier, stacked_design

    splitter = splitter or CohortSplitter()
    design = stacked_design(cohort, inputs)
    _, y = training_data(cohort, "responder", list(design.features.columns))
    params = dict(params or {})
    folds = splitter.split(y, cohort.groups)
    if fusion_run is not None:
        if fusion_run.model != "fusion" or _fold_keys(fusion_run.folds) != _fold_keys(folds):
            raise InputError("the fusion run given to the stacked model was not cross-validated on these folds; train it with the same folds and repeats.",
                             field="fusion_run")
        if dict(fusion_run.params) != dict(params.get("fusion_params") or {}):
            raise InputError(f"the fusion run's settings {fusion_run.params} differ from the stacked model's fusion settings {params.get('fusion_params') or {}}.",
                             field="fusion_run")
    number = {(f.repeat, f.fold): i for i, f in enumerate(folds)}

    def fit_params(fold):
        return {} if fusion_run is None else {"fusion_model": fusion_run.fold_models[number[(fold.repeat, fold.fold)]]}

    features = [*design.features.columns, FUSION_LOGIT]
    data = design.features.assign(**{FUSION_LOGIT: np.nan}).to_numpy(dtype=float)
    result = _out_of_fold(cohort, "responder", design, y, features=features, data=data, make_model=lambda: StackedClassifier(**params), splitter=splitter,
                          params=params, interactions=False, n_jobs=_deep_jobs(), progress=progress, fit_params=fit_params, on_epoch=on_epoch,
                          model="stacked", checkpoint=checkpoint)
    # The explanation shows each patient's fusion log-odds as its model saw it (out-of-fold), averaged over repeats.
    logit = np.zeros(len(y))
    for fold, model in zip(result.folds, result.fold_models):
        logit[fold.test] += model.fusion_.predict_margin(design.fusion.take(fold.test))
    result.explanation.data[:, -1] = logit / splitter.n_repeats
    return result


def _fold_keys(folds) -> list:
    return [(f.repeat, f.fold, tuple(f.test.tolist())) for f in folds]


def run_digest(cohort, outcome: str, splitter: CohortSplitter, params: dict, features, model: str = "xgboost", engine: str = "xgboost") -> str:
    """Cache and storage key of a CV run: the cohort's content and everything that defines the run.

    ``engine``: "xgboost.dask" for a run whose folds train with ``xgboost.dask`` (its numbers differ
    slightly from one process's), else "xgboost".
    """
    spec = {"cohort": cohort.digest, "outcome": outcome, "splitter": splitter.__dict__, "params": params, "features": list(features)}
    if model != "xgboost":  # xgboost runs keep the keys they were stored under
        spec["model"] = model
    if engine != "xgboost":
        spec["engine"] = engine
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


_ESTIMATOR_DEFAULTS = ResponseEstimator().get_params()


@dataclass(frozen=True)
class CVSettings(Settings):
    """The settings of a cross-validation run that the Prediction page offers, as one config.

    The page's widgets and ``python -m core train|report`` (options or a YAML/JSON ``--config``)
    both build one, so the same settings give the same :meth:`run_digest`, and a run trained in
    either place opens in the other.

    Parameters
    ----------
    outcome : "responder" (binary) or "improvement_pct" (continuous, %).
    n_splits, n_repeats : K-fold cross-validation, repeated with a fresh shuffle (seed 0 + repeat).
    max_depth, learning_rate, n_estimators, early_stopping_rounds : the xgboost settings of
        :class:`~core.modelling.estimators.ResponseEstimator` (defaults: its own); every other
        estimator parameter keeps its default.

    Every value must lie within :attr:`LIMITS` (the page's widget ranges); whole numbers stay
    ``int`` and the learning rate ``float``, since the run digest sees the JSON of each value.
    """

    outcome: str = "responder"
    n_splits: int = 5
    n_repeats: int = 5
    max_depth: int = _ESTIMATOR_DEFAULTS["max_depth"]
    learning_rate: float = _ESTIMATOR_DEFAULTS["learning_rate"]
    n_estimators: int = _ESTIMATOR_DEFAULTS["n_estimators"]
    early_stopping_rounds: int = _ESTIMATOR_DEFAULTS["early_stopping_rounds"]
    model: str = "xgboost"
    fusion: str = "intermediate"
    max_epochs: int = 40
    inner_splits: int = 3

    SOURCE: ClassVar[str] = "run settings"
    LIMITS: ClassVar[dict] = {
        "n_splits": (2, 10), "n_repeats": (1, 20), "max_depth": (1, 10), "learning_rate": (0.005, 0.5),
        "n_estimators": (10, 5000), "early_stopping_rounds": (5, 500), "max_epochs": (1, 200), "inner_splits": (2, 10),
    }
    MODEL_FIELDS: ClassVar[tuple] = ("max_depth", "learning_rate", "n_estimators", "early_stopping_rounds")
    FUSION_FIELDS: ClassVar[tuple] = ("fusion", "max_epochs")
    MODELS: ClassVar[dict] = {"xgboost": "xgboost on the engineered features", "fusion": "deep fusion of the raw data",
                              "stacked": "stacked: xgboost on the features + the fusion model's nested out-of-fold log-odds"}
    FUSIONS: ClassVar[tuple] = ("intermediate", "late")

    def __post_init__(self):
        problems = []
        if self.outcome not in OUTCOMES:
            problems.append(f"unknown outcome {self.outcome!r}; expected one of {list(OUTCOMES)}")
        if self.model not in self.MODELS:
            problems.append(f"unknown model {self.model!r}; expected one of {list(self.MODELS)}")
        elif self.model != "xgboost" and self.outcome != "responder":
            problems.append(f"the {self.model} model predicts the responder label only, found outcome {self.outcome!r}")
        if self.fusion not in self.FUSIONS:
            problems.append(f"fusion must be one of {list(self.FUSIONS)}, found {self.fusion!r}")
        for name, (low, high) in self.LIMITS.items():
            value = getattr(self, name)
            whole = isinstance(low, int)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
                problems.append(f"{name} must be {'a whole number' if whole else 'a number'} from {low} to {high}, found {value!r}")
                continue
            value = int(value) if whole else float(value)
            if not low <= value <= high:
                problems.append(f"{name} must be from {low} to {high}, found {value}")
            object.__setattr__(self, name, value)  # 4.0 from a YAML file is the page's 4
        if problems:
            raise InputError("; ".join(problems) + ".", source=self.SOURCE)

    def splitter(self) -> CohortSplitter:
        """The splitter of the run (seed 0, grouped by site when the cohort has enough sites)."""
        return CohortSplitter(n_splits=self.n_splits, n_repeats=self.n_repeats)

    def xgboost_params(self) -> dict:
        """The xgboost settings that differ from the estimator's defaults."""
        return {name: getattr(self, name) for name in self.MODEL_FIELDS if getattr(self, name) != _ESTIMATOR_DEFAULTS[name]}

    def fusion_params(self) -> dict:
        """The deep fusion settings that differ from :class:`~core.modelling.fusion.FusionClassifier`'s defaults."""
        from core.modelling.fusion import FusionClassifier

        defaults = FusionClassifier().get_params()
        return {name: getattr(self, name) for name in self.FUSION_FIELDS if getattr(self, name) != defaults[name]}

    def model_params(self) -> dict:
        """The run's ``params``: the chosen model's settings that differ from its defaults."""
        if self.model == "xgboost":
            return self.xgboost_params()
        if self.model == "fusion":
            return self.fusion_params()
        params = {"fusion_params": self.fusion_params(), "xgboost_params": self.xgboost_params()}
        return params if self.inner_splits == 3 else {**params, "inner_splits": self.inner_splits}

    def run_digest(self, cohort) -> str:
        """:func:`run_digest` of these settings on every feature of ``cohort``: where the run is stored. A run that
        :meth:`cross_validate` trains with ``xgboost.dask`` (a large cohort on a configured cluster) has a key of its own."""
        from core.modelling.cluster import use_dask_xgboost

        engine = "xgboost.dask" if self.model == "xgboost" and use_dask_xgboost(cohort.n_patients) else "xgboost"
        return run_digest(cohort, self.outcome, self.splitter(), self.model_params(), list(cohort.features.columns), model=self.model, engine=engine)

    def describe(self) -> str:
        """The settings in words, e.g. "responder, 5 x 5-fold CV, default xgboost settings"."""
        if self.model == "xgboost":
            changed = ", ".join(f"{k} {v}" for k, v in self.model_params().items()) or "default xgboost settings"
        else:
            changed = f"{self.model} model, {self.fusion} fusion, at most {self.max_epochs} epochs" + (f", {self.inner_splits} inner folds" if self.model == "stacked" else "")
            changed += "".join(f", {k} {v}" for k, v in self.xgboost_params().items()) if self.model == "stacked" else ""
        return f"{self.outcome}, {self.n_repeats} x {self.n_splits}-fold CV, {changed}"

    def cross_validate(self, cohort, inputs=None, *, fusion_run: CVResult | None = None, progress=None, on_epoch=None,
                       checkpoint: FoldCheckpoint | None = None, n_jobs: int = -1) -> CVResult:
        """Cross-validate the chosen model on ``cohort`` with these settings: what the page's Train button and
        ``python -m core train`` run. ``inputs``: the cohort's cached raw-data tensors (fusion and stacked)."""
        if self.model == "xgboost":
            return cross_validate(cohort, self.outcome, splitter=self.splitter(), params=self.model_params(), n_jobs=n_jobs, progress=progress, checkpoint=checkpoint)
        if inputs is None:
            raise InputError(f"the {self.model} model needs the cohort's raw-data tensors (Workspace.fusion_inputs).", source=cohort.name)
        if self.model == "fusion":
            return cross_validate_fusion(cohort, inputs, splitter=self.splitter(), params=self.model_params(), progress=progress, on_epoch=on_epoch,
                                         checkpoint=checkpoint)
        return cross_validate_stacked(cohort, inputs, splitter=self.splitter(), params=self.model_params(), fusion_run=fusion_run, progress=progress,
                                      on_epoch=on_epoch, checkpoint=checkpoint)
