"""The workspace: a folder with a DuckDB catalogue, Parquet tables and model files, where cohorts,
cross-validation runs and ablation runs survive restarts."""

from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace, default_workspace

__all__ = ["Workspace", "default_workspace", "DEFAULT_WORKSPACE_ENV"]
