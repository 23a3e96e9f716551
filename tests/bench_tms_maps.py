"""Benchmarks of the TMS threshold maps and the CNN surrogate (``python -m tests.bench_tms_maps``).

Prints one JSON line per figure:

- ``tms_map_hemisphere_s``: a whole fsaverage5 hemisphere (10,242 vertices x 3 layers/cell
  types, 6 rotations x 2 variants each) under the left hand-knob preset with
  ``core.tms.maps.threshold_map``, best of 3 after a warm-up (cortex and surrogates loaded), torch
  on 2 threads. Bar: 3 s. Baseline in the same run: building the same CNN inputs as exact grids
  (``core.tms.cortex.efield_grid``, 729 field points each), timed on 40 grids and extrapolated to
  the map's grid count (CNN time not included), so the ratio is the speed-up of the linearised
  grids and the screen together.
- ``tms_map_linearisation_error``: at 30 (vertex, azimuth) pairs of the L5 layer under the
  hotspot, the largest difference between linearised and exact grids (fraction of |E| at the
  soma) and the largest relative change of the L5 PC surrogate threshold.
- ``tms_cnn_vs_neuron_per_threshold``: NEURON (``core.tms.threshold.threshold_a_per_us``, one
  core, rel_tol 0.01, default starting guess) on 1 held-out grid per cell variant (6 thresholds)
  against the CNN on all held-out sample grids, batched, one thread. Bar: >= 1000x.

The machine may be shared: the load average is reported beside each figure. Not a test:
nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import time


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def bench_map() -> list[dict]:
    import numpy as np
    import torch

    from core.tms.cortex import efield_grid, hand_knob_placement, load_cortex
    from core.tms.maps import efield_jacobian, linearised_grids, threshold_map
    from core.tms.neurons import CELL_TYPES
    from core.tms.surrogate import load_surrogate

    torch.set_num_threads(2)
    cortex = load_cortex()
    placement = hand_knob_placement(cortex)
    for ct in CELL_TYPES:
        load_surrogate(ct)
    threshold_map(placement, cortex=cortex, vertices=np.arange(200))  # warm-up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        tm = threshold_map(placement, cortex=cortex)
        runs.append((time.perf_counter() - t0, tm))
    seconds, tm = min(runs, key=lambda r: r[0])
    n_grids = tm.seconds["n_grids"]
    # baseline: exact grids for a sample of the evaluated (vertex, azimuth) pairs
    positions, normals = cortex.surface("L5")
    sites = np.flatnonzero(tm.evaluated["L5_PC"])
    picks = sites[np.linspace(0, len(sites) - 1, 40).round().astype(int)]
    t0 = time.perf_counter()
    exact = [efield_grid(positions[v], normals[v], 45.0, placement, cortex.sphere_centre_mm) for v in picks]
    per_exact = (time.perf_counter() - t0) / len(picks)
    exact_s = per_exact * n_grids
    activated = {ct: int(np.isfinite(tm.median_threshold_a_per_us(ct)).sum()) for ct in CELL_TYPES}
    out = [{
        "figure": "tms_map_hemisphere_s", "value": round(seconds, 3), "unit": "s", "bar": 3.0,
        "vertices": tm.n_vertices, "cell_types": len(tm.cell_types), "rotations": len(tm.azimuths_deg),
        "cnn_grids": n_grids, "breakdown_s": {k: v for k, v in tm.seconds.items() if k != "n_grids"},
        "vertices_with_median_below_300_a_per_us": activated,
        "baseline_exact_grids_extrapolated_s": round(exact_s, 2), "speedup_vs_exact_grids": round(exact_s / seconds, 1),
        "torch_threads": 2, "load_average_1min": _load(), "cores": os.cpu_count(),
    }]
    # linearisation error
    model = load_surrogate("L5_PC")
    grid_err, thr_err = 0.0, 0.0
    for v in picks[::4]:
        jac = efield_jacobian(positions[v][None], placement, cortex.sphere_centre_mm)
        for azimuth in (0.0, 120.0, 240.0):
            ex = efield_grid(positions[v], normals[v], azimuth, placement, cortex.sphere_centre_mm)
            e0 = ex.rotation @ ex.e_field[4, 4, 4] * ex.e_soma_v_per_m
            lin = linearised_grids(e0[None], jac, ex.rotation[None])[0]
            grid_err = max(grid_err, float(np.abs(lin - ex.e_field).max()))
            t = model.predict_variants(np.stack([ex.e_field, lin]))
            thr_err = max(thr_err, float(np.abs(t[1] / t[0] - 1).max()))
    del exact
    out.append({"figure": "tms_map_linearisation_error", "value": round(thr_err * 100, 4), "unit": "% (max threshold change)",
                "max_grid_error_fraction_of_e_soma": round(grid_err, 5), "pairs": len(picks[::4]) * 3,
                "load_average_1min": _load()})
    return out


def bench_speed() -> list[dict]:
    import numpy as np
    import torch

    from core.tms import threshold as th
    from core.tms.neurons import CELL_TYPES, get_cell, release_cell
    from core.tms.surrogate import load_heldout_sample, load_surrogate

    rows, grids = load_heldout_sample()
    # NEURON: one grid per cell variant, cell built and mechanisms loaded before the clock
    neuron_s, n = 0.0, 0
    try:
        for ct in CELL_TYPES:
            for var in (0, 1):
                i = int(np.flatnonzero((rows["cell_type"] == ct).to_numpy() & (rows["variant"] == var).to_numpy())[0])
                cell = get_cell(ct, var)
                field = th.field_from_grid(cell, grids[i], 500.0)
                th.elicits_ap(cell, th.uniform_field(cell, [0, 0, 1]), th.get_waveform("monophasic"), 1.0)
                t0 = time.perf_counter()
                th.threshold_a_per_us(cell, field, "monophasic", 0.01)
                neuron_s += time.perf_counter() - t0
                n += 1
    finally:
        release_cell()
    per_neuron = neuron_s / n
    # CNN: every held-out grid, batched, one thread, best of 5
    torch.set_num_threads(1)
    cnn_s, m = 0.0, 0
    for ct in CELL_TYPES:
        sel = (rows["cell_type"] == ct).to_numpy()
        model = load_surrogate(ct)
        g = np.concatenate([grids[sel]] * 16)  # a few hundred grids: a realistic batch
        v = np.concatenate([rows["variant"].to_numpy()[sel]] * 16)
        model.predict(g[:8], v[:8])
        best = min(_timed(model.predict, g, v) for _ in range(5))
        cnn_s += best
        m += len(g)
    per_cnn = cnn_s / m
    return [{"figure": "tms_cnn_vs_neuron_per_threshold", "value": round(per_neuron / per_cnn, 0), "unit": "x",
             "bar": 1000.0, "neuron_s_per_threshold": round(per_neuron, 4), "neuron_thresholds": n,
             "cnn_s_per_threshold": per_cnn, "cnn_thresholds": m, "threads": 1, "load_average_1min": _load()}]


def _timed(f, *args) -> float:
    t0 = time.perf_counter()
    f(*args)
    return time.perf_counter() - t0


def bench() -> list[dict]:
    """Run the figures; returns one dict per figure (also what ``__main__`` prints)."""
    return bench_map() + bench_speed()


if __name__ == "__main__":
    for figure in bench():
        print(json.dumps(figure), flush=True)
