"""Modality ablation: what each data source (DTI, EMG, kinematics, clinical) adds to the prediction.

How a run works
---------------
1. Every non-empty subset of the cohort's modalities (2^k - 1 of them; 15 for four modalities) is
   fitted with :class:`core.model.ResponseModel` on the **same** folds: one
   :meth:`core.validation.CohortSplitter.split` serves all subsets, so fold j of every subset has
   exactly the same training and test patients, and differences between subsets are paired.
2. Each (subset, fold) fit is scored on its test fold with every metric of the outcome
   (:data:`METRICS`), together with that fold's chance level. A run therefore does not depend on
   the metric: a page can switch metric without refitting, and the cache key
   (:func:`ablation_digest`) leaves the metric out.
3. The full model is refitted on label-permuted data ``n_permutations`` times (one repetition of
   K-fold each) for a permutation test against chance.

Everything else is derived from those per-fold scores by :class:`AblationResult`: the designs
(leave-one-modality-out, single modality, add-one-in-order, all subsets; they are all rows of the
same subset table, so nothing is fitted twice), paired differences with the corrected resampled
t-test, Holm-adjusted p-values, exact modality Shapley values and a cost/performance Pareto front.

Example
-------
>>> from core.ablation import AblationConfig, run_ablation
>>> result = run_ablation(cohort, AblationConfig(outcome="responder", n_repeats=1))  # doctest: +SKIP
>>> result.design("leave_one_out", metric="auc")      # forest plot: change in AUC with 95% CI
>>> result.subsets("auc")                             # lattice/heatmap of all subsets
>>> result.shapley("auc")                             # waterfall: sums to AUC(full) - 0.5
>>> result.permutation_test("auc")["p_value"]
>>> result.save(folder); AblationResult.load(folder)

Statistics
----------
Fold scores are not independent: folds share most of their training patients, so the plain
paired t-test over folds is far too optimistic. Every interval and p-value here uses the corrected
resampled t-test of Nadeau & Bengio (2003, Machine Learning 52:239): with J = n_splits x n_repeats
per-fold values d_j, ``var = (1/J + n_test/n_train) * s^2(d)`` and ``t = mean(d) / sqrt(var)``
with J - 1 degrees of freedom. It is a heuristic correction, still somewhat liberal or
conservative depending on the data; read p-values near 0.05 as inconclusive.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import InputError
from core.metrics import binary_metrics, regression_metrics
from core.model import OUTCOMES, ResponseModel, check_features, check_outcome
from core.validation import CohortSplitter

__all__ = [
    "METRICS",
    "DESIGNS",
    "MetricSpec",
    "AblationConfig",
    "AblationResult",
    "AblationCancelled",
    "run_ablation",
    "ablation_digest",
    "metrics_for",
    "check_metric",
    "corrected_resampled_ttest",
    "holm",
    "shapley_values",
    "subset_label",
    "subset_modalities",
]

# Bump when the way scores are computed changes, so cached runs of an older engine are not reused.
ENGINE_VERSION = 1
SUBSET_SEPARATOR = "+"


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A figure of merit scored on each test fold.

    Attributes
    ----------
    name : column name in the score tables.
    label : for axis titles.
    outcome_kind : "binary" or "continuous" (see :data:`core.model.OUTCOMES`).
    higher_is_better : False for errors (Brier, MAE).
    chance : what "chance" means for this metric; the per-fold chance value is stored in the
        column ``chance_<name>``.
    """

    name: str
    label: str
    outcome_kind: str
    higher_is_better: bool
    chance: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("auc", "ROC AUC", "binary", True, "0.5 (random ranking)"),
        MetricSpec("pr_auc", "PR AUC (average precision)", "binary", True, "the test fold's responder prevalence"),
        MetricSpec("brier", "Brier score", "binary", False, "Brier score of predicting the training responder rate for everyone"),
        MetricSpec("r2", "R² (improvement)", "continuous", True, "0 (predicting the mean)"),
        MetricSpec("mae", "MAE (improvement, %-points)", "continuous", False, "MAE of predicting the training median for everyone"),
        MetricSpec("rmse", "RMSE (improvement, %-points)", "continuous", False, "RMSE of predicting the training mean for everyone"),
    )
}
DEFAULT_METRIC = {"binary": "auc", "continuous": "r2"}

DESIGNS = {
    "leave_one_out": "Leave one modality out: the full model without each modality, against the full model",
    "single": "Single modality: each modality alone, against the full model",
    "add_one": "Add one in order: modalities added one at a time; each step against the previous one (the first against chance)",
    "all_subsets": "All subsets: every combination of modalities, against the full model",
}


def metrics_for(outcome: str) -> list[str]:
    """Metric names available for an outcome (``"responder"`` or ``"improvement_pct"``), default first."""
    kind = _outcome_kind(outcome)
    names = [n for n, m in METRICS.items() if m.outcome_kind == kind]
    return sorted(names, key=lambda n: n != DEFAULT_METRIC[kind])


def check_metric(metric: str | None, outcome: str) -> str:
    """The metric name to use (the outcome's default for None), or an InputError."""
    options = metrics_for(outcome)
    if metric is None:
        return options[0]
    if metric not in options:
        raise InputError(f"unknown metric {metric!r} for the outcome {outcome!r}; expected one of {options}.", field="metric")
    return metric


