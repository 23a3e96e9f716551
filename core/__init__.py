"""NeuroPredict engine: cohorts, synthetic data, features and models. Pure Python, no streamlit.

Script it from a notebook::

    from core.synth import CohortConfig, generate_cohort
    cohort = generate_cohort(CohortConfig(n_patients=500, seed=1))

or from the shell: ``python -m core --help``.
"""

__all__ = ["cohort", "synth", "features", "signals", "anatomy", "prep2", "workspace", "errors"]
