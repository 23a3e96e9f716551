"""The surrogate's validation report: metrics, the bar it is held to, and the Markdown table.

Errors are given on three disjoint held-out sets (``core.tms.surrogate.training.SplitConfig``):
new coil placement in a trained region (``placement``), new region under a trained placement
(``region``), and new placement *and* new region (``both``, the strictest); ``held_out`` is their
union. The bar (``BAR``) is checked on each of the first three: CNN MAPE <= 2.5 % and R^2 >= 0.96
(Aberra et al. 2023's figures for their CNN, ``ABERRA_2023``), better than the uniform-field
baseline, and >= 1000x faster than NEURON.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ABERRA_2023", "BAR", "HELD_OUT_SETS", "metrics", "report_markdown"]

# Aberra et al. 2023, NeuroImage 275:120184: the CNN's error on held-out data and the uniform-field
# approach's.
ABERRA_2023 = {"cnn_mape_pct_below": 2.5, "cnn_r2_above": 0.96, "uniform_mape_pct_range": (5.9, 9.8)}
BAR = {"cnn_mape_pct_max": 2.5, "cnn_r2_min": 0.96, "speedup_min": 1000.0}
HELD_OUT_SETS = ("placement", "region", "both", "held_out")


def metrics(true, predicted) -> dict:
    """MAPE (%) and R^2 of thresholds (not logs), and the largest relative error (%)."""
    t, p = np.asarray(true, float), np.asarray(predicted, float)
    if not len(t):
        return {"n": 0, "mape_pct": float("nan"), "r2": float("nan"), "max_ape_pct": float("nan")}
    ape = np.abs(p - t) / t
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum((p - t) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return {"n": int(len(t)), "mape_pct": float(100 * ape.mean()), "r2": r2, "max_ape_pct": float(100 * ape.max())}


def report_markdown(report: dict) -> str:
    """The validation report as a Markdown table (written beside ``report.json``)."""
    lines = ["# TMS threshold surrogate: validation report", "",
             f"Retrain: `{report.get('command') or 'python -m core tms-train'}`", "",
             f"Dataset {report['dataset']['digest']} ({report['dataset']['rows']} rows, waveform "
             f"{report['dataset']['waveform']}). Held out: placements {report['split']['test_placements']} and regions "
             f"{report['split']['test_regions']} (never trained on). Thresholds are |E| at the soma (V/m); MAPE is the same "
             "for coil thresholds (A/us); R^2 is given for both.", "",
             "| cell type | held-out set | n | CNN MAPE % | CNN R^2 (V/m) | CNN R^2 (A/us) | baseline MAPE % | "
             "baseline R^2 (V/m) | Aberra 2023 CNN | Aberra 2023 uniform |", "|---|---|---|---|---|---|---|---|---|---|"]
    for ct, r in report["cell_types"].items():
        for name in HELD_OUT_SETS:
            s = r["sets"][name]
            lines.append(f"| {ct} | {name} | {s['n']} | {s['cnn']['mape_pct']:.2f} | {s['cnn']['r2_v_per_m']:.3f} | "
                         f"{s['cnn']['r2_a_per_us']:.3f} | {s['baseline']['mape_pct']:.2f} | {s['baseline']['r2_v_per_m']:.3f} | "
                         "< 2.5 %, R^2 > 0.96 | 5.9-9.8 % |")
    sp = report["speed"]
    lines += ["", f"Bar (CNN MAPE <= 2.5 %, R^2 >= 0.96 on placement, region and both; better than the baseline; "
              f">= 1000x faster than NEURON): {'met' if report['bar_met'] else 'NOT met'}.", ""]
    if "neuron" in sp:
        lines.append(f"Speed (same run, one core each): NEURON {sp['neuron']['seconds_per_threshold'] * 1e3:.0f} ms a threshold "
                     f"({sp['neuron']['n']} thresholds), CNN {sp['cnn']['seconds_per_threshold'] * 1e6:.1f} us a threshold "
                     f"(batched, {sp['cnn']['n']} grids): {sp['speedup']:.0f}x.")
    lines.append(f"Training: {report['model']['epochs']} epochs, seed {report['model']['seed']}, wall "
                 f"{report['training_wall_s']} s on {report['n_jobs']} processes (one thread each).")
    lines += ["", "Files: `<cell_type>.pt` (tensors only: network state_dict, log-threshold standardisation, the "
              "direction maps; `torch.load(weights_only=True)`), `<cell_type>.json` (hyper-parameters, screening "
              "floors, training time), `heldout_sample.parquet` (16 rows a cell type of the `both` set, float16 grids, "
              "for the tests), `report.json` (this report, with per-variant MAPE and the NEURON rows). Load with "
              "`core.tms.surrogate.load_surrogate(cell_type)`; design in the docstrings of `core.tms.surrogate`'s modules."]
    return "\n".join(lines) + "\n"