def _outcome_kind(outcome: str) -> str:
    if outcome not in OUTCOMES:
        raise InputError(f"unknown outcome {outcome!r}; expected one of {list(OUTCOMES)}.", field="outcome")
    return OUTCOMES[outcome]


def _fold_scores(kind: str, y_train: np.ndarray, y_test: np.ndarray, prediction: np.ndarray) -> dict:
    """Every metric of one test fold plus its chance level (``chance_<metric>``)."""
    if kind == "binary":
        m = binary_metrics(y_test, prediction)
        base_rate = float(np.mean(y_train))
        return {
            "auc": m["auc"], "chance_auc": 0.5,
            "pr_auc": m["pr_auc"], "chance_pr_auc": m["prevalence"],
            "brier": m["brier"], "chance_brier": float(np.mean((y_test - base_rate) ** 2)),
        }
    m = regression_metrics(y_test, prediction)
    return {
        "r2": m["r2"], "chance_r2": 0.0,
        "mae": m["mae"], "chance_mae": float(np.mean(np.abs(y_test - np.median(y_train)))),
        "rmse": m["rmse"], "chance_rmse": float(np.sqrt(np.mean((y_test - np.mean(y_train)) ** 2))),
    }


# --- statistics --------------------------------------------------------------------------------


def corrected_resampled_ttest(values, n_train, n_test, *, level: float = 0.95) -> dict:
    """Mean, confidence interval and two-sided p-value of per-fold values, Nadeau & Bengio (2003).

    Parameters
    ----------
    values : array-like, shape (J,)
        One value per fold (J = n_splits x n_repeats): a paired difference of a metric between two
        models, a metric itself, or a per-fold Shapley value.
    n_train, n_test : float or array-like of shape (J,)
        Training and test patients per fold; arrays are averaged.
    level : two-sided coverage of the interval.

    Returns
    -------
    dict
        ``mean``; ``se`` = sqrt((1/J + n_test/n_train) * s^2) with s^2 the sample variance
        (ddof=1); ``t`` = mean / se; ``df`` = J - 1; ``p`` (two-sided, H0: true mean 0);
        ``ci_low``, ``ci_high`` = mean -/+ t_{(1+level)/2, J-1} * se; ``n_folds`` = J.
        With zero spread (e.g. a model compared with itself) ``se`` is 0, and ``p`` is 1 when the
        mean is 0, else 0.
    """
    d = np.asarray(values, dtype=float)
    d = d[np.isfinite(d)]
    J = d.size
    if J < 2:
        raise InputError(f"the corrected t-test needs at least 2 folds with a value; found {J}.", field="folds")
    ratio = float(np.mean(n_test)) / float(np.mean(n_train))
    mean = float(d.mean())
    se = math.sqrt((1.0 / J + ratio) * float(d.var(ddof=1)))
    df = J - 1
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    if se > 0:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
    else:  # every fold gave the same value
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    return {"mean": mean, "se": se, "t": t, "df": df, "p": p, "ci_low": mean - half, "ci_high": mean + half, "n_folds": J}


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN entries stay NaN and are not counted.

    Controls the chance of any false positive in the family at the chosen level, without
    assuming the tests are independent.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])  # monotone: an adjusted p never falls below an earlier one
        out[i] = min(1.0, running)
    return out


def shapley_values(value: Mapping[frozenset, np.ndarray], players: Sequence[str]) -> np.ndarray:
    """Exact Shapley values of a cooperative game, for many games at once (one per fold).

    Parameters
    ----------
    value : mapping from frozenset of players to array of shape (J,)
        v(S) for every non-empty subset S of ``players`` (J games side by side). v(empty) = 0.
    players : the k players (modalities).

    Returns
    -------
    ndarray, shape (J, k)
        phi[j, i] = sum over S not containing i of |S|! (k-|S|-1)! / k! * (v(S u {i}) - v(S)).
        Efficiency: ``phi.sum(1) == v(all players)`` up to rounding.
    """
    k = len(players)
    any_value = np.asarray(next(iter(value.values())), dtype=float)
    empty = np.zeros_like(any_value)

    def v(subset: frozenset) -> np.ndarray:
        return empty if not subset else np.asarray(value[subset], dtype=float)

    phi = np.zeros(any_value.shape + (k,))
    for i, player in enumerate(players):
        others = [p for p in players if p != player]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for coalition in itertools.combinations(others, size):
                s = frozenset(coalition)
                phi[..., i] += weight * (v(s | {player}) - v(s))
    return phi


def subset_label(modalities: Iterable[str], order: Sequence[str]) -> str:
    """Canonical name of a subset of modalities, e.g. ``"dti+emg"`` (in ``order``'s order)."""
    chosen = set(modalities)
    return SUBSET_SEPARATOR.join(m for m in order if m in chosen)


