"""One place for parallel loops (cohort chunks, CV folds, ablation subsets, simulations).

Without configuration the loop runs on the local cores through joblib. When the environment
variable ``NEUROPREDICT_DASK_SCHEDULER`` names a Dask scheduler address (``tcp://host:8786``),
the same loop runs on that cluster: every item becomes one task on the cluster's workers.

On a cluster
------------
- ``prefer`` ("threads" or "processes") and ``n_jobs`` are local choices; the cluster's workers
  and their threads decide how many tasks run at once. ``n_jobs=1`` still runs in the caller.
- Objects that several items share (e.g. the feature table of every CV fold) and arrays or tables
  over :data:`SCATTER_BYTES` are sent to the cluster once per call and fetched once per worker,
  not once per task. Items are tuples, lists, dicts or dataclasses; their direct members are
  looked at.
- ``progress`` and ``on_result`` are called in the caller's thread as tasks finish.
- A task's exception is raised in the caller as its own type (an ``InputError`` stays an
  ``InputError``); the remaining tasks are cancelled.
- Functions and items travel by pickle (cloudpickle for lambdas), so workers must import this
  repository's ``core`` package (same code, same package versions, ``PYTHONPATH``).
- A scheduler that cannot be reached within :data:`CONNECT_TIMEOUT_S` seconds raises an
  ``InputError`` naming the variable and the address.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import joblib

from core.errors import InputError

__all__ = ["CONNECT_TIMEOUT_S", "DASK_ENV", "SCATTER_BYTES", "PieceCheckpoint", "child_python_env", "dask_client", "kept_or_computed", "on_cluster", "parallel_map", "scheduler_address"]

DASK_ENV = "NEUROPREDICT_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 5
SCATTER_BYTES = 100_000

_clients: dict = {}
_clients_lock = threading.Lock()


def child_python_env() -> dict:
    """This process's environment with the folder holding the ``core`` package first on ``PYTHONPATH``,
    for a Python process started to run ``python -m core...`` (a job, an isolated reader)."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}


def scheduler_address() -> str | None:
    """The Dask scheduler address from ``NEUROPREDICT_DASK_SCHEDULER``, or None when unset/blank."""
    address = os.environ.get(DASK_ENV, "").strip()
    return address or None


def on_cluster() -> bool:
    """Whether parallel loops run on a Dask cluster (``NEUROPREDICT_DASK_SCHEDULER`` is set)."""
    return scheduler_address() is not None


def dask_client():
    """The connected ``distributed.Client`` of ``NEUROPREDICT_DASK_SCHEDULER`` (one per address and process).

    Raises InputError when the variable is unset, dask.distributed is missing, or the scheduler
    does not answer within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    address = scheduler_address()
    if address is None:
        raise InputError(f"no Dask cluster is configured; set {DASK_ENV} to a scheduler address such as tcp://host:8786.", field=DASK_ENV)
    try:
        from distributed import Client
    except ImportError as exc:  # a configuration problem the user can fix
        raise InputError(f"{DASK_ENV} is set to {address!r}, but dask.distributed is not installed; "
                         "install it (pip install distributed) or unset the variable.", field=DASK_ENV) from exc
    key = (address, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is not None and client.status == "running":
            return client
        try:
            _probe(address)  # first, so that a failed Client never lingers (its clean-up blocks for seconds)
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{DASK_ENV} is set to {address!r}, which is not a Dask scheduler address ({exc}); "
                             f"expected e.g. tcp://host:8786, or unset {DASK_ENV} to compute on this machine.", field=DASK_ENV) from exc
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT_S} s ({type(exc).__name__}: {exc}); "
                             "expected a running scheduler's address such as tcp://host:8786. Start the cluster, correct the address, "
                             f"or unset {DASK_ENV} to compute on this machine.", field=DASK_ENV) from exc
        _clients[key] = client
        return client


def _probe(address: str) -> None:
    """Open and close one connection to the scheduler; OSError/ValueError when it does not answer in time."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect

    async def once():
        comm = await connect(address, timeout=CONNECT_TIMEOUT_S)
        await comm.close()

    with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever loop the caller's thread runs
        pool.submit(asyncio.run, once()).result()


