"""Held-out evaluation of any-outcome prediction: held-out patients (the shared folds) *and*
held-out instrument families, signed Pearson r and R² with CIs, every baseline on the same splits,
few-shot meta-matching against xgboost on the same K patients, and results by how similar each
unseen measure is to its nearest seen one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from core.config import Settings
from core.errors import InputError
from core.modelling.anyoutcome import AnyOutcomeModel, meta_matching, ridge_coefficients, signed_r, supervised_head
from core.modelling.validation import CohortSplitter
from core.parallel import kept_or_computed

FEW_SHOT_K = (10, 20, 50, 100)
ZERO_SHOT_METHODS = ("zero_shot", "nearest", "similarity_weighted", "attribute_map", "population_mean")
REFERENCE_METHODS = ("supervised", "ceiling")
FEW_SHOT_METHODS = ("meta_matching_basic", "meta_matching_stacked", "xgboost_k")
METHOD_LABELS = {
    "zero_shot": "Zero-shot (synthesized head)",
    "nearest": "Nearest seen measure's head",
    "similarity_weighted": "Similarity-weighted seen heads",
    "attribute_map": "Attribute-to-head map (ESZSL-style)",
    "population_mean": "Population mean",
    "supervised": "Supervised (all training labels)",
    "ceiling": "Ceiling (true values of seen measures)",
    "meta_matching_basic": "Meta-matching, best seen head",
    "meta_matching_stacked": "Meta-matching, stacked seen heads",
    "xgboost_k": "xgboost on the K patients",
}
SIMILARITY_BANDS = ("far", "middle", "near")
SPLIT_LIST_COLUMNS = ("seen_families", "held_out_measures")  # the columns of an evaluation's splits that hold lists


EVALUATION_VERSION = 2  # bump when the same settings would give other numbers


@dataclass(frozen=True)
class AnyOutcomeSettings(Settings):
    """Settings of an any-outcome evaluation, shared by the page and ``python -m core any-outcome``.

    n_splits : K of the patient folds (the shared splitter, grouped by site when there are enough sites).
    seed : seed of the folds and of the K labelled patients drawn for few-shot prediction.
    """

    n_splits: int = 5
    seed: int = 0

    SOURCE: ClassVar[str] = "any-outcome settings"

    def __post_init__(self):
        if not isinstance(self.n_splits, int) or not 2 <= self.n_splits <= 10:
            raise InputError(f"expected 2 to 10 folds, found {self.n_splits!r}.", source=self.SOURCE, field="n_splits")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"expected a seed of 0 or more, found {self.seed!r}.", source=self.SOURCE, field="seed")

    def key(self, cohort) -> str:
        """16 hex digits naming the evaluation of this cohort's measures with these settings."""
        h = hashlib.sha256(f"{cohort.digest}|{self.digest()}|{EVALUATION_VERSION}|{FEW_SHOT_K}".encode())
        measures = list(cohort.measure_specs())
        h.update(pd.util.hash_pandas_object(cohort.outcomes[measures], index=True).to_numpy().tobytes())
        h.update("|".join(s.descriptor_text() for s in cohort.measure_specs().values()).encode())
        return h.hexdigest()[:16]

    def evaluate(self, cohort, progress=None, checkpoint=None) -> AnyOutcomeEvaluation:
        return evaluate_any_outcome(cohort, n_splits=self.n_splits, seed=self.seed, progress=progress, checkpoint=checkpoint)