def subset_modalities(label: str) -> list[str]:
    """The modalities of a subset name: ``"dti+emg"`` -> ``["dti", "emg"]``."""
    return label.split(SUBSET_SEPARATOR)


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationConfig:
    """Everything that defines an ablation run (not the metric: every metric is scored).

    Parameters
    ----------
    outcome : "responder" (binary) or "improvement_pct" (continuous, %).
    n_splits, n_repeats : K-fold cross-validation repeated ``n_repeats`` times; J = K x repeats
        folds per subset. The default 5 x 5 matches the prediction page, so the full model sees
        the same folds there and here. Cost: 15 x J model fits for four modalities (about
        0.1-0.25 s each at 2,000 patients on one core).
    seed : seed of the folds (see :class:`core.validation.CohortSplitter`) and of the
        permutations.
    group_by_site : "auto" or "never", as in :class:`~core.validation.CohortSplitter`.
    n_permutations : label permutations for the test of the full model against chance (0 to
        skip). Each permutation refits the full model on one repetition of K-fold, so it costs
        K fits; fits on permuted labels stop early and are about 4x cheaper than real ones. 100
        permutations resolve p-values down to 1/101 = 0.0099.
    model_params : keyword arguments of :class:`core.model.ResponseModel` (not ``outcome`` or
        ``n_jobs``, which the run sets).
    """

    outcome: str = "responder"
    n_splits: int = 5
    n_repeats: int = 5
    seed: int = 0
    group_by_site: str = "auto"
    n_permutations: int = 100
    model_params: dict = field(default_factory=dict)

    def __post_init__(self):
        problems = []
        if self.outcome not in OUTCOMES:
            problems.append(f"unknown outcome {self.outcome!r}; expected one of {list(OUTCOMES)}")
        if not 2 <= int(self.n_splits) <= 20:
            problems.append(f"n_splits must be 2..20, found {self.n_splits}")
        if not 1 <= int(self.n_repeats) <= 50:
            problems.append(f"n_repeats must be 1..50, found {self.n_repeats}")
        if int(self.n_splits) * int(self.n_repeats) < 3:
            problems.append("the corrected t-test needs at least 3 folds in all (n_splits x n_repeats)")
        if self.group_by_site not in ("auto", "never"):
            problems.append(f"group_by_site must be 'auto' or 'never', found {self.group_by_site!r}")
        if not 0 <= int(self.n_permutations) <= 10_000:
            problems.append(f"n_permutations must be 0..10000, found {self.n_permutations}")
        bad = sorted(set(self.model_params) & {"outcome", "n_jobs"}) + sorted(set(self.model_params) - set(ResponseModel().get_params()))
        if bad:
            problems.append(f"model_params may not contain {bad}; allowed: {sorted(set(ResponseModel().get_params()) - {'outcome', 'n_jobs'})}")
        if problems:
            raise InputError("; ".join(problems) + ".", source="ablation settings")

    def splitter(self) -> CohortSplitter:
        """The splitter shared by every subset."""
        return CohortSplitter(n_splits=self.n_splits, n_repeats=self.n_repeats, seed=self.seed, group_by_site=self.group_by_site)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AblationConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown ablation setting(s) {sorted(unknown)}; expected some of {sorted(known)}.", source="ablation settings")
        return cls(**data)


