"""The per-fold scores of every modality subset, and everything derived from them: designs,
paired tests, modality Shapley values, the permutation test, the Pareto front.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from core.ablation.config import DESIGNS, AblationConfig
from core.data.schema import OUTCOMES
from core.errors import InputError
from core.evaluation.metrics import METRICS, MetricSpec, check_metric
from core.evaluation.stats import corrected_resampled_ttest, holm, shapley_values

SUBSET_SEPARATOR = "+"


def subset_label(modalities: Iterable[str], order: Sequence[str]) -> str:
    """Canonical name of a subset of modalities, e.g. ``"dti+emg"`` (in ``order``'s order)."""
    chosen = set(modalities)
    return SUBSET_SEPARATOR.join(m for m in order if m in chosen)


def subset_modalities(label: str) -> list[str]:
    """The modalities of a subset name: ``"dti+emg"`` -> ``["dti", "emg"]``."""
    return label.split(SUBSET_SEPARATOR)


SCORE_KEYS = ["subset", "repeat", "fold"]
PERMUTATION_KEYS = ["permutation", "fold"]


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
        metric_columns = [n for n, m in METRICS.items() if m.outcome_kind == kind and m.chance is not None]
        need = set(SCORE_KEYS)
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
