"""Prediction of any outcome measure, including ones never trained on, from its description.

:class:`AnyOutcomeModel` learns one linear head per *seen* outcome measure on a shared patient
representation, and a *regressor synthesizer* that turns an outcome's description (a text embedding
plus its structured descriptor) into head weights, trained across the seen measures with
leave-one-family-out episodes. An unseen measure's head is synthesized from its description alone
(zero-shot); a few labelled patients allow meta-matching instead (few-shot).

Units: every head predicts the measure on the standardised scale (SD units from the training
patients' mean of that indication, signed so that the measure's own direction holds: a higher
prediction means a higher score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from core.data.outcome_bank import OutcomeSpec, descriptor_vectors
from core.data.schema import MODALITIES, modality_of
from core.errors import InputError
from core.features.text import embed_texts
from core.modelling.estimators import feature_values

HEAD_ALPHA = 30.0  # ridge penalty of every head (standardised features, ~1,000 patients)


def patient_basis(X: pd.DataFrame, center: np.ndarray | None = None, scale: np.ndarray | None = None):
    """Standardised features with missing values at the mean, plus one missing-indicator per modality.

    Returns ``(matrix (n, p + 4), center, scale)``; pass the training ``center`` and ``scale`` to
    transform other patients the same way.
    """
    values = feature_values(X, "features")
    if center is None:
        present = ~np.isnan(values)
        count = np.maximum(present.sum(axis=0), 1)
        center = np.where(present, values, 0.0).sum(axis=0) / count
        scale = np.sqrt(np.where(present, (values - center) ** 2, 0.0).sum(axis=0) / count)
        scale[scale < 1e-9] = 1.0  # constant or empty columns
    z = np.nan_to_num((values - center) / scale)
    modality = np.array([modality_of(c) for c in X.columns])
    missing = np.stack([np.isnan(values[:, modality == m]).all(axis=1) if (modality == m).any() else np.ones(len(values), bool) for m in MODALITIES], axis=1)
    return np.hstack([z, missing.astype(float)]), center, scale


def ridge_coefficients(A: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients (no intercept: ``A`` and ``y`` are centred by the caller)."""
    return np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ y)


def signed_r(y: np.ndarray, prediction: np.ndarray) -> float:
    """Pearson r of predictions against the truth, with its sign (a constant prediction scores 0)."""
    y, prediction = np.asarray(y, float), np.asarray(prediction, float)
    if prediction.std() < 1e-12 or y.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(y, prediction)[0, 1])


