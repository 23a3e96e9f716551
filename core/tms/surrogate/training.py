"""Training every cell type's surrogate on the TMS dataset, validating it, and ``python -m core tms-train``.

Split (:class:`SplitConfig`)
----------------------------
Never random rows. A row is *held out* when its coil placement is in ``test_placements``
(default every 4th placement, 0, 4, ..., 36: 10 of 40, including placement 0, the hand-knob
preset itself) OR its cortical region is in ``test_regions`` (default 0, the patch around the
hand knob, and 4, the farthest patch: 2 of 8 k-means patches, ``core.tms.dataset``). Held-out rows
are never trained on. The report (``core.tms.surrogate.report``) gives the errors on three
disjoint held-out sets: new placement in a trained region (``placement``), new region under a
trained placement (``region``), and new placement *and* new region (``both``, the strictest); the
bar is checked on each.

Waveform
--------
The shipped dataset and models are for the monophasic pulse only (``config.waveform``); a
biphasic surrogate needs a biphasic dataset (``DatasetConfig(waveform="biphasic")``) and
``tms-train`` on it.

Files written (:func:`train_surrogates`, default ``assets/tms/surrogate/``)
---------------------------------------------------------------------------
``<cell_type>.pt`` / ``.json`` (``ThresholdSurrogate.save``); ``report.json`` / ``report.md``: the
validation report; ``heldout_sample.parquet``: 16 rows per cell type of the ``both`` held-out
set (float16 grids), for the tests (:func:`load_heldout_sample`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.tms.surrogate.baseline import UniformFieldBaseline
from core.tms.surrogate.estimator import DEFAULT_SURROGATE_DIR, SURROGATE_VERSION, ThresholdSurrogate
from core.tms.surrogate.network import import_torch
from core.tms.surrogate.report import ABERRA_2023, BAR, HELD_OUT_SETS, metrics, report_markdown

__all__ = ["HELDOUT_SAMPLE", "SplitConfig", "add_cli", "load_heldout_sample", "run_cli", "train_surrogates"]

HELDOUT_SAMPLE = "heldout_sample.parquet"


@dataclass(frozen=True)
class SplitConfig:
    """Held-out coil placements and cortical regions (see the module docstring)."""

    test_placements: tuple = tuple(range(0, 40, 4))
    test_regions: tuple = (0, 4)

    def masks(self, rows) -> dict[str, np.ndarray]:
        """Boolean masks over ``rows``: ``train``, ``placement`` (held-out placement, trained
        region), ``region`` (held-out region, trained placement), ``both`` and ``held_out`` (any)."""
        p = rows["placement_id"].isin(self.test_placements).to_numpy()
        r = rows["region"].isin(self.test_regions).to_numpy()
        return {"train": ~p & ~r, "placement": p & ~r, "region": ~p & r, "both": p & r, "held_out": p | r}

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


def _fit_one(task: dict) -> dict:
    """Train and validate one cell type (a joblib work unit); writes its files, returns its report."""
    import pandas as pd

    rows = pd.DataFrame(task["rows"])
    grids = task["grids"]
    split = SplitConfig(**{k: tuple(v) for k, v in task["split"].items()})
    masks = split.masks(rows)
    directions = pd.DataFrame(task["directions"])
    baseline = UniformFieldBaseline.from_directions(directions, task["cell_type"]) if len(directions) else None
    model = ThresholdSurrogate(**task["params"])
    y = rows["threshold_e_v_per_m"].to_numpy(float)
    tr = masks["train"]
    model.fit(grids[tr], rows["variant"].to_numpy()[tr], y[tr], baseline=baseline)
    model.save(Path(task["out_dir"]) / f"{task['cell_type']}.pt")
    cnn = model.predict(grids, rows["variant"].to_numpy())
    base = baseline.predict(grids, rows["variant"].to_numpy()) if baseline is not None else np.full(len(y), np.nan)
    e = rows["e_soma_v_per_m_per_a_per_us"].to_numpy(float)
    report = {"n_train_rows": int(tr.sum()), "n_direction_rows": int(baseline.thresholds_v_per_m.size) if baseline else 0,
              "fit_seconds": round(model.fit_seconds_, 1), "final_loss": model.history_[-1]["loss"], "sets": {}}
    for name in ("train",) + HELD_OUT_SETS:
        m = masks[name]
        entry = {"n": int(m.sum())}
        for label, pred in (("cnn", cnn), ("baseline", base)):
            mv = metrics(y[m], pred[m])  # thresholds |E| at the soma (V/m)
            ma = metrics(y[m] / e[m], pred[m] / e[m])  # coil thresholds (A/us): same MAPE, larger spread
            entry[label] = {"mape_pct": round(mv["mape_pct"], 3), "r2_v_per_m": round(mv["r2"], 4),
                            "r2_a_per_us": round(ma["r2"], 4), "max_ape_pct": round(mv["max_ape_pct"], 2)}
        for var in sorted(rows["variant"].unique()):
            mm = m & (rows["variant"].to_numpy() == var)
            entry[f"cnn_mape_pct_variant_{int(var)}"] = round(metrics(y[mm], cnn[mm])["mape_pct"], 3)
        report["sets"][name] = entry
    ok = []
    for name in HELD_OUT_SETS[:3]:
        s = report["sets"][name]
        if s["n"]:
            ok.append(s["cnn"]["mape_pct"] <= BAR["cnn_mape_pct_max"] and s["cnn"]["r2_v_per_m"] >= BAR["cnn_r2_min"]
                      and s["cnn"]["mape_pct"] < s["baseline"]["mape_pct"])
    report["bar_met"] = bool(ok) and all(ok)
    report["predictions"] = {"row_id": rows["row_id"].tolist(), "cnn_v_per_m": cnn.tolist()}
    return report


def _neuron_timing(data, cell_types, masks, n_rows: int, surrogates: dict) -> dict:
    """Time ``threshold_a_per_us`` on a few held-out rows per cell type (one core), beside the CNN.

    Each search starts from the library's default guess (no hint from the dataset), as a new site
    in a map would; cells are built before the clock starts."""
    from core.tms import threshold as th
    from core.tms.neurons import get_cell, release_cell

    out, seconds, count = {}, 0.0, 0
    spacing_um = data.config.grid_spacing_mm * 1000.0
    try:
        for ct in cell_types:
            rows = data.rows.reset_index()
            pick = np.flatnonzero((rows["cell_type"] == ct).to_numpy() & masks["both"])
            pick = pick[np.linspace(0, len(pick) - 1, min(n_rows, len(pick))).round().astype(int)] if len(pick) else pick
            for i in pick:
                row = rows.iloc[i]
                cell = get_cell(ct, int(row["variant"]))
                th.elicits_ap(cell, th.uniform_field(cell, [0, 0, 1], 1.0), th.get_waveform(data.config.waveform), 1.0)
                field = th.field_from_grid(cell, data.grids[i], spacing_um)
                t0 = time.perf_counter()
                value = th.threshold_a_per_us(cell, field, data.config.waveform, data.config.rel_tol)
                seconds += time.perf_counter() - t0
                count += 1
                cnn = float(surrogates[ct].predict(data.grids[i:i + 1], [int(row["variant"])])[0])
                out.setdefault("rows", []).append({"cell_type": ct, "variant": int(row["variant"]), "row_id": int(row["row_id"]),
                                                   "neuron_v_per_m": round(value, 2), "cnn_v_per_m": round(cnn, 2),
                                                   "dataset_v_per_m": round(float(row["threshold_e_v_per_m"]), 2)})
    finally:
        release_cell()
    out["n"] = count
    out["seconds_per_threshold"] = seconds / count if count else float("nan")
    return out


def _cnn_timing(surrogates: dict, grids_by_type: dict, repeats: int = 3) -> dict:
    """CNN seconds per threshold, batched, on one thread (as NEURON's single core)."""
    torch = import_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n, best = 0, 0.0
        for ct, model in surrogates.items():
            g = grids_by_type[ct]
            model.predict(g[:64], model.variants[0])
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.predict(g, np.resize(np.asarray(model.variants), len(g)))
                times.append(time.perf_counter() - t0)
            best += min(times)
            n += len(g)
    finally:
        torch.set_num_threads(threads)
    return {"n": n, "seconds_per_threshold": best / n, "threads": 1}


def _generation_timing(folder) -> dict:
    """Core-seconds per threshold of the dataset's own generation runs (runs.jsonl or manifest.json)."""
    runs = []
    if folder is not None:
        folder = Path(folder)
        try:
            if (folder / "runs.jsonl").exists():
                runs = [json.loads(x) for x in (folder / "runs.jsonl").read_text().splitlines() if x.strip()]
            elif (folder / "manifest.json").exists():
                runs = json.loads((folder / "manifest.json").read_text()).get("generation_runs", [])
        except (OSError, ValueError):
            runs = []
    n = sum(r.get("thresholds", 0) for r in runs)
    core_s = sum(r.get("wall_s", 0.0) * r.get("n_jobs", 1) for r in runs)
    return {"runs": len(runs), "thresholds": n, "core_seconds_per_threshold": core_s / n if n else None,
            "note": "wall time x worker processes / thresholds, E-field grids included, machine possibly shared"}


def _write_heldout_sample(data, rows, masks, cell_types, out: Path, per_type: int = 16) -> None:
    """A few rows of the ``both`` held-out set per cell type (grids as float16) for the tests."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    picks = []
    for ct in cell_types:
        for var in sorted(rows["variant"].unique()):
            idx = np.flatnonzero(masks["both"] & (rows["cell_type"] == ct).to_numpy() & (rows["variant"] == var).to_numpy()
                                 & np.isfinite(rows["threshold_e_v_per_m"].to_numpy(float)))
            k = per_type // 2
            if len(idx):
                picks.extend(idx[np.unique(np.linspace(0, len(idx) - 1, min(k, len(idx))).round().astype(int))])
    picks = np.array(sorted(picks), dtype=int)
    cols = ["row_id", "cell_type", "variant", "placement_id", "region", "threshold_e_v_per_m",
            "e_soma_v_per_m_per_a_per_us"]
    table = pa.Table.from_pandas(rows.iloc[picks][cols].reset_index(drop=True), preserve_index=False)
    flat = data.grids[picks].reshape(len(picks), -1).astype(np.float16)
    table = table.append_column("e_field", pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), type=pa.float16()),
                                                                             flat.shape[1]))
    pq.write_table(table, out / HELDOUT_SAMPLE, compression="zstd", compression_level=9)


def load_heldout_sample(folder=None):
    """The held-out sample written by ``tms-train``: (rows DataFrame, grids (n, 9, 9, 9, 3) float32)."""
    import pyarrow.parquet as pq

    path = Path(folder or DEFAULT_SURROGATE_DIR) / HELDOUT_SAMPLE
    try:
        table = pq.read_table(path)
    except OSError as exc:
        raise InputError(f"cannot read the held-out sample ({exc}).", source=str(path)) from exc
    grids = table.column("e_field").combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    rows = table.drop(["e_field"]).to_pandas()
    return rows, grids.reshape(len(rows), 9, 9, 9, 3)


def train_surrogates(data, out_dir=None, *, cell_types=None, split: SplitConfig | None = None, epochs: int = 200,
                     seed: int = 0, n_jobs: int = 2, neuron_rows: int = 2, command: str = "", params: dict | None = None,
                     progress=None, dataset_folder=None) -> dict:
    """Train one surrogate per cell type on ``data`` (a ``TMSDataset``), validate on the held-out
    rows and write ``<cell_type>.pt``/``.json``, ``report.json`` and ``report.md`` to ``out_dir``.

    Each cell type trains in its own process (``core.parallel.parallel_map``, ``n_jobs``), on one
    thread. ``neuron_rows`` rows per cell type are re-simulated with NEURON to time it against the
    CNN in the same run (0: skip). Returns the report (a dict).
    """
    from core.parallel import parallel_map
    from core.tms.neurons import CELL_TYPES

    out = Path(out_dir or DEFAULT_SURROGATE_DIR)
    out.mkdir(parents=True, exist_ok=True)
    split = split or SplitConfig()
    rows = data.rows.reset_index()
    present = [c for c in CELL_TYPES if c in set(rows["cell_type"])]
    cell_types = list(cell_types or present)
    unknown = [c for c in cell_types if c not in present]
    if unknown:
        raise InputError(f"no rows for cell type(s) {unknown} in the dataset; it holds {present}.", field="cell_types")
    finite = np.isfinite(rows["threshold_e_v_per_m"].to_numpy(float))
    tasks = []
    for ct in cell_types:
        m = (rows["cell_type"] == ct).to_numpy() & finite
        part = rows[m].reset_index(drop=True)
        variants = tuple(sorted(int(v) for v in part["variant"].unique()))
        p = {"cell_type": ct, "variants": variants, "epochs": int(epochs), "seed": int(seed),
             "waveform": data.config.waveform, "grid_points": data.config.grid_points,
             "grid_spacing_mm": data.config.grid_spacing_mm, **(params or {})}
        dirs = data.directions[data.directions["cell_type"] == ct] if len(data.directions) else data.directions
        tasks.append({"cell_type": ct, "rows": part[["row_id", "variant", "placement_id", "region", "threshold_e_v_per_m",
                                                     "e_soma_v_per_m_per_a_per_us"]].to_dict("list"),
                      "grids": data.grids[m], "directions": dirs.to_dict("list"), "split": split.to_dict(),
                      "params": p, "out_dir": str(out)})
    t0 = time.perf_counter()
    results = parallel_map(_fit_one, tasks, n_jobs=n_jobs, prefer="processes", progress=progress)
    train_wall = time.perf_counter() - t0
    per_type = dict(zip(cell_types, results))
    surrogates = {ct: ThresholdSurrogate.load(out / f"{ct}.pt") for ct in cell_types}
    masks = split.masks(rows)
    speed = {"cnn": _cnn_timing(surrogates, {ct: data.grids[(rows["cell_type"] == ct).to_numpy()] for ct in cell_types})}
    if neuron_rows > 0:
        speed["neuron"] = _neuron_timing(data, cell_types, masks, neuron_rows, surrogates)
        speed["speedup"] = speed["neuron"]["seconds_per_threshold"] / speed["cnn"]["seconds_per_threshold"]
    speed["dataset_generation"] = _generation_timing(dataset_folder)
    _write_heldout_sample(data, rows, masks, cell_types, out)
    for r in per_type.values():
        r.pop("predictions", None)
    report = {
        "version": SURROGATE_VERSION,
        "command": command,
        "dataset": {"digest": data.config.digest(), "rows": int(len(rows)), "complete": bool(data.complete),
                    "waveform": data.config.waveform, "rows_without_threshold": int((~finite).sum())},
        "split": {**split.to_dict(), "rows_all_cell_types": {k: int(v.sum()) for k, v in masks.items()},
                  "bar_checked_on": list(HELD_OUT_SETS[:3])},
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in ThresholdSurrogate(**(params or {})).get_params().items()
                  if k not in ("cell_type", "variants", "waveform", "grid_points", "grid_spacing_mm")}
                 | {"epochs": int(epochs), "seed": int(seed),
                    "n_parameters": int(sum(p.numel() for p in next(iter(surrogates.values())).module_.parameters())),
                    "architecture": "4 x Conv3D (kernel 3, no padding, ReLU; 9->7->5->3->1) -> features + variant "
                                    "one-hot (+ standardised log uniform-field threshold) -> dense (ReLU) -> 1: "
                                    "standardised log threshold |E| at the soma"},
        "training_wall_s": round(train_wall, 1),
        "n_jobs": n_jobs,
        "cell_types": per_type,
        "aberra_2023": {k: (list(v) if isinstance(v, tuple) else v) for k, v in ABERRA_2023.items()},
        "bar": BAR,
        "speed": speed,
        "bar_met": all(r["bar_met"] for r in per_type.values())
                   and (speed.get("speedup", float("inf")) >= BAR["speedup_min"]),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    return report


# command line (registered by core.cli)


def add_cli(subparsers) -> None:
    """Register ``tms-train`` on the ``python -m core`` parser."""
    p = subparsers.add_parser("tms-train", help="train and validate the TMS threshold CNN surrogates")
    p.add_argument("--dataset", default=None,
                   help="dataset folder: exported (assets/tms) or chunks (<workspace>/tms/<digest>); default: "
                        "assets/tms when it holds the export, else the shipped config's chunk folder in --workspace")
    p.add_argument("--workspace", default=None, help="workspace of the chunk folder (with the default --dataset)")
    p.add_argument("--out", default=None, help=f"where the weights and report go (default {DEFAULT_SURROGATE_DIR})")
    p.add_argument("--cell-types", nargs="+", default=None, help="cell types to train (default: all in the dataset)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=2, help="processes (cell types train in parallel, one thread each)")
    p.add_argument("--neuron-rows", type=int, default=2, help="held-out rows per cell type timed with NEURON (0: skip)")
    p.add_argument("--allow-incomplete", action="store_true", help="train on a dataset that is still being generated")


def run_cli(args) -> int:
    """Run ``python -m core tms-train``; InputError propagates to the caller."""
    import shlex
    import sys

    from core.tms.dataset import DatasetConfig, dataset_folder, load_dataset

    assets = DEFAULT_SURROGATE_DIR.parent  # assets/tms: the exported dataset and its config
    if args.dataset:
        folder = Path(args.dataset)
    elif (assets / "tms_dataset.parquet").exists():
        folder = assets
    else:
        folder = dataset_folder(DatasetConfig.from_yaml(assets / "dataset.yaml"), args.workspace)
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, found {args.epochs}.")
    data = load_dataset(folder)
    if not data.complete and not args.allow_incomplete:
        raise InputError("the dataset is not complete yet; finish it (python -m core tms-dataset) or pass "
                         "--allow-incomplete.", source=str(folder))
    command = "python -m core tms-train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 and \
        sys.argv[1] == "tms-train" else "python -m core tms-train"
    print(f"training on {folder}: {len(data)} rows ({'complete' if data.complete else 'INCOMPLETE'})", flush=True)

    def progress(done, total):
        print(f"  {time.strftime('%H:%M:%S')} {done}/{total} cell types trained", file=sys.stderr, flush=True)

    report = train_surrogates(data, args.out, cell_types=args.cell_types, epochs=args.epochs, seed=args.seed,
                              n_jobs=args.n_jobs, neuron_rows=args.neuron_rows, command=command, progress=progress,
                              dataset_folder=folder)
    print(report_markdown(report), flush=True)
    return 0