@dataclass
class AnyOutcomeEvaluation:
    """Result of :func:`evaluate_any_outcome`.

    predictions : long table (measure, patient_id, fold, method, K, prediction, truth), both on the
        standardised scale of the fold's training patients.
    per_outcome : one row per measure x method x K: signed r with its 95% CI, R², patients.
    splits : one row per fold x held-out family: the seen families (for the no-overlap check).
    similarity : per measure, the nearest seen measure and their description similarity, and its band.
    """

    predictions: pd.DataFrame
    per_outcome: pd.DataFrame
    splits: pd.DataFrame
    similarity: pd.DataFrame
    n_splits: int

    def per_family(self, k: int = 0) -> pd.DataFrame:
        """Mean signed r per held-out family (rows) and method (columns), at few-shot size ``k`` (0 = no labels)."""
        table = self.per_outcome[self.per_outcome["K"].isin([0, k])]
        return table.pivot_table(index="family", columns="method", values="r", aggfunc="mean")

    def paired(self, method: str = "zero_shot", baselines=("nearest", "similarity_weighted", "attribute_map", "population_mean"), k: int = 0,
               n_boot: int = 5000, seed: int = 0) -> pd.DataFrame:
        """``method``'s signed r minus each baseline's, averaged over held-out families, with a
        bootstrap 95% CI over families and a one-sided p, (1 + resamples at or below 0) / (1 + ``n_boot``):
        never 0, since 5,000 resamples cannot show a p below 1/5,001."""
        family = self.per_family(k)
        rng = np.random.default_rng(seed)
        rows = []
        for baseline in baselines:
            if baseline not in family or method not in family:
                continue
            diff = (family[method] - family[baseline]).dropna().to_numpy()
            boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
            rows.append({"method": method, "baseline": baseline, "K": k, "families": len(diff), "mean_difference": float(diff.mean()),
                         "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975)), "p": float((1 + (boots <= 0).sum()) / (1 + n_boot))})
        return pd.DataFrame(rows)

    def by_similarity(self) -> pd.DataFrame:
        """Mean signed r per similarity band (rows) and zero-shot method (columns), with the measures per band."""
        table = self.per_outcome[self.per_outcome["K"] == 0].merge(self.similarity[["measure", "band"]], on="measure")
        out = table.pivot_table(index="band", columns="method", values="r", aggfunc="mean").reindex(SIMILARITY_BANDS)
        out["measures"] = self.similarity.groupby("band").size().reindex(SIMILARITY_BANDS)
        return out

    def reliability(self, similarity: float, n_neighbours: int = 6) -> dict:
        """How well zero-shot predicted the held-out measures whose nearest seen measure was about as
        similar as ``similarity``: the ``n_neighbours`` closest in similarity, their range of
        similarity and their signed r (min, mean, max). The honest reliability of a new prediction."""
        close = self.similarity.iloc[(self.similarity["similarity"] - similarity).abs().argsort()[:n_neighbours]]
        scores = self.per_outcome.query("K == 0 and method == 'zero_shot'").set_index("measure")["r"].reindex(close["measure"]).dropna()
        return {"similarity": float(similarity), "measures": list(scores.index), "similarity_low": float(close["similarity"].min()),
                "similarity_high": float(close["similarity"].max()), "r_min": float(scores.min()), "r_mean": float(scores.mean()), "r_max": float(scores.max())}

    def summary(self, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Mean signed r over held-out families for every method (and K), with a bootstrap 95% CI over families."""
        rows = []
        rng = np.random.default_rng(seed)
        for k in sorted(self.per_outcome["K"].unique()):
            family = self.per_family(int(k))
            methods = FEW_SHOT_METHODS if k else ZERO_SHOT_METHODS + REFERENCE_METHODS
            for m in methods:
                if m in family:
                    values = family[m].dropna().to_numpy()
                    boots = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
                    rows.append({"K": int(k), "method": m, "label": METHOD_LABELS[m], "mean_r": float(values.mean()),
                                 "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975)), "families": len(values)})
        return pd.DataFrame(rows)

    def summary_sentence(self) -> str:
        """One honest sentence: does zero-shot beat the description baselines, and by how much."""
        paired = self.paired().set_index("baseline")
        summary = self.summary()
        r = summary[(summary["K"] == 0)].set_index("method")["mean_r"]
        beats = [b for b in ("nearest", "similarity_weighted") if b in paired.index and paired.at[b, "ci_low"] > 0]
        missed = [b for b in ("nearest", "similarity_weighted") if b not in beats]
        verdict = ("beats both the nearest-seen-head and the similarity-weighted baselines (paired CIs above 0)" if not missed else
                   "does not beat the " + " or the ".join({"nearest": "nearest-seen-head", "similarity_weighted": "similarity-weighted"}[b] for b in missed)
                   + " baseline with a paired CI above 0")
        diffs = "; ".join(f"vs {METHOD_LABELS[b].lower()}: {paired.at[b, 'mean_difference']:+.3f} (95% CI {paired.at[b, 'ci_low']:+.3f} to {paired.at[b, 'ci_high']:+.3f})"
                          for b in ("nearest", "similarity_weighted") if b in paired.index)
        return (f"On {self.similarity['family'].nunique()} held-out instrument families, zero-shot signed r averages {r.get('zero_shot', np.nan):.3f} and "
                f"{verdict}: {diffs}. Supervised models reach {r.get('supervised', np.nan):.3f}; the ceiling from the true seen measures is {r.get('ceiling', np.nan):.3f}.")

    @classmethod
    def from_tables(cls, predictions: pd.DataFrame, splits: pd.DataFrame, similarity: pd.DataFrame, specs: dict, n_splits: int) -> AnyOutcomeEvaluation:
        """Rebuild an evaluation from its stored tables (the scores are recomputed, not stored)."""
        return cls(predictions=predictions, per_outcome=_scores(predictions, specs), splits=splits, similarity=similarity, n_splits=n_splits)

    def to_csv_tables(self) -> dict[str, pd.DataFrame]:
        return {"any_outcome_per_measure": self.per_outcome, "any_outcome_summary": self.summary(), "any_outcome_paired": self.paired(),
                "any_outcome_by_similarity": self.by_similarity().reset_index(), "any_outcome_similarity": self.similarity, "any_outcome_splits": self.splits}


def _fisher_ci(r: float, n: int) -> tuple[float, float]:
    if n <= 3 or not np.isfinite(r) or abs(r) >= 1:
        return (np.nan, np.nan)
    z, half = np.arctanh(r), 1.96 / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _xgboost_k(X_k: pd.DataFrame, y_k: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    import xgboost

    model = xgboost.XGBRegressor(n_estimators=100, max_depth=2, learning_rate=0.1, subsample=0.8, n_jobs=1, random_state=seed)
    model.fit(X_k.to_numpy(float), y_k)
    return model.predict(X_test.to_numpy(float))


def evaluate_any_outcome(cohort, *, n_splits: int = 5, seed: int = 0, few_shot_k=FEW_SHOT_K, families=None, model_params: dict | None = None,
                         progress=None, checkpoint=None) -> AnyOutcomeEvaluation:
    """Leave-one-instrument-family-out x K-fold evaluation of zero-shot and few-shot prediction.

    For every fold of the shared splitter and every held-out family, the model is fitted on the
    training patients' values of the measures of all *other* families; the held-out family's
    measures are then predicted for the test patients from their descriptions (zero-shot), by the
    baselines, from K labelled training patients (few-shot), and by the references (a supervised
    head on all training labels; the ceiling: a ridge regression on the true values of the seen
    measures). ``progress(done, total)`` is called after each fold x family; ``checkpoint``
    (:class:`~core.parallel.PieceCheckpoint`) keeps each finished one (piece
    ``fold<f>_family<j>``), so a stopped evaluation resumes with those it finished.
    """
    specs = cohort.measure_specs()
    if len(specs) < 4:
        raise InputError(f"any-outcome evaluation needs described outcome measures (at least 4); this cohort has {len(specs)}.", source=cohort.name, field="outcomes")
    all_families = sorted({s.family for s in specs.values()})
    if len(all_families) < 2:
        raise InputError("holding out an instrument family needs measures of at least 2 families.", source=cohort.name, field="family")
    held_families = all_families if families is None else [f for f in all_families if f in set(families)]
    folds = CohortSplitter(n_splits=n_splits, n_repeats=1, seed=seed).split(cohort.outcomes["responder"].to_numpy(), cohort.groups)
    indication = cohort.patients["indication"].to_numpy()
    predictions, split_rows, similarity_rows = [], [], {}
    total, done = len(folds) * len(held_families), 0
    for fold_number, fold in enumerate(folds):
        for family_number, family in enumerate(held_families):
            piece = kept_or_computed(checkpoint, f"fold{fold_number}_family{family_number}",
                                     lambda: _evaluate_piece(cohort, specs, family, fold, fold_number, indication, few_shot_k, seed, model_params, similarity_rows))
            predictions.append(piece["predictions"])
            split_rows += [{**row, **{c: json.loads(row[c]) for c in SPLIT_LIST_COLUMNS}} for row in piece["split"].to_dict("records")]
            for row in piece["similarity"].to_dict("records"):
                similarity_rows.setdefault(row["measure"], row)
            done += 1
            if progress is not None:
                progress(done, total)
    predictions = pd.concat(predictions, ignore_index=True)
    similarity = pd.DataFrame(list(similarity_rows.values()))
    edges = np.quantile(similarity["similarity"], [1 / 3, 2 / 3]) if len(similarity) >= 3 else [np.inf, np.inf]
    similarity["band"] = np.where(similarity["similarity"] <= edges[0], "far", np.where(similarity["similarity"] <= edges[1], "middle", "near"))
    return AnyOutcomeEvaluation(predictions=predictions, per_outcome=_scores(predictions, specs), splits=pd.DataFrame(split_rows), similarity=similarity, n_splits=n_splits)


def _evaluate_piece(cohort, specs: dict, family: str, fold, fold_number: int, indication, few_shot_k, seed: int, model_params, similarity_rows: dict) -> dict:
    """One fold x held-out family of :func:`evaluate_any_outcome` as tables: the held-out measures'
    ``predictions``, the ``split`` (one row; its list columns as JSON) and the ``similarity`` of those
    held-out measures not in ``similarity_rows`` yet to their nearest seen measure."""
    seen = [s for s in specs.values() if s.family != family]
    unseen = [s for s in specs.values() if s.family == family]
    split = {"fold": fold_number, "held_out_family": family, "seen_families": sorted({s.family for s in seen}), "held_out_measures": [s.key for s in unseen]}
    train = fold.train
    model = AnyOutcomeModel(**(model_params or {})).fit(cohort.features.iloc[train], cohort.outcomes.iloc[train], seen, indication[train])
    records, similarity = [], []
    for spec in unseen:
        records += _predict_measure(model, spec, seen, cohort, fold, fold_number, few_shot_k, seed)
        if spec.key not in similarity_rows:
            nearest = model.similarities(spec)
            same = [k for k in nearest.index if specs[k].indication == spec.indication]
            similarity.append({"measure": spec.key, "family": family, "indication": spec.indication, "nearest_seen": same[0], "similarity": float(nearest[same[0]])})
    return {"predictions": pd.DataFrame(records), "split": pd.DataFrame([{**split, **{c: json.dumps(split[c]) for c in SPLIT_LIST_COLUMNS}}]),
            "similarity": pd.DataFrame(similarity, columns=["measure", "family", "indication", "nearest_seen", "similarity"])}


def _predict_measure(model, spec, seen, cohort, fold, fold_number, few_shot_k, seed) -> list[dict]:
    """Every method's predictions of one held-out measure for the fold's test patients."""
    indication = cohort.patients["indication"].to_numpy()
    y_all = cohort.outcomes[spec.key].to_numpy(float)
    train = fold.train[(indication[fold.train] == spec.indication) & ~np.isnan(y_all[fold.train])]
    test = fold.test[(indication[fold.test] == spec.indication) & ~np.isnan(y_all[fold.test])]
    if len(train) < 10 or len(test) < 3:
        return []
    X = cohort.features
    mean, sd = y_all[train].mean(), y_all[train].std() or 1.0
    truth = (y_all[test] - mean) / sd
    ids = cohort.patients.index[test]
    out = {}
    zero_shot_head = model.synthesized_heads([spec])[:, 0]  # synthesized once: for the test patients and, as a stacking input, the K
    out["zero_shot"] = model.predict_heads(X.iloc[test], zero_shot_head, spec.indication)
    for name, head in model.baseline_heads(spec).items():
        out[name] = model.predict_heads(X.iloc[test], head, spec.indication)
    out["population_mean"] = np.zeros(len(test))
    coef = supervised_head(model, X.iloc[train], y_all[train], spec.indication)
    A_test = model.representation(X.iloc[test]) - model.indication_mean_.get(spec.indication, 0.0)
    out["supervised"] = A_test @ coef
    same = [s.key for s in seen if s.indication == spec.indication]
    if same:
        S = cohort.outcomes[same].to_numpy(float)
        s_mean, s_sd = np.nanmean(S[train], axis=0), np.nanstd(S[train], axis=0) + 1e-9
        S_train, S_test = np.nan_to_num((S[train] - s_mean) / s_sd), np.nan_to_num((S[test] - s_mean) / s_sd)
        out["ceiling"] = S_test @ ridge_coefficients(S_train - S_train.mean(axis=0), (y_all[train] - mean) / sd, 1.0)
    rows = [{"measure": spec.key, "family": spec.family, "patient_id": pid, "fold": fold_number, "method": m, "K": 0, "prediction": p, "truth": t}
            for m, pred in out.items() for pid, p, t in zip(ids, pred, truth)]
    # The description's own zero-shot head joins the seen heads as a stacking input.
    seen_train = model.seen_predictions(X.iloc[train], spec.indication).assign(zero_shot=model.predict_heads(X.iloc[train], zero_shot_head, spec.indication))
    seen_test = model.seen_predictions(X.iloc[test], spec.indication).assign(zero_shot=out["zero_shot"])
    for k in few_shot_k:
        if k >= len(train):  # too few training patients to hold K labelled ones
            continue
        rng = np.random.default_rng([seed, fold_number, k, *spec.key.encode()])
        pick = np.sort(rng.choice(len(train), k, replace=False))
        y_k = (y_all[train][pick] - mean) / sd
        few = {"meta_matching_basic": meta_matching(seen_train.iloc[pick], y_k, seen_test, "basic"),
               "meta_matching_stacked": meta_matching(seen_train.iloc[pick], y_k, seen_test, "stacked"),
               "xgboost_k": _xgboost_k(X.iloc[train[pick]], y_k, X.iloc[test], seed)}
        rows += [{"measure": spec.key, "family": spec.family, "patient_id": pid, "fold": fold_number, "method": m, "K": k, "prediction": p, "truth": t}
                 for m, pred in few.items() for pid, p, t in zip(ids, pred, truth)]
    return rows


def _scores(predictions: pd.DataFrame, specs: dict) -> pd.DataFrame:
    """Signed r (95% CI, Fisher z) and R² on the standardised scale, per measure x method x K, pooled over folds."""
    rows = []
    for (measure, method, k), part in predictions.groupby(["measure", "method", "K"], sort=False):
        truth, prediction = part["truth"].to_numpy(), part["prediction"].to_numpy()
        r = signed_r(truth, prediction)
        low, high = _fisher_ci(r, len(part))
        r2 = 1 - ((truth - prediction) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
        spec = specs[measure]
        rows.append({"measure": measure, "family": spec.family, "indication": spec.indication, "method": method, "K": int(k), "r": r, "r_low": low, "r_high": high,
                     "r2": float(r2), "patients": len(part)})
    return pd.DataFrame(rows)
