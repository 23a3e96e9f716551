"""The workspace: a folder with a DuckDB catalogue, Parquet tables and model files, where cohorts,
cross-validation runs and ablation runs survive restarts."""

__all__ = ["Workspace", "default_workspace", "DEFAULT_WORKSPACE_ENV"]


def __getattr__(name: str):
    # Lazy, so that the light modules (core.store.locks, core.store.atomic) load without DuckDB and pandas.
    if name in __all__:
        from core.store import workspace

        return getattr(workspace, name)
    raise AttributeError(f"module 'core.store' has no attribute {name!r}")
