"""Synthetic multimodal cohorts with a known ground truth: latent factors, raw FA maps, EMG and
reaching made from them, features computed from the raw data, and a documented planted outcome."""

from core.synth.config import GENERATOR_VERSION, INDICATIONS, CohortConfig, presets
from core.synth.generator import SyntheticRawSource, generate_cohort
from core.synth.outcome import CAUSES, FEATURE_CAUSES, OUTCOME_TERMS, OutcomeTerm, outcome_formula

__all__ = ["CohortConfig", "presets", "INDICATIONS", "GENERATOR_VERSION", "generate_cohort", "SyntheticRawSource", "OUTCOME_TERMS", "OutcomeTerm", "CAUSES", "FEATURE_CAUSES", "outcome_formula"]