def ablation_digest(cohort, config: AblationConfig | None = None) -> str:
    """Cache key of a run: the cohort's content, its sites (they shape the folds), the config and
    the engine version. The metric is not part of it: every metric is scored in one run."""
    config = config or AblationConfig()
    groups = cohort.groups
    site_hash = "" if groups is None else hashlib.sha256(pd.util.hash_pandas_object(groups, index=True).to_numpy().tobytes()).hexdigest()
    spec = {"cohort": cohort.digest, "sites": site_hash, "config": config.to_dict(), "engine": ENGINE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- the result -----------------------------------------------------------------------------------

_SCORE_KEYS = ["subset", "repeat", "fold"]
_PERMUTATION_KEYS = ["permutation", "fold"]


class AblationCancelled(Exception):
    """Raised by :func:`run_ablation` when ``should_stop()`` returned True.

    ``partial`` is an incomplete :class:`AblationResult` holding every fit finished so far; pass it
    as ``resume=`` to :func:`run_ablation` (same cohort and config) to finish the run without
    refitting them. It can be saved and loaded like a complete result.
    """

    def __init__(self, partial: AblationResult):
        self.partial = partial
        done, total = partial.progress()
        super().__init__(f"ablation cancelled after {done} of {total} model fits; resume it to finish.")


@dataclass
class AblationResult:
    """Per-fold scores of every modality subset, and everything derived from them.

    Attributes
    ----------
    config : the :class:`AblationConfig` of the run.
    modalities : the k modalities, in the cohort's canonical order.
    scores : DataFrame, one row per (subset, repeat, fold): ``subset`` (e.g. ``"dti+emg"``),
        ``repeat``, ``fold``, ``n_train``, ``n_test`` (patients), ``test_hash`` (short hash of the
        test patients' row positions: equal for every subset in a fold), then every metric of the
        outcome and its ``chance_<metric>``.
    permutation_scores : DataFrame, one row per (permutation, fold) of the full model refitted on
        permuted labels: ``permutation``, ``fold``, ``n_train``, ``n_test`` and the metrics.
    digest : :func:`ablation_digest` of the cohort and config.
    meta : ``n_patients``, ``features`` (per modality), ``scheme`` (folds in words),
        ``cohort_digest``, ``engine``.
    """

    config: AblationConfig
    modalities: list
    scores: pd.DataFrame
    permutation_scores: pd.DataFrame
    digest: str
    meta: dict = field(default_factory=dict)

    # --- completeness --------------------------------------------------------------------------
    @property
    def subset_labels(self) -> list[str]:
        """All 2^k - 1 subsets, by size, then in the canonical order."""
        out = []
        for size in range(1, len(self.modalities) + 1):
            out += [subset_label(c, self.modalities) for c in itertools.combinations(self.modalities, size)]
        return out

    @property
    def full_label(self) -> str:
        return subset_label(self.modalities, self.modalities)

    def progress(self) -> tuple[int, int]:
        """(fits done, fits in a complete run)."""
        c = self.config
        total = len(self.subset_labels) * c.n_splits * c.n_repeats + c.n_permutations * c.n_splits
        return len(self.scores) + len(self.permutation_scores), total

    @property
    def is_complete(self) -> bool:
        done, total = self.progress()
        return done == total

    def _require_complete(self) -> None:
        if not self.is_complete:
            done, total = self.progress()
            raise InputError(f"this ablation run is incomplete ({done} of {total} model fits); resume it before reading results.")

    # --- per-fold tables -----------------------------------------------------------------------
    def _metric(self, metric: str | None) -> MetricSpec:
        return METRICS[check_metric(metric, self.config.outcome)]

    def fold_table(self, metric: str | None = None) -> pd.DataFrame:
        """The metric per fold: index (repeat, fold), one column per subset (J x (2^k - 1)).

        For plotting distributions across folds; paired rows (same patients) share an index.
        """
        self._require_complete()
        spec = self._metric(metric)
        wide = self.scores.pivot(index=["repeat", "fold"], columns="subset", values=spec.name)
        return wide[self.subset_labels]

    def gain_table(self, metric: str | None = None) -> pd.DataFrame:
        """Performance above chance per fold, oriented so that larger is better (J x subsets).

        ``metric - chance`` for AUC, PR AUC, R²; ``chance - metric`` for Brier, MAE, RMSE. This is
        the value v(S) of the Shapley game; v(empty) = 0 (no modality: a chance-level model).
        """
        self._require_complete()
        spec = self._metric(metric)
        sign = 1.0 if spec.higher_is_better else -1.0
        gain = self.scores.assign(_gain=sign * (self.scores[spec.name] - self.scores[f"chance_{spec.name}"]))
        return gain.pivot(index=["repeat", "fold"], columns="subset", values="_gain")[self.subset_labels]

    def _fold_sizes(self) -> tuple[float, float]:
        full = self.scores[self.scores["subset"] == self.full_label]
        return float(full["n_train"].mean()), float(full["n_test"].mean())

    # --- subsets and designs ---------------------------------------------------------------------
    def subsets(self, metric: str | None = None, *, level: float = 0.95) -> pd.DataFrame:
        """One row per subset (2^k - 1), for the lattice/heatmap and the Pareto front.

        Columns: ``subset``, ``n_modalities``, one boolean column per modality, ``mean`` (metric
        over the J folds) with ``ci_low``/``ci_high``, ``gain`` (above chance, larger is better),
        ``change`` = metric(subset) - metric(full) (paired per fold) with ``change_ci_low``,
        ``change_ci_high``, ``t``, ``p`` (corrected resampled t-test) and ``p_holm`` (Holm over the
        2^k - 2 comparisons with the full model; NaN for the full model itself).
        """
        spec = self._metric(metric)
        table = self.fold_table(spec.name)
        gains = self.gain_table(spec.name)
        n_train, n_test = self._fold_sizes()
        full = table[self.full_label].to_numpy()
        rows = []
        for label in self.subset_labels:
            values = table[label].to_numpy()
            own = corrected_resampled_ttest(values, n_train, n_test, level=level)
            row = {"subset": label, "n_modalities": len(subset_modalities(label))}
            row.update({m: m in subset_modalities(label) for m in self.modalities})
            row.update({"mean": own["mean"], "ci_low": own["ci_low"], "ci_high": own["ci_high"], "gain": float(gains[label].mean())})
            if label == self.full_label:
                row.update({"change": 0.0, "change_ci_low": 0.0, "change_ci_high": 0.0, "t": np.nan, "p": np.nan})
            else:
                diff = corrected_resampled_ttest(values - full, n_train, n_test, level=level)
                row.update({"change": diff["mean"], "change_ci_low": diff["ci_low"], "change_ci_high": diff["ci_high"], "t": diff["t"], "p": diff["p"]})
            rows.append(row)
        out = pd.DataFrame(rows)
        out["p_holm"] = holm(out["p"])
        out.attrs.update(metric=spec.name, higher_is_better=spec.higher_is_better, level=level)
        return out

    def design(self, name: str, metric: str | None = None, *, order: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
        """One design as a table for the forest plot: the change in metric with its CI and tests.

        Parameters
        ----------
        name : one of :data:`DESIGNS`:

            - ``"leave_one_out"``: k rows, the full model without ``modality``;
            - ``"single"``: k rows, ``modality`` alone;
            - ``"add_one"``: k rows, cumulative subsets; ``modality`` is the one added at that step;
            - ``"all_subsets"``: 2^k - 2 rows, every subset other than the full model.
        metric : one of :func:`metrics_for` the outcome (default AUC or R²).
        order : ``add_one`` only: the order in which modalities are added. Default: by
            single-modality performance, best first. That order is picked from the same folds, so
            the first steps' gains are a little optimistic; give the order in advance (e.g. by cost)
            for an unbiased test.
        level : two-sided coverage of the intervals.

        Returns
        -------
        DataFrame with columns ``subset``, ``modality`` (dropped, kept or added; empty for
        ``all_subsets``), ``reference`` (what the change is against: ``"full"``, ``"previous step"``
        or ``"chance"``), ``mean`` (metric of the subset), ``change`` (metric minus the
        reference's metric, in metric units, paired per fold), ``ci_low``, ``ci_high``, ``t``,
        ``p`` and ``p_holm`` (Holm within this design's comparisons), ``significant``
        (``p_holm < 1 - level``). ``attrs`` holds ``metric``, ``higher_is_better``, ``note`` (the
        multiple-comparisons note in words) and ``order`` for ``add_one``.
        """
        if name not in DESIGNS:
            raise InputError(f"unknown ablation design {name!r}; expected one of {list(DESIGNS)}.", field="design")
        spec = self._metric(metric)
        table = self.fold_table(spec.name)
        n_train, n_test = self._fold_sizes()
        full = table[self.full_label].to_numpy()
        mods = self.modalities
        steps = []  # (subset, modality, reference name, reference per-fold values)
        if name == "leave_one_out":
            steps = [(subset_label([x for x in mods if x != m], mods), m, "full", full) for m in mods]
        elif name == "single":
            steps = [(m, m, "full", full) for m in mods]
        elif name == "all_subsets":
            steps = [(s, "", "full", full) for s in self.subset_labels if s != self.full_label]
        else:
            order = self._add_one_order(spec, table, order)
            chance = self.scores[self.scores["subset"] == self.full_label].set_index(["repeat", "fold"])[f"chance_{spec.name}"]
            previous, previous_name = chance.reindex(table.index).to_numpy(), "chance"
            for i, m in enumerate(order):
                label = subset_label(order[: i + 1], mods)
                steps.append((label, m, previous_name, previous))
                previous, previous_name = table[label].to_numpy(), "previous step"
        rows = []
        for label, modality, reference, ref_values in steps:
            values = table[label].to_numpy()
            res = corrected_resampled_ttest(values - ref_values, n_train, n_test, level=level)
            rows.append({"subset": label, "modality": modality, "reference": reference, "mean": float(values.mean()),
                         "change": res["mean"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "t": res["t"], "p": res["p"]})
        out = pd.DataFrame(rows)
        out["p_holm"] = holm(out["p"])
        out["significant"] = out["p_holm"] < 1 - level
        out.attrs.update(metric=spec.name, higher_is_better=spec.higher_is_better, level=level,
                         note=self.multiple_comparisons_note(len(out), level=level))
        if name == "add_one":
            out.attrs["order"] = list(order)
        return out

    def _add_one_order(self, spec: MetricSpec, table: pd.DataFrame, order) -> list[str]:
        if order is None:
            single = table[self.modalities].mean()
            return list(single.sort_values(ascending=not spec.higher_is_better, kind="stable").index)
        order = list(order)
        if sorted(order) != sorted(self.modalities):
            raise InputError(f"the add-one order must list each modality once; expected an order of {self.modalities}, found {order}.", field="order")
        return order

    def multiple_comparisons_note(self, n_comparisons: int, *, level: float = 0.95) -> str:
        """Plain-language note on multiple comparisons and on what the p-values mean."""
        alpha = 1 - level
        any_false = 1 - (1 - alpha) ** n_comparisons
        c = self.config
        return (
            f"{n_comparisons} comparisons are tested at once. If no modality mattered, the chance that at least one "
            f"of them looks significant at the {alpha:.0%} level by luck alone is up to {any_false:.0%}; the Holm-adjusted "
            f"p-values (p_holm) keep that chance at {alpha:.0%}, so judge significance by them. Every subset was fitted on the "
            f"same {c.n_repeats} x {c.n_splits} folds, and each comparison is paired per fold. Folds share training patients, "
            f"so a plain t-test over folds would be far too confident; p-values and intervals use the corrected resampled "
            f"t-test (Nadeau & Bengio 2003), which is approximate: read p-values near {alpha:g} as inconclusive, and a "
            f"non-significant drop as 'no evidence of a loss', not as proof that a modality is useless."
        )

    # --- Shapley -----------------------------------------------------------------------------------
    def shapley_by_fold(self, metric: str | None = None) -> pd.DataFrame:
        """Modality Shapley values per fold (J x k); each row sums to that fold's gain of the full model."""
        gains = self.gain_table(metric)
        value = {frozenset(subset_modalities(label)): gains[label].to_numpy() for label in gains.columns}
        phi = shapley_values(value, self.modalities)
        return pd.DataFrame(phi, index=gains.index, columns=self.modalities)

    def shapley(self, metric: str | None = None, *, level: float = 0.95) -> pd.DataFrame:
        """Exact modality Shapley values of the full model's performance above chance.

        The game: v(S) = gain of the model on modality subset S (AUC - 0.5, R², ... see
        :meth:`gain_table`), v(empty) = 0. A modality's Shapley value is its average marginal
        gain over all orders in which modalities could be added, so modalities that carry the same
        information (correlated) share the credit. Computed per fold, then averaged.

        Returns
        -------
        DataFrame indexed by modality, largest value first: ``value`` (metric units above chance;
        the values sum to ``attrs["total"]``, the full model's mean gain, exactly), ``share``
        (value / total), ``ci_low``, ``ci_high``, ``p`` (corrected resampled t-test, H0: value 0),
        ``p_holm`` (over the k modalities), ``rank`` (1 = largest). ``attrs``: ``metric``,
        ``total``, ``level``.
        """
        spec = self._metric(metric)
        by_fold = self.shapley_by_fold(spec.name)
        n_train, n_test = self._fold_sizes()
        rows = {}
        for m in self.modalities:
            res = corrected_resampled_ttest(by_fold[m].to_numpy(), n_train, n_test, level=level)
            rows[m] = {"value": res["mean"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "p": res["p"]}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "modality"
        total = float(self.gain_table(spec.name)[self.full_label].mean())
        out.insert(1, "share", out["value"] / total if total else np.nan)
        out["p_holm"] = holm(out["p"])
        out = out.sort_values("value", ascending=False, kind="stable")
        out["rank"] = np.arange(1, len(out) + 1)
        out.attrs.update(metric=spec.name, total=total, level=level)
        return out

    # --- permutation test --------------------------------------------------------------------------
    def permutation_test(self, metric: str | None = None) -> dict:
        """Label-permutation test of the full model against chance (Ojala & Garriga 2010, JMLR 11:1833, test 1).

        The statistic is the full model's mean metric over the K folds of the first repetition.
        Each permutation shuffles the outcome over all patients, builds folds for the shuffled
        outcome in the same way, and refits the full model: so the permuted statistics are computed
        exactly as the observed one, and the test is exact under H0 "the features carry no
        information about the outcome".

        Returns
        -------
        dict: ``metric``, ``observed``, ``null_mean``, ``null_quantile_95`` (the permuted value
        that 5% exceed, or fall below for errors), ``n_permutations``, ``count`` (permutations at
        least as good as observed), ``p_value`` = (1 + count) / (1 + n_permutations) (NaN without
        permutations), ``null`` (ndarray of the permuted statistics).
        """
        self._require_complete()
        spec = self._metric(metric)
        full = self.scores[(self.scores["subset"] == self.full_label) & (self.scores["repeat"] == 0)]
        observed = float(full[spec.name].mean())
        null = self.permutation_scores.groupby("permutation")[spec.name].mean().to_numpy() if len(self.permutation_scores) else np.array([])
        n = null.size
        count = int(np.sum(null >= observed)) if spec.higher_is_better else int(np.sum(null <= observed))
        q = (np.quantile(null, 0.95) if spec.higher_is_better else np.quantile(null, 0.05)) if n else np.nan
        return {"metric": spec.name, "observed": observed, "null_mean": float(null.mean()) if n else np.nan,
                "null_quantile_95": float(q), "n_permutations": n, "count": count,
                "p_value": (1 + count) / (1 + n) if n else np.nan, "null": null}

    # --- cost / benefit ----------------------------------------------------------------------------
    def pareto_front(self, costs: Mapping[str, float], metric: str | None = None, *, level: float = 0.95) -> pd.DataFrame:
        """Subsets by cost and performance, with the Pareto-optimal ones marked.

        Parameters
        ----------
        costs : cost per modality in any one unit the user chooses (minutes, price), >= 0; every
            modality must have one.

        Returns
        -------
        :meth:`subsets` plus ``cost`` (sum over the subset's modalities) and ``pareto`` (True
        where no other subset costs no more and performs at least as well, one of them strictly),
        sorted by cost.
        """
        missing = [m for m in self.modalities if m not in costs]
        if missing:
            raise InputError(f"no cost given for modality {missing}; enter a cost (0 or more) for each of {self.modalities}.", field="costs")
        try:
            values = {m: float(costs[m]) for m in self.modalities}
        except (TypeError, ValueError) as exc:
            raise InputError(f"modality costs must be numbers; found {dict(costs)}.", field="costs") from exc
        bad = {m: v for m, v in values.items() if not np.isfinite(v) or v < 0}
        if bad:
            raise InputError(f"modality costs must be finite and not negative; found {bad}.", field="costs")
        table = self.subsets(metric, level=level)
        table["cost"] = [sum(values[m] for m in subset_modalities(s)) for s in table["subset"]]
        good = table["gain"].to_numpy()  # larger is better for every metric
        cost = table["cost"].to_numpy()
        dominated = ((cost[None, :] <= cost[:, None]) & (good[None, :] >= good[:, None]) & ((cost[None, :] < cost[:, None]) | (good[None, :] > good[:, None]))).any(axis=1)
        table["pareto"] = ~dominated
        return table.sort_values(["cost", "gain"], ascending=[True, False], kind="stable", ignore_index=True)

    # --- persistence -------------------------------------------------------------------------------
    def to_frames(self) -> tuple[dict[str, pd.DataFrame], dict]:
        """``({"scores": ..., "permutation_scores": ...}, meta)``: the whole result as tables + JSON-able dict."""
        meta = {"config": self.config.to_dict(), "modalities": list(self.modalities), "digest": self.digest, **self.meta}
        return {"scores": self.scores, "permutation_scores": self.permutation_scores}, meta

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], meta: Mapping) -> AblationResult:
        """Inverse of :meth:`to_frames`; an InputError when something is missing or inconsistent."""
        try:
            config = AblationConfig.from_dict(dict(meta["config"]))
            modalities = list(meta["modalities"])
            digest = str(meta["digest"])
            scores, permuted = frames["scores"], frames["permutation_scores"]
        except (KeyError, TypeError) as exc:
            raise InputError(f"the saved ablation run lacks {exc}; run it again.", source="ablation") from exc
        kind = OUTCOMES[config.outcome]
        metric_columns = [n for n, m in METRICS.items() if m.outcome_kind == kind]
        need = set(_SCORE_KEYS)
        if isinstance(scores, pd.DataFrame) and len(scores):  # a run cancelled before its first fit has no score columns yet
            need |= {"n_train", "n_test", *metric_columns, *(f"chance_{m}" for m in metric_columns)}
        if not isinstance(scores, pd.DataFrame) or not isinstance(permuted, pd.DataFrame) or need - set(scores.columns):
            raise InputError(f"the saved ablation scores lack column(s) {sorted(need - set(getattr(scores, 'columns', [])))}; run it again.", source="ablation")
        extra = {k: v for k, v in meta.items() if k not in ("config", "modalities", "digest")}
        result = cls(config, modalities, scores.reset_index(drop=True), permuted.reset_index(drop=True), digest, extra)
        unknown = set(scores["subset"]) - set(result.subset_labels)
        if unknown:
            raise InputError(f"the saved ablation scores name unknown subsets {sorted(unknown)[:3]}; run it again.", source="ablation")
        return result

    def save(self, folder: str | Path) -> None:
        """Write ``scores.parquet``, ``permutation_scores.parquet`` and ``ablation.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        frames, meta = self.to_frames()
        for name, frame in frames.items():
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "ablation.json").write_text(json.dumps(meta, indent=1, default=str))

    @classmethod
    def load(cls, folder: str | Path) -> AblationResult:
        """Read a run written by :meth:`save`; an InputError (never another exception) when it is unreadable."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "ablation.json").read_text())
            frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("scores", "permutation_scores")}
        except (OSError, ValueError) as exc:  # missing file, bad JSON, bad Parquet (pyarrow errors are ValueErrors or OSErrors)
            raise InputError(f"cannot read the saved ablation run ({exc}); run it again.", source=str(folder)) from exc
        if not isinstance(meta, dict):
            raise InputError("the saved ablation settings are not a mapping; run it again.", source=str(folder))
        return cls.from_frames(frames, meta)


# --- running ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FitJob:
    """One model fit: a subset on a fold, or the full model on a fold of permutation ``key``."""

    kind: str  # "subset" or "permutation"
    key: object  # subset label or permutation number
    repeat: int
    fold: int
    columns: list
    train: np.ndarray
    test: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    params: dict


def _fit_and_score(job: _FitJob) -> dict:
    model = ResponseModel(**job.params)
    model.fit(job.X.iloc[job.train, job.columns], job.y[job.train])
    prediction = model.predict(job.X.iloc[job.test, job.columns])
    y_train, y_test = job.y[job.train], job.y[job.test]
    keys = {"subset": job.key, "repeat": job.repeat} if job.kind == "subset" else {"permutation": job.key}
    return {**keys, "fold": job.fold, "n_train": len(job.train), "n_test": len(job.test),
            "test_hash": _positions_hash(job.test), **_fold_scores(_model_kind(job.params), y_train, y_test, prediction)}


def _model_kind(params: dict) -> str:
    return OUTCOMES[params["outcome"]]


def _positions_hash(positions: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(positions, dtype=np.int64)).tobytes()).hexdigest()[:12]


