"""What defines an ablation run (:class:`AblationConfig`), its cache key and its designs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from core.config import Settings
from core.data.schema import OUTCOMES
from core.errors import InputError
from core.modelling.estimators import estimator_params
from core.modelling.validation import CohortSplitter

# Bump when the way scores are computed changes, so cached runs of an older engine are not reused.
ENGINE_VERSION = 1
DESIGNS = {
    "leave_one_out": "Leave one modality out: the full model without each modality, against the full model",
    "single": "Single modality: each modality alone, against the full model",
    "add_one": "Add one in order: modalities added one at a time; each step against the previous one (the first against chance)",
    "all_subsets": "All subsets: every combination of modalities, against the full model",
}


@dataclass(frozen=True)
class AblationConfig(Settings):
    """Everything that defines an ablation run (not the metric: every metric is scored).

    Parameters
    ----------
    outcome : "responder" (binary) or "improvement_pct" (continuous, %).
    n_splits, n_repeats : K-fold cross-validation repeated ``n_repeats`` times; J = K x repeats
        folds per subset. The default 5 x 5 matches the prediction page, so the full model sees
        the same folds there and here. Cost: 15 x J model fits for four modalities (about
        0.1-0.25 s each at 2,000 patients on one core).
    seed : seed of the folds (see :class:`core.modelling.validation.CohortSplitter`) and of the
        permutations.
    group_by_site : "auto" or "never", as in :class:`~core.modelling.validation.CohortSplitter`.
    n_permutations : label permutations for the test of the full model against chance (0 to
        skip). Each permutation refits the full model on one repetition of K-fold, so it costs
        K fits; fits on permuted labels stop early and are about 4x cheaper than real ones. 100
        permutations resolve p-values down to 1/101 = 0.0099.
    model_params : keyword arguments of the outcome's estimator (:func:`core.modelling.estimators.estimator_params`; not
        ``n_jobs``, which the run sets).
    """

    outcome: str = "responder"
    n_splits: int = 5
    n_repeats: int = 5
    seed: int = 0
    group_by_site: str = "auto"
    n_permutations: int = 100
    model_params: dict = field(default_factory=dict)

    SOURCE: ClassVar[str] = "ablation settings"

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
        bad = sorted(set(self.model_params) - set(estimator_params()))
        if bad:
            problems.append(f"model_params may not contain {bad}; allowed: {sorted(estimator_params())}")
        if problems:
            raise InputError("; ".join(problems) + ".", source="ablation settings")

    def splitter(self) -> CohortSplitter:
        """The splitter shared by every subset."""
        return CohortSplitter(n_splits=self.n_splits, n_repeats=self.n_repeats, seed=self.seed, group_by_site=self.group_by_site)


def ablation_digest(cohort, config: AblationConfig | None = None) -> str:
    """Cache key of a run: the cohort's content, its sites (they shape the folds), the config and
    the engine version. The metric is not part of it: every metric is scored in one run."""
    config = config or AblationConfig()
    groups = cohort.groups
    site_hash = "" if groups is None else hashlib.sha256(pd.util.hash_pandas_object(groups, index=True).to_numpy().tobytes()).hexdigest()
    spec = {"cohort": cohort.digest, "sites": site_hash, "config": config.to_dict(), "engine": ENGINE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
