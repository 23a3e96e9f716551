"""Benchmarks of TMS neuron thresholds (``python -m tests.bench_tms``): one JSON line per figure.

Figures:
- ``tms_threshold_single_core_s``: median wall time of one threshold (L5 PC variant 0, uniform
  field in random directions, monophasic pulse, 1% bisection) in this process, on one core.
  Baseline in the same run: the search of Aberra et al.'s threshold_finder.hoc (start at
  100 V/m, double or halve to bracket, bisect; every trial simulated for the full 1 ms), on the
  same cell and simulator settings, so the ratio is what bracketing and early stopping buy.
- ``tms_numerics``: the largest relative change of L5 PC thresholds (4 field directions, 0.2%
  bisection) when dt is halved (5 -> 2.5 us), the compartments are made 2.5x shorter, or tstop
  is cut from 1 to 0.7 ms; the settings are converged if it stays under 1%.
- ``tms_10k_thresholds_2_cores_h``: thresholds of all cell types and variants in random uniform
  fields, computed by 2 joblib worker processes (each builds its cells and loads the mechanisms
  itself); the throughput extrapolated to 10,000 thresholds, in hours.
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np


def _directions(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _aberra_style_threshold(cell, e, waveform) -> tuple[float, int]:
    """Baseline search: start at 100 V/m, double/halve until bracketed, bisect to 1%, full runs."""
    from core.tms import threshold as th

    th._set_field(cell, e)
    driver = th._get_driver()
    ref = float(np.linalg.norm(e[0]))
    n = 0

    def fires(a):
        nonlocal n
        n += 1
        driver.prepare(waveform)
        driver.h.amp_xtra = a
        driver.h.finitialize(cell.v_rest_mv)
        cell._spike_times.resize(0)
        cell._spike_ids.resize(0)
        driver.pc.psolve(waveform.tstop_ms)
        return len(set(cell._spike_ids.to_python())) >= th.N_AP_SITES

    lo, hi, a = 0.0, math.inf, 100.0 / ref
    while lo == 0.0 or hi == math.inf:
        if fires(a):
            hi, a = a, a / 2
        else:
            lo, a = a, a * 2
    while hi / lo - 1 > 0.01:
        mid = 0.5 * (lo + hi)
        if fires(mid):
            hi = mid
        else:
            lo = mid
    return hi, n


def _single_core() -> dict:
    from core.tms import threshold as th
    from core.tms.neurons import get_cell

    cell = get_cell("L5_PC", 0)
    waveform = th.get_waveform("monophasic")
    th.threshold_a_per_us(cell, th.uniform_field(cell, [0, 0, -1]), waveform)  # warm-up
    times, cpu, sims, values = [], [], [], []
    for d in _directions(30, seed=1):
        e = th.uniform_field(cell, d)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = th.threshold_search(cell, e, waveform)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        sims.append(result.n_simulations)
        values.append(result.threshold_a_per_us)
    base_times, base_sims, agree = [], [], []
    for d, value in list(zip(_directions(30, seed=1), values))[:6]:
        e = th.uniform_field(cell, d)
        start = time.perf_counter()
        base, n = _aberra_style_threshold(cell, e, waveform)
        base_times.append(time.perf_counter() - start)
        base_sims.append(n)
        agree.append(abs(base / value - 1))
    median = statistics.median(times)
    return {
        "figure": "tms_threshold_single_core_s",
        "value": round(median, 4),
        "unit": "s",
        "bar": 1.0,
        "cell": f"{cell.cell_type} v{cell.variant} ({cell.n_segments} compartments)",
        "median_cpu_s": round(statistics.median(cpu), 4),
        "mean_simulations": round(float(np.mean(sims)), 1),
        "ms_per_simulation": round(1000 * sum(times) / sum(sims), 1),
        "thresholds": len(times),
        "baseline_aberra_search_s": round(statistics.median(base_times), 4),
        "baseline_mean_simulations": round(float(np.mean(base_sims)), 1),
        "speedup_vs_baseline": round(statistics.median(base_times) / median, 2),
        "max_rel_diff_vs_baseline": round(max(agree), 4),
    }


def _numerics() -> dict:
    from core.tms import neurons
    from core.tms import threshold as th

    directions = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, -0.7]]
    mono = th.get_waveform("monophasic")

    def thresholds(waveform=mono) -> np.ndarray:
        cell = neurons.get_cell("L5_PC", 0)
        return np.array([th.threshold_a_per_us(cell, th.uniform_field(cell, d), waveform, rel_tol=0.002) for d in directions])

    base = thresholds()
    changes = {}
    dt = th.DT_MS
    th.DT_MS = dt / 2
    try:
        changes["dt_2.5us"] = thresholds()
    finally:
        th.DT_MS = dt
    changes["tstop_0.7ms"] = thresholds(th.monophasic_waveform(tstop_ms=0.7))
    saved = dict(neurons._MAX_SEGMENT_UM)
    neurons._MAX_SEGMENT_UM.update({k: v / 2.5 for k, v in saved.items()})
    neurons.release_cell()
    try:
        changes["compartments_2.5x"] = thresholds()
    finally:
        neurons._MAX_SEGMENT_UM.update(saved)
        neurons.release_cell()
    rel = {k: float(np.max(np.abs(v / base - 1))) for k, v in changes.items()}
    return {"figure": "tms_numerics", "value": round(max(rel.values()), 4), "unit": "max relative threshold change", "bar": 0.01, **{k: round(v, 4) for k, v in rel.items()}}


def _worker_chunk(cell_type: str, variant: int, directions: np.ndarray) -> list[float]:
    """One joblib task: thresholds of one cell in several uniform fields (its own NEURON)."""
    from core.tms import threshold as th
    from core.tms.neurons import get_cell

    cell = get_cell(cell_type, variant)
    return [th.threshold_a_per_us(cell, th.uniform_field(cell, d), "monophasic") for d in directions]


def _two_cores(per_cell: int = 10) -> dict:
    import joblib

    from core.tms.neurons import CELL_TYPES, N_VARIANTS

    jobs = [(ct, v, _directions(per_cell, seed=10 + 3 * i + v)) for i, ct in enumerate(CELL_TYPES) for v in range(N_VARIANTS[ct])]
    with joblib.Parallel(n_jobs=2) as parallel:
        parallel(joblib.delayed(_worker_chunk)(ct, v, d[:1]) for ct, v, d in jobs[:2])  # start workers, compile check
        start = time.perf_counter()
        results = parallel(joblib.delayed(_worker_chunk)(ct, v, d) for ct, v, d in jobs)
        elapsed = time.perf_counter() - start
    n = sum(len(r) for r in results)
    finite = all(math.isfinite(x) for r in results for x in r)
    return {
        "figure": "tms_10k_thresholds_2_cores_h",
        "value": round(elapsed / n * 10_000 / 3600, 3),
        "unit": "h",
        "bar": 1.5,
        "measured_thresholds": n,
        "measured_s": round(elapsed, 2),
        "s_per_threshold_per_core": round(2 * elapsed / n, 3),
        "all_finite": finite,
        "cores": os.cpu_count(),
    }


def bench() -> list[dict]:
    """Run the figures; returns one dict per figure (also what ``__main__`` prints)."""
    from core.tms.mechanisms import load_mechanisms

    load_mechanisms()
    return [_single_core(), _numerics(), _two_cores()]


if __name__ == "__main__":
    for figure in bench():
        print(json.dumps(figure), flush=True)
