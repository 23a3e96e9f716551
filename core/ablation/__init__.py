"""Modality ablation: every subset of the modalities fitted on the same folds, paired tests,
modality Shapley values, a permutation test and cost against performance."""

from core.ablation.config import DESIGNS, AblationConfig, ablation_digest
from core.ablation.result import AblationCancelled, AblationResult, subset_label, subset_modalities
from core.ablation.run import run_ablation

__all__ = ["AblationConfig", "ablation_digest", "DESIGNS", "run_ablation", "AblationResult", "AblationCancelled", "subset_label", "subset_modalities"]
