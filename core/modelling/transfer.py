"""Costly-to-cheap transfer: a responder model that needs only the cheap modalities, taught by one that also saw DTI.

Generalised distillation (Lopez-Paz et al. 2016, "Unifying distillation and privileged information"):
a *teacher* (xgboost on every modality, DTI included) is fitted on the training patients, and a
*student* (xgboost on the cheap modalities only: clinical, EMG, kinematics) learns from a mix of the
real label and the teacher's probability,

    target = imitation * teacher_probability + (1 - imitation) * label,

with xgboost's logistic loss, which takes any target in [0, 1]. The teacher's probability is a
less noisy picture of each patient's chance of response than the 0/1 label, so the student may
learn the cheap features' signal from fewer patients. New patients need only the cheap features.

Honesty: every training patient's teacher probability comes from an inner cross-validation of the
training patients (each predicted by a teacher that never saw their label), like the stacked
model's fusion log-odds (:mod:`core.modelling.stacking`). Used inside an outer fold, no test
patient's label or DTI reaches the student.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from core.data.schema import MODALITIES, modality_of
from core.errors import InputError
from core.modelling.estimators import ResponseClassifier, check_features, check_outcome
from core.modelling.explanation import Explanation, output_of_margin

__all__ = ["CHEAP_MODALITIES_DEFAULT", "COSTLY_MODALITY", "DistilledStudent", "SoftLabelClassifier", "cheap_and_privileged", "cross_validate_student"]

CHEAP_MODALITIES_DEFAULT = ("clin", "emg", "kin")
COSTLY_MODALITY = "dti"  # the scan clinics ask to skip; by default the only modality the student does without


def _modality_tuple(cheap_modalities) -> tuple:
    """The cheap modalities as a tuple, or an InputError naming the unknown ones."""
    if isinstance(cheap_modalities, str):  # "clin" means ("clin",), not its letters
        cheap_modalities = (cheap_modalities,)
    cheap = tuple(cheap_modalities or ())
    if not cheap:
        raise InputError(f"no cheap modality given; expected some of {list(MODALITIES)}.", field="cheap_modalities")
    unknown = [m for m in cheap if m not in MODALITIES]
    if unknown:
        raise InputError(f"unknown modality name(s) {unknown}; expected some of {list(MODALITIES)}.", field="cheap_modalities")
    return cheap


def cheap_and_privileged(columns, cheap_modalities=CHEAP_MODALITIES_DEFAULT) -> tuple[list, list]:
    """The feature columns of the cheap modalities and the rest (the privileged ones only the teacher reads).

    Raises InputError for an unknown modality name, when no column belongs to a cheap modality, and
    when every column does (then the teacher would know nothing the student does not).
    """
    cheap_modalities = _modality_tuple(cheap_modalities)
    columns = list(columns)
    cheap = [c for c in columns if modality_of(c) in cheap_modalities]
    privileged = [c for c in columns if c not in cheap]
    present = sorted({modality_of(c) for c in columns})
    if not cheap:
        raise InputError(f"no feature of the cheap modalities {list(cheap_modalities)}; found features of {present} only.", field="cheap_modalities")
    if not privileged:
        raise InputError(f"every feature belongs to a cheap modality {list(cheap_modalities)}; the teacher needs a costly modality "
                         f"(e.g. {COSTLY_MODALITY}) that the student does without.", field="cheap_modalities")
    return cheap, privileged


class SoftLabelClassifier(ResponseClassifier):
    """A :class:`ResponseClassifier` trained on targets in [0, 1] (soft labels) instead of 0/1 labels.

    The early-stopping share is drawn and scored on the real 0/1 labels: the number of trees is
    chosen by how well the model predicts outcomes, not how well it copies the teacher. With the
    targets equal to the labels it is exactly a :class:`ResponseClassifier`.
    """

    def fit(self, X: pd.DataFrame, y, soft_target=None) -> SoftLabelClassifier:
        if soft_target is None:
            return super().fit(X, y)
        X = check_features(X)
        y = check_outcome(y, self._outcome)
        target = np.asarray(soft_target, dtype=float)
        if target.shape != y.shape or not np.all((target >= 0) & (target <= 1)):
            raise InputError(f"expected one soft label in [0, 1] per patient ({len(y)}), found shape {target.shape}.", field="soft_target")
        keep, held = self._inner_split(y)
        dtrain = xgb.DMatrix(X.iloc[keep], label=target[keep], missing=np.nan)
        dvalid = xgb.DMatrix(X.iloc[held], label=y[held], missing=np.nan)
        booster = xgb.train(self._xgb_params(), dtrain, num_boost_round=self.n_estimators, evals=[(dvalid, "inner")],
                            early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.array([0, 1])
        return self


class DistilledStudent(ClassifierMixin, BaseEstimator):
    """xgboost on the cheap modalities, trained on a mix of the labels and a DTI-reading teacher's nested probabilities.

    ``fit`` reads every feature (the teacher's); ``predict_proba``, ``predict`` and ``explain`` read
    only the cheap ones (:attr:`feature_names_in_`), so a patient without DTI is predicted the same
    whatever their DTI columns hold. Only the inner teachers are fitted: new patients meet the
    student alone, so no teacher on all the training patients is needed.

    Parameters
    ----------
    cheap_modalities : modalities the student reads (default clinical, EMG, kinematics); the teacher
        also reads every other modality in the table.
    imitation : weight of the teacher's probability in the student's target (0 = labels only, the
        plain cheap-only model; 1 = the teacher only). Default 0.5, fixed rather than tuned: choosing
        it honestly needs a further level of nesting (the inner teachers saw the patients a tuning
        split would test on), at several times the cost. 0.5 weighs the two sources equally.
    inner_splits : folds of the inner cross-validation that gives the training patients' teacher
        probabilities (grouped or stratified by site as :class:`~core.modelling.validation.CohortSplitter` does).
    teacher_params, student_params : :class:`~core.modelling.estimators.ResponseClassifier` parameters
        of the teacher and the student (defaults: its own).
    seed : seed of the inner split and of both models (unless their params set one).

    Attributes
    ----------
    student_ : the fitted cheap-feature xgboost (a ResponseClassifier trained on the soft labels).
    teacher_probability_ : (n_train,) each training patient's response probability from the inner
        teacher that never saw them (temperature 1: the probability itself).
    inner_folds_ : the inner folds (row positions of the training table) that produced them.
    feature_names_in_ : the cheap features, what prediction reads.
    teacher_features_ : every feature the teacher read; ``privileged_features_`` those the student does without.
    classes_ : [0, 1].
    """

    output_space = "log-odds"

    def __init__(self, cheap_modalities=CHEAP_MODALITIES_DEFAULT, imitation: float = 0.5, inner_splits: int = 5, teacher_params: dict | None = None,
                 student_params: dict | None = None, seed: int = 0):
        self.cheap_modalities = cheap_modalities
        self.imitation = imitation
        self.inner_splits = inner_splits
        self.teacher_params = teacher_params
        self.student_params = student_params
        self.seed = seed

    def _check_params(self) -> None:
        _modality_tuple(self.cheap_modalities)
        if isinstance(self.imitation, bool) or not isinstance(self.imitation, (int, float)) or not 0.0 <= float(self.imitation) <= 1.0:
            raise InputError(f"imitation must be a number from 0 to 1, found {self.imitation!r}.", field="imitation")
        if isinstance(self.inner_splits, bool) or not isinstance(self.inner_splits, (int, np.integer)) or self.inner_splits < 2:
            raise InputError(f"inner_splits must be a whole number of at least 2, found {self.inner_splits!r}.", field="inner_splits")

    def _teacher(self) -> ResponseClassifier:
        return ResponseClassifier(**{"seed": self.seed, **dict(self.teacher_params or {})})

    def fit(self, X: pd.DataFrame, y, groups=None) -> DistilledStudent:
        """Fit on the full feature table (DTI included) and the responder labels; returns ``self``.

        ``groups``: each patient's site, so the inner split groups or stratifies by it like the outer one.
        """
        from core.modelling.validation import CohortSplitter

        self._check_params()
        X = check_features(X)
        y = check_outcome(y, "responder")
        if len(y) != len(X):
            raise InputError(f"{len(X)} feature rows but {len(y)} outcomes; expected one outcome per patient.")
        if groups is not None and len(groups) != len(y):
            raise InputError(f"{len(y)} patients but {len(groups)} sites; expected one site per patient.", field="groups")
        cheap, privileged = cheap_and_privileged(X.columns, self.cheap_modalities)
        inner = CohortSplitter(n_splits=self.inner_splits, n_repeats=1, seed=self.seed).split(y, None if groups is None else np.asarray(groups))
        teacher_probability = np.full(len(y), np.nan)
        for fold in inner:  # each training patient gets the probability of a teacher fitted without them
            teacher = self._teacher().fit(X.iloc[fold.train], y[fold.train])
            teacher_probability[fold.test] = teacher.predict_proba(X.iloc[fold.test])[:, 1]
        imitation = float(self.imitation)
        target = imitation * teacher_probability + (1.0 - imitation) * y
        student = SoftLabelClassifier(**{"seed": self.seed, **dict(self.student_params or {})})
        self.student_ = student.fit(X[cheap], y, soft_target=target)
        self.teacher_probability_ = teacher_probability
        self.inner_folds_ = inner
        self.feature_names_in_ = np.array(cheap, dtype=object)
        self.n_features_in_ = len(cheap)
        self.teacher_features_ = np.array(list(X.columns), dtype=object)
        self.privileged_features_ = np.array(privileged, dtype=object)
        self.classes_ = np.array([0, 1])
        return self

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) log-odds of response from the cheap features of ``X`` (other columns are ignored and may be absent)."""
        check_is_fitted(self, "student_")
        return self.student_.predict_margin(X)

    def output_from_margin(self, margin) -> np.ndarray:
        return output_of_margin(margin, self.output_space)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) probabilities of non-response and response."""
        p = self.output_from_margin(self.predict_margin(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) predicted label: 1 where the probability of response is at least 0.5."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def explain(self, X: pd.DataFrame) -> Explanation:
        """Exact TreeSHAP of the student, in log-odds, over the cheap features."""
        check_is_fitted(self, "student_")
        return self.student_.explain(X)

    def shap_interaction_values(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "student_")
        return self.student_.shap_interaction_values(X)


def _fit_student_fold(args):
    X, y, groups, fold, params = args
    model = DistilledStudent(**params).fit(X.iloc[fold.train], y[fold.train], groups=None if groups is None else groups[fold.train])
    explanation = model.explain(X.iloc[fold.test])
    return model, model.predict_margin(X.iloc[fold.test]), explanation.values, explanation.base_values


def cross_validate_student(cohort, cheap_modalities=CHEAP_MODALITIES_DEFAULT, *, splitter=None, params: dict | None = None, n_jobs: int = -1,
                           progress=None):
    """Out-of-fold predictions and SHAP values (cheap features) of :class:`DistilledStudent` on a cohort.

    The same folds as :func:`~core.modelling.validation.cross_validate` for the same splitter (paired
    comparisons); the responder outcome. Each outer training fold fits its own inner teachers, so
    neither the test patients' labels nor their DTI reach the student. ``params``: the other
    :class:`DistilledStudent` parameters. Returns a :class:`~core.modelling.validation.CVResult`
    with ``model`` "student"; predictions and SHAP values are averaged over repeats as there.
    """
    from core.modelling.validation import CohortSplitter, CVResult, training_data
    from core.parallel import parallel_map

    params = {**dict(params or {}), "cheap_modalities": _modality_tuple(cheap_modalities)}
    DistilledStudent(**params)._check_params()  # a bad parameter fails before any fold is fitted
    splitter = splitter or CohortSplitter()
    X, y = training_data(cohort, "responder")
    cheap, _ = cheap_and_privileged(X.columns, params["cheap_modalities"])
    groups = None if cohort.groups is None else np.asarray(cohort.groups)
    folds = splitter.split(y, cohort.groups)
    # validation's _out_of_fold loop, restated: it is private there, and private names are not imported across modules.
    results = parallel_map(_fit_student_fold, [(X, y, groups, fold, params) for fold in folds], n_jobs=n_jobs, prefer="threads", progress=progress)
    margin = np.full((len(y), splitter.n_repeats), np.nan)
    shap_sum, base_sum = np.zeros((len(y), len(cheap))), np.zeros(len(y))
    for fold, (_, fold_margin, values, base) in zip(folds, results):
        margin[fold.test, fold.repeat] = fold_margin
        shap_sum[fold.test] += values
        base_sum[fold.test] += base
    models = [r[0] for r in results]
    by_repeat = pd.DataFrame(models[0].output_from_margin(margin), index=X.index, columns=[f"repeat_{r}" for r in range(splitter.n_repeats)])
    explanation = Explanation(shap_sum / splitter.n_repeats, base_sum / splitter.n_repeats, X[cheap].to_numpy(dtype=float), tuple(cheap),
                              DistilledStudent.output_space, X.index)
    return CVResult(outcome="responder", features=cheap, prediction=by_repeat.mean(axis=1).rename("prediction"), prediction_by_repeat=by_repeat,
                    explanation=explanation, interaction=None, folds=folds, fold_models=models, scheme=splitter.scheme(cohort.groups), params=params,
                    model="student")
