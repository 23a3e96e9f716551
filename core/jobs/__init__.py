"""Background jobs: long work (cohort generation, cross-validation, learning curves, ablation, the any-outcome evaluation and transfer,
TMS datasets) in its own process, outside the page's script thread; persisted in the workspace, per owner, cancellable, resumable from checkpoints."""

from core.jobs.kinds import KINDS, ablation_job, any_outcome_job, bound_job, cv_job, generate_job, learning_curves_job, shipped_tms_dataset_config, tms_dataset_chunks, tms_dataset_job, transfer_job
from core.jobs.runner import ACTIVE, FINISHED, KEEP_DAYS_ENV, MAX_JOBS_ENV, Job, JobCancelled, JobRunner, JobsBusy

__all__ = ["JobRunner", "Job", "JobCancelled", "JobsBusy", "KINDS", "generate_job", "cv_job", "learning_curves_job", "ablation_job", "any_outcome_job", "transfer_job", "bound_job", "tms_dataset_job", "shipped_tms_dataset_config", "tms_dataset_chunks", "ACTIVE", "FINISHED", "MAX_JOBS_ENV", "KEEP_DAYS_ENV"]