def _check_cohort(cohort, outcome: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    modalities = list(cohort.modalities)
    if len(modalities) < 2:
        found = f"only {modalities[0]!r}" if modalities else "no feature columns"
        raise InputError(
            f"modality ablation compares modalities, so it needs features of at least two (e.g. dti.*, clin.*); this cohort has {found}.",
            source=cohort.name, field="features",
        )
    X = check_features(cohort.features, source=cohort.name)
    all_missing = [c for c in X.columns if X[c].isna().all()]
    if all_missing:
        raise InputError(f"feature(s) {all_missing} are missing for every patient; remove them or upload their data.", source=cohort.name)
    y = check_outcome(cohort.outcomes[outcome].astype(float), outcome)
    return X, y, modalities


def _workers(n_jobs: int) -> int:
    import joblib

    return max(1, joblib.cpu_count() + 1 + n_jobs if n_jobs < 0 else n_jobs)


def run_ablation(
    cohort,
    config: AblationConfig | None = None,
    *,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: AblationResult | None = None,
    chunk_size: int | None = None,
) -> AblationResult:
    """Fit every modality subset on shared folds (and the permuted full model) and score them.

    Parameters
    ----------
    cohort : :class:`core.cohort.Cohort` with features of at least two modalities.
    config : :class:`AblationConfig` (default: responder, 5 x 5 folds, 100 permutations).
    n_jobs : fits run side by side (-1: one per core), through :func:`core.parallel.parallel_map`
        with threads (xgboost releases the GIL while it trains), each fit on one xgboost thread;
        on a Dask cluster when ``NEUROPREDICT_DASK_SCHEDULER`` is set. ``n_jobs=1``: one fit at a
        time, in the caller's thread.
    progress : ``progress(done, total)``, called in the caller's thread after each fit (counts
        include fits restored from ``resume``).
    should_stop : checked between chunks of about ``chunk_size`` fits; when it returns True the
        run stops and raises :class:`AblationCancelled` holding the partial result.
    resume : a partial result (from :class:`AblationCancelled` or a saved one) of the same cohort
        and config; its fits are kept and only the missing ones are run.
    chunk_size : fits per chunk (default 8 per worker: a stop takes effect within about 8 fits'
        time, 1-2 s at 2,000 patients; on a Dask cluster at least a tenth of all fits).

    Returns
    -------
    AblationResult, complete.

    Raises
    ------
    InputError
        Fewer than two modalities, unusable features or outcome, too few patients for the folds,
        or a ``resume`` from another cohort or config.
    AblationCancelled
        ``should_stop()`` returned True; ``.partial`` holds the work done.
    """
    from core.parallel import DASK_ENV, parallel_map

    config = config or AblationConfig()
    X, y, modalities = _check_cohort(cohort, config.outcome)
    digest = ablation_digest(cohort, config)
    groups = cohort.groups
    folds = config.splitter().split(y, groups)  # one split for every subset: paired comparisons

    workers = _workers(n_jobs)
    # One xgboost thread per fit, always. These models are small (hundreds of trees of depth 3 on a
    # few thousand patients), so a second OpenMP thread saves little (about 15% on an idle 2-core
    # machine), and when the cores are busy (other fits, other users) OpenMP's spinning threads make a
    # fit up to 10x slower. Parallelism comes from running fits side by side instead.
    params = {**config.model_params, "outcome": config.outcome, "n_jobs": 1}
    columns = {m: [X.columns.get_loc(c) for c in cohort.features_of(m)] for m in modalities}

    jobs = []
    for size in range(len(modalities), 0, -1):  # largest subsets first: the slowest fits start early
        for combo in itertools.combinations(modalities, size):
            label = subset_label(combo, modalities)
            cols = sorted(c for m in combo for c in columns[m])
            jobs += [_FitJob("subset", label, f.repeat, f.fold, cols, f.train, f.test, X, y, params) for f in folds]
    all_columns = list(range(X.shape[1]))
    one_repeat = CohortSplitter(config.n_splits, 1, config.seed, config.group_by_site)
    for p in range(config.n_permutations):
        y_permuted = np.random.default_rng([config.seed, 104_729, p]).permutation(y)
        for f in one_repeat.split(y_permuted, groups):  # folds built for the shuffled labels, as for the real ones
            jobs.append(_FitJob("permutation", p, 0, f.fold, all_columns, f.train, f.test, X, y_permuted, params))

    meta = {"n_patients": int(len(y)), "features": {m: cohort.features_of(m) for m in modalities},
            "scheme": config.splitter().scheme(groups), "cohort_digest": cohort.digest, "engine": ENGINE_VERSION}
    score_rows, permutation_rows = [], []
    if resume is not None:
        if resume.digest != digest:
            raise InputError("the run to resume belongs to another cohort or other settings; start a new run.", field="resume")
        score_rows = resume.scores.to_dict("records")
        permutation_rows = resume.permutation_scores.to_dict("records")
        done_keys = {("subset", r["subset"], int(r["repeat"]), int(r["fold"])) for r in score_rows}
        done_keys |= {("permutation", int(r["permutation"]), 0, int(r["fold"])) for r in permutation_rows}
        jobs = [j for j in jobs if (j.kind, j.key, j.repeat, j.fold) not in done_keys]

    def result() -> AblationResult:
        scores = pd.DataFrame(score_rows, columns=None if score_rows else _SCORE_KEYS)
        permuted = pd.DataFrame(permutation_rows, columns=None if permutation_rows else _PERMUTATION_KEYS)
        return AblationResult(config, modalities, scores.sort_values(_SCORE_KEYS, ignore_index=True),
                              permuted.sort_values(_PERMUTATION_KEYS, ignore_index=True) if len(permuted) else permuted, digest, meta)

    total = len(score_rows) + len(permutation_rows) + len(jobs)
    done = total - len(jobs)
    if not chunk_size:
        # Every chunk ends with a barrier (the last fit runs while other workers idle), and on Dask
        # each chunk reconnects to the scheduler: so chunks are as large as a prompt stop allows.
        chunk_size = 8 * workers if not os.environ.get(DASK_ENV) else max(8 * workers, math.ceil(len(jobs) / 10))
    for start in range(0, len(jobs), chunk_size):
        if should_stop is not None and should_stop():
            raise AblationCancelled(result())
        chunk = jobs[start : start + chunk_size]
        offset = done
        report = (lambda i, _n, offset=offset: progress(offset + i, total)) if progress else None
        for row in parallel_map(_fit_and_score, chunk, n_jobs=workers, prefer="threads", progress=report):
            (score_rows if "subset" in row else permutation_rows).append(row)
        done += len(chunk)
    return result()
