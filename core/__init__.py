"""NeuroPredict's engine: pure Python, never Streamlit. Script it from a notebook or run it from the
shell (``python -m core --help``).

Subpackages, lowest layer first (a layer imports only those below it; ``.importlinter`` checks it):

- ``errors``, ``parallel``, ``anatomy``, ``config``: errors for people, parallel loops (local or
  Dask), the MNI152 reference anatomy, settings read from and written to YAML;
- ``data``: the :class:`~core.data.Cohort` and its schema (modalities, outcomes, feature names);
- ``features``: features from raw recordings (EMG, kinematics, DTI), shared by synth and io;
- ``synth``: synthetic cohorts with a known ground truth; ``io``: readers for real uploads;
- ``modelling``: the response estimators, explanations, cross-validation, what-if, baselines;
- ``evaluation``: metrics with CIs, statistics, ground-truth recovery, the model report;
- ``ablation``: what each modality adds;
- ``store``: the workspace on disk;
- ``jobs``: background jobs (cross-validation, ablation, TMS datasets) in their own processes;
- ``cli``: the command line;
- ``tms``: TMS E-fields, neurons, thresholds and their CNN surrogate (stands beside the others).

Example::

    from core.synth import CohortConfig, generate_cohort
    from core.modelling import cross_validate

    cohort = generate_cohort(CohortConfig(n_patients=500, seed=1))
    result = cross_validate(cohort, "responder")
"""

__all__ = ["errors", "parallel", "anatomy", "config", "data", "features", "synth", "io", "modelling", "evaluation", "ablation", "store", "jobs", "cli", "tms"]
