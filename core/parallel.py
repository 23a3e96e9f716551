"""One place for parallel loops (cohort chunks, CV folds, ablation subsets, simulations).

Without configuration the loop runs on the local cores through joblib. When the environment
variable ``NEUROPREDICT_DASK_SCHEDULER`` names a Dask scheduler address, the same loop runs on
that cluster through joblib's Dask backend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable

import joblib

from core.errors import InputError

DASK_ENV = "NEUROPREDICT_DASK_SCHEDULER"


@contextlib.contextmanager
def _backend(prefer: str):
    address = os.environ.get(DASK_ENV)
    if not address:
        yield {"prefer": prefer}
        return
    try:
        from dask.distributed import Client
    except ImportError as exc:  # a configuration problem the user can fix
        raise InputError(
            f"{DASK_ENV} is set to {address!r}, but dask.distributed is not installed; "
            "install it (pip install 'dask[distributed]') or unset the variable."
        ) from exc
    with Client(address), joblib.parallel_backend("dask"):
        yield {}


def parallel_map(
    func: Callable,
    items: Iterable,
    *,
    n_jobs: int = -1,
    prefer: str = "processes",
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """``[func(item) for item in items]`` in parallel, results in input order.

    ``progress(done, total)`` is called in the caller's thread as results arrive.
    """
    items = list(items)
    total = len(items)
    if n_jobs == 1 or total <= 1:
        results = []
        for i, item in enumerate(items, 1):
            results.append(func(item))
            if progress:
                progress(i, total)
        return results
    with _backend(prefer) as kwargs:
        runner = joblib.Parallel(n_jobs=n_jobs, return_as="generator", **kwargs)
        results = []
        for i, result in enumerate(runner(joblib.delayed(func)(item) for item in items), 1):
            results.append(result)
            if progress:
                progress(i, total)
    return results