class AnyOutcomeModel(BaseEstimator):
    """Heads for the seen outcome measures and a synthesizer of heads from descriptions.

    Parameters
    ----------
    rank : size of the shared patient representation (the leading directions of the seen heads).
    head_alpha : ridge penalty of the heads.
    penalties, widths, descriptor_weights : the synthesizer's grid (kernel ridge penalty, RBF width,
        weight of the structured descriptor beside the unit-length text embedding); the leave-one-
        family-out episodes over the seen measures pick one point of it.
    similarity_temperature : softmax temperature of the similarity-weighted baseline.

    Attributes (after ``fit``)
    --------------------------
    specs_ : the seen measures; heads_ : (rank, n_seen) heads in the representation, signed so a
    higher prediction means a higher score; basis_ : (p + 4, rank); episode_scores_ : DataFrame of
    the synthesizer grid with each point's mean signed r over held-out seen families.
    """

    def __init__(self, rank: int = 10, head_alpha: float = HEAD_ALPHA, penalties=(0.03, 0.3, 3.0), widths=(0.5, 1.0, 2.0),
                 descriptor_weights=(0.0, 0.3, 1.0), similarity_temperature: float = 0.05):
        self.rank = rank
        self.head_alpha = head_alpha
        self.penalties = penalties
        self.widths = widths
        self.descriptor_weights = descriptor_weights
        self.similarity_temperature = similarity_temperature

    # --- fitting ---------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, outcomes: pd.DataFrame, specs, indication) -> AnyOutcomeModel:
        """Fit on features ``X`` (patients x features), the seen measures' values ``outcomes``
        (patients x keys of ``specs``; NaN where not recorded) and each patient's ``indication``."""
        specs = list(specs)
        if len(specs) < 3:
            raise InputError(f"zero-shot prediction learns from at least 3 seen outcome measures, found {len(specs)}.", field="outcomes")
        missing = [s.key for s in specs if s.key not in outcomes.columns]
        if missing:
            raise InputError(f"no values for the seen measure(s) {missing}.", field="outcomes")
        indication = np.asarray(indication)
        A, self.center_, self.scale_ = patient_basis(X)
        self.feature_names_ = list(X.columns)
        heads, self.label_mean_, self.label_sd_ = [], {}, {}
        for s in specs:
            y = outcomes[s.key].to_numpy(dtype=float)
            rows = (indication == s.indication) & ~np.isnan(y)
            if rows.sum() < 10:
                raise InputError(f"the seen measure {s.key!r} has {int(rows.sum())} patients with a value; at least 10 are needed.", field=s.key)
            self.label_mean_[s.key], self.label_sd_[s.key] = float(y[rows].mean()), float(y[rows].std() or 1.0)
            a = A[rows] - A[rows].mean(axis=0)
            heads.append(ridge_coefficients(a, (y[rows] - self.label_mean_[s.key]) / self.label_sd_[s.key], self.head_alpha))
        W = np.stack(heads, axis=1)  # (p, m) on the standardised scale of each measure
        self.indication_mean_ = {ind: A[indication == ind].mean(axis=0) for ind in np.unique(indication)}
        rank = min(self.rank, W.shape[1], W.shape[0])
        self.basis_ = np.linalg.svd(W, full_matrices=False)[0][:, :rank]
        self.heads_ = self.basis_.T @ W
        self.specs_ = specs
        self.vocabulary_ = descriptor_vectors(specs)[1]
        text = embed_texts([s.descriptor_text() for s in specs])
        self.text_mean_ = text.mean(axis=0)
        self.seen_vectors_ = self._description_vectors(specs, text)
        self.episode_scores_ = self._episodes(A, outcomes, indication)
        best = self.episode_scores_.iloc[0]
        self.penalty_, self.width_, self.descriptor_weight_ = float(best["penalty"]), float(best["width"]), float(best["descriptor_weight"])
        return self

    def _description_vectors(self, specs, text: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Centred unit text embeddings (n, 256) and descriptor vectors without the direction (n, d)."""
        text = (embed_texts([s.descriptor_text() for s in specs]) if text is None else text) - self.text_mean_
        text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
        descriptor = descriptor_vectors(specs, self.vocabulary_)[0]
        return text, np.delete(descriptor, -2, axis=1)  # the direction is applied as a sign, not matched

    def _canonical(self, rows=None) -> np.ndarray:
        """Seen heads (rank, m) turned so that higher = better for every measure."""
        signs = np.array([s.sign for s in self.specs_])
        heads = self.heads_ * signs
        return heads if rows is None else heads[:, rows]

    def _synthesize(self, seen: np.ndarray, target_specs, penalty: float, width: float, descriptor_weight: float, target_vectors=None) -> np.ndarray:
        """Kernel ridge from description vectors to canonical heads, fitted on the seen measures ``seen``."""
        text_all, desc_all = self.seen_vectors_
        text_new, desc_new = self._description_vectors(target_specs) if target_vectors is None else target_vectors
        D_seen = np.hstack([text_all[seen], descriptor_weight * desc_all[seen]])
        D_new = np.hstack([text_new, descriptor_weight * desc_new])
        kernel = lambda a, b: np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * width**2))  # noqa: E731
        H = self._canonical(seen)
        mean = H.mean(axis=1, keepdims=True)
        coef = np.linalg.solve(kernel(D_seen, D_seen) + penalty * np.eye(len(D_seen)), (H - mean).T)
        canonical = mean + (kernel(D_new, D_seen) @ coef).T
        return canonical * np.array([s.sign for s in target_specs])

    def _episodes(self, A, outcomes, indication) -> pd.DataFrame:
        """Mean signed r on the training patients of each seen family, its head synthesized from the
        other families (leave-one-family-out), for every point of the synthesizer's grid."""
        families = np.array([s.family for s in self.specs_])
        projected = A @ self.basis_
        rows = []
        for penalty in self.penalties:
            for width in self.widths:
                for weight in self.descriptor_weights:
                    family_scores = []
                    for family in np.unique(families):
                        held = np.flatnonzero(families == family)
                        targets = (self.seen_vectors_[0][held], self.seen_vectors_[1][held])
                        heads = self._synthesize(np.flatnonzero(families != family), [self.specs_[i] for i in held], penalty, width, weight, targets)
                        scores = []
                        for j, i in enumerate(held):
                            spec = self.specs_[i]
                            y = outcomes[spec.key].to_numpy(dtype=float)
                            keep = (indication == spec.indication) & ~np.isnan(y)
                            scores.append(signed_r(y[keep], projected[keep] @ heads[:, j]))
                        family_scores.append(np.mean(scores))
                    rows.append({"penalty": penalty, "width": width, "descriptor_weight": weight, "episode_r": float(np.mean(family_scores))})
        return pd.DataFrame(rows).sort_values("episode_r", ascending=False, ignore_index=True)

    # --- heads of new measures --------------------------------------------------------------------
    def synthesized_heads(self, specs) -> np.ndarray:
        """Zero-shot heads (rank, n) of measures described by ``specs``."""
        check_is_fitted(self, "heads_")
        return self._synthesize(np.arange(len(self.specs_)), list(specs), self.penalty_, self.width_, self.descriptor_weight_)

    def similarities(self, spec: OutcomeSpec) -> pd.Series:
        """Cosine similarity of the description to every seen measure's (centred text embeddings), largest first."""
        check_is_fitted(self, "heads_")
        text_all = self.seen_vectors_[0]
        text_new, _ = self._description_vectors([spec])
        return pd.Series(text_all @ text_new[0], index=[s.key for s in self.specs_], name="similarity").sort_values(ascending=False)

    def baseline_heads(self, spec: OutcomeSpec) -> dict[str, np.ndarray]:
        """Heads of the description-based baselines for one measure, each (rank,):

        ``nearest``: the most similar seen measure of the same indication; ``similarity_weighted``:
        a softmax(similarity / temperature) average of those; ``attribute_map``: a closed-form
        ridge map from description vectors to heads (ESZSL-style). All turned to the measure's
        direction, as the synthesizer's are, so the comparison isolates what each learns.
        """
        similarity = self.similarities(spec)
        same = [k for k in similarity.index if self.seen_spec(k).indication == spec.indication] or list(similarity.index)
        canonical = pd.DataFrame(self._canonical(), columns=[s.key for s in self.specs_])
        weights = np.exp((similarity[same] - similarity[same].max()) / self.similarity_temperature)
        text_all, desc_all = self.seen_vectors_
        text_new, desc_new = self._description_vectors([spec])
        D, d = np.hstack([text_all, desc_all]), np.hstack([text_new, desc_new])[0]
        mapping = canonical.to_numpy() @ np.linalg.solve(D @ D.T + 1.0 * np.eye(len(D)), D)  # (rank, dims)
        return {"nearest": spec.sign * canonical[same[0]].to_numpy(), "similarity_weighted": spec.sign * (canonical[same].to_numpy() @ (weights / weights.sum()).to_numpy()),
                "attribute_map": spec.sign * (mapping @ d)}

    def seen_spec(self, key: str) -> OutcomeSpec:
        return next(s for s in self.specs_ if s.key == key)

    # --- prediction -------------------------------------------------------------------------------
    def representation(self, X: pd.DataFrame) -> np.ndarray:
        """Patients in the patient basis the heads read (n, features + 4): standardised features and missing-modality indicators."""
        check_is_fitted(self, "heads_")
        if list(X.columns) != self.feature_names_:
            raise InputError(f"the model was fitted on {len(self.feature_names_)} features; these patients have {len(X.columns)} "
                             f"(missing: {sorted(set(self.feature_names_) - set(X.columns))[:5]}).", field="features")
        return patient_basis(X, self.center_, self.scale_)[0]

    def predict_heads(self, X: pd.DataFrame, heads: np.ndarray, indication: str) -> np.ndarray:
        """Predictions on the standardised scale for patients of ``indication``: (n,) for one head (rank,), (n, k) for heads (rank, k)."""
        A = self.representation(X) - self.indication_mean_.get(indication, 0.0)
        return (A @ self.basis_) @ np.asarray(heads)

    def predict(self, X: pd.DataFrame, spec: OutcomeSpec) -> np.ndarray:
        """Zero-shot predictions (n,) of the measure ``spec`` on the standardised scale."""
        return self.predict_heads(X, self.synthesized_heads([spec])[:, 0], spec.indication)

    def seen_predictions(self, X: pd.DataFrame, indication: str) -> pd.DataFrame:
        """Every seen head of that indication applied to these patients (n x seen keys): meta-matching's inputs."""
        keys = [i for i, s in enumerate(self.specs_) if s.indication == indication]
        values = self.predict_heads(X, self.heads_[:, keys], indication)
        return pd.DataFrame(values, index=X.index, columns=[self.specs_[i].key for i in keys])


# --- few-shot and supervised references -------------------------------------------------------------
STACKING_PENALTIES = (0.1, 1.0, 10.0, 100.0)


def meta_matching(seen_k: pd.DataFrame, y_k: np.ndarray, seen_test: pd.DataFrame, how: str = "stacked", alpha: float | None = None) -> np.ndarray:
    """Few-shot prediction from K labelled patients by meta-matching (He et al. 2022).

    ``seen_k`` and ``seen_test``: the seen heads' predictions for the K labelled patients and for the
    patients to predict (same columns; a zero-shot prediction may be one of them). ``how="basic"``
    keeps the one column whose predictions correlate best with the K labels (turned by the sign of
    that correlation); ``"stacked"`` fits a ridge regression of the K labels on all columns, its
    penalty ``alpha`` chosen among :data:`STACKING_PENALTIES` by leave-one-out error on the K
    patients when None. Returns predictions in the units of ``y_k``.
    """
    y_k = np.asarray(y_k, float)
    if len(y_k) < 3:
        raise InputError(f"few-shot prediction needs at least 3 labelled patients, found {len(y_k)}.", field="K")
    P, T = seen_k.to_numpy(float), seen_test.to_numpy(float)
    if how == "basic":
        r = np.array([signed_r(y_k, P[:, j]) for j in range(P.shape[1])])
        best = int(np.argmax(np.abs(r)))
        slope = np.polyfit(P[:, best], y_k, 1) if P[:, best].std() > 1e-12 else (0.0, y_k.mean())
        return slope[0] * T[:, best] + slope[1]
    if how != "stacked":
        raise InputError(f"meta-matching is 'basic' or 'stacked', found {how!r}.", field="how")
    mean, sd = P.mean(axis=0), P.std(axis=0) + 1e-9
    Z, centred = (P - mean) / sd, y_k - y_k.mean()
    if alpha is None:
        alpha = min(STACKING_PENALTIES, key=lambda a: _ridge_loo_error(Z, centred, a))
    return y_k.mean() + ((T - mean) / sd) @ ridge_coefficients(Z, centred, alpha)


def _ridge_loo_error(Z: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Mean squared leave-one-out error of a ridge fit, in closed form (residual / (1 - leverage))."""
    hat = Z @ np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T)
    return float(np.mean(((y - hat @ y) / np.maximum(1 - np.diag(hat), 1e-9)) ** 2))


def supervised_head(model: AnyOutcomeModel, X: pd.DataFrame, y: np.ndarray, indication: str) -> np.ndarray:
    """A head fitted on labelled patients in the model's patient basis (full rank): the upper bound
    of any head made without labels. Returns the ridge coefficients over the basis's columns."""
    A = model.representation(X) - model.indication_mean_.get(indication, 0.0)
    y = np.asarray(y, float)
    return ridge_coefficients(A - A.mean(axis=0), (y - y.mean()) / (y.std() or 1.0), model.head_alpha)


def fit_on_cohort(cohort, exclude_families=(), **params) -> AnyOutcomeModel:
    """An :class:`AnyOutcomeModel` fitted on every patient and every described measure of the cohort
    except those of ``exclude_families`` (so a bank measure can be predicted as if never seen)."""
    seen = [s for s in cohort.measure_specs().values() if s.family not in set(exclude_families)]
    return AnyOutcomeModel(**params).fit(cohort.features, cohort.outcomes, seen, cohort.patients["indication"].to_numpy())


def zero_shot_table(cohort, spec: OutcomeSpec, model: AnyOutcomeModel | None = None) -> pd.DataFrame:
    """Zero-shot predictions of one measure for every patient of its indication, one row each:
    the prediction (standardised scale), its percentile in the cohort and, when the cohort holds
    the measure, the recorded value. A bank measure is predicted by a model that never saw its family
    (``model``: that model, already fitted with :func:`fit_on_cohort`; fitted here when None)."""
    rows = (cohort.patients["indication"] == spec.indication).to_numpy()
    if not rows.any():
        raise InputError(f"the cohort has no {spec.indication} patients to predict {spec.name!r} for.", source=cohort.name, field="indication")
    model = fit_on_cohort(cohort, exclude_families=(spec.family,)) if model is None else model
    prediction = model.predict(cohort.features[rows], spec)
    table = pd.DataFrame({"zero_shot_sd": prediction, "percentile": pd.Series(prediction).rank(pct=True).to_numpy() * 100},
                         index=cohort.patients.index[rows])
    if spec.key in cohort.outcomes:
        table["recorded"] = cohort.outcomes.loc[rows, spec.key].to_numpy()
    return table
