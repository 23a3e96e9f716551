"""Shared fixtures: small synthetic cohorts, made once per test session."""

import pytest

from core.synth import CohortConfig, generate_cohort


@pytest.fixture(scope="session")
def small_config():
    return CohortConfig(name="small", n_patients=300, seed=7)


@pytest.fixture(scope="session")
def small_cohort(small_config):
    return generate_cohort(small_config, n_jobs=1)


@pytest.fixture(scope="session")
def stroke_cohort():
    """Stroke patients only: the PREP2 check and the lesion-load checks use them."""
    return generate_cohort(CohortConfig(name="stroke", n_patients=1000, seed=11, indications={"stroke": 1.0}), n_jobs=1)