def close_clients() -> None:
    """Close the cached cluster clients of this process (e.g. before the cluster shuts down)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def parallel_map(
    func: Callable,
    items: Iterable,
    *,
    n_jobs: int = -1,
    prefer: str = "processes",
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[int, object], None] | None = None,
) -> list:
    """``[func(item) for item in items]`` in parallel, results in input order.

    ``progress(done, total)`` is called in the caller's thread as results arrive, and
    ``on_result(position, result)`` with each result (e.g. to keep it on disk at once).
    """
    items = list(items)
    total = len(items)
    if n_jobs == 1 or total <= 1:
        results = []
        for i, item in enumerate(items, 1):
            results.append(func(item))
            if on_result:
                on_result(i - 1, results[-1])
            if progress:
                progress(i, total)
        return results
    if on_cluster():
        return _on_dask(func, items, progress, on_result)
    runner = joblib.Parallel(n_jobs=n_jobs, return_as="generator", prefer=prefer)
    results = []
    for i, result in enumerate(runner(joblib.delayed(func)(item) for item in items), 1):
        results.append(result)
        if on_result:
            on_result(i - 1, result)
        if progress:
            progress(i, total)
    return results


# --- keeping finished pieces, so that stopped work resumes -----------------------------------------


class PieceCheckpoint:
    """Where a long computation keeps its finished pieces (a cohort size, a subsample, a fold x held-out
    family, a chunk of generated patients) as tables (e.g. :meth:`core.store.Workspace.piece_checkpoint`).

    ``load(piece)`` returns the tables kept under the name ``piece`` (``{name: DataFrame}``), else
    None; ``keep(piece, tables)`` stores them. A piece is either kept whole or not at all.
    """

    def load(self, piece: str) -> dict | None:
        return None

    def keep(self, piece: str, tables: dict) -> None:
        pass


def kept_or_computed(checkpoint: PieceCheckpoint | None, piece: str, compute) -> dict:
    """The tables of ``piece``: those ``checkpoint`` kept, else ``compute()``'s (``{name: DataFrame}``), kept at once.

    Kept tables come back as they were written, so a resumed evaluation equals an uninterrupted one.
    """
    tables = None if checkpoint is None else checkpoint.load(piece)
    if tables is None:
        tables = compute()
        if checkpoint is not None:
            checkpoint.keep(piece, tables)
    return tables


# --- the Dask path ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Shared:
    """Stands for the ``number``-th scattered object inside an item on its way to a worker."""

    number: int


def _members(item) -> dict | None:
    """The direct members of an item that may be scattered, by name or position; None if it has none."""
    if isinstance(item, (tuple, list)):
        return dict(enumerate(item))
    if isinstance(item, dict):
        return dict(item)
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.init}
    return None


def _rebuild(item, replaced: dict):
    """``item`` with the members named in ``replaced`` swapped for their values."""
    if not replaced:
        return item
    if isinstance(item, (tuple, list)):
        out = list(item)
        for position, value in replaced.items():
            out[position] = value
        return type(item)(out) if type(item) in (tuple, list) else type(item)(*out)  # namedtuples take positions
    if isinstance(item, dict):
        return {**item, **replaced}
    return dataclasses.replace(item, **replaced)


def _worth_scattering(value, shared: bool) -> bool:
    """Scatter what several items share (one transfer instead of one per task) and large arrays and tables."""
    import numpy as np
    import pandas as pd
    from dask.sizeof import sizeof

    if value is None or callable(value) or isinstance(value, (bool, int, float, complex, str, bytes)):
        return False
    return shared or (isinstance(value, (np.ndarray, pd.DataFrame, pd.Series)) and sizeof(value) >= SCATTER_BYTES)


def _call_with_shared(func, skeleton, stand_ins: dict, *values):
    """Runs on a worker: put the scattered values back into the item and call ``func``."""
    return func(_rebuild(skeleton, {name: values[shared.number] for name, shared in stand_ins.items()}))


def _on_dask(func, items: list, progress, on_result) -> list:
    from distributed import as_completed

    client = dask_client()
    number_of: dict = {}  # id(object) -> its number among the scattered objects: each goes to the cluster once
    scattered = []  # the objects themselves (held, so that no id is reused while this call runs)
    scattered_members_of = []
    members_of = [_members(item) or {} for item in items]
    uses = Counter(id(value) for members in members_of for value in members.values())
    for members in members_of:
        scattered_members = {}
        for name, value in members.items():
            if _worth_scattering(value, uses[id(value)] > 1):
                if id(value) not in number_of:
                    number_of[id(value)] = len(scattered)
                    scattered.append(value)
                scattered_members[name] = number_of[id(value)]
        scattered_members_of.append(scattered_members)
    # One round trip for all of them. Inside a list each object is one piece of data (a dict given
    # alone would be scattered value by value, under its own keys as names).
    shared = client.scatter(scattered, hash=False) if scattered else []
    futures = []
    for item, scattered_members in zip(items, scattered_members_of):
        local = {name: _Shared(k) for k, name in enumerate(scattered_members)}  # numbers index the values sent with this task
        futures.append(client.submit(_call_with_shared, func, _rebuild(item, local), local, *[shared[n] for n in scattered_members.values()], pure=False))
    position = {future.key: i for i, future in enumerate(futures)}
    results: list = [None] * len(futures)
    done = 0
    try:
        for future in as_completed(futures, loop=client.loop):
            i = position[future.key]
            results[i] = future.result()  # re-raises the task's own exception
            done += 1
            if on_result:
                on_result(i, results[i])
            if progress:
                progress(done, len(futures))
    finally:
        if done < len(futures):
            client.cancel(futures)
        del shared, scattered
    return results
