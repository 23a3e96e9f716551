"""The threshold surrogate of one cell type: fit, predict (grids, every variant, linear fields), save and load.

The surrogate replaces a compartmental simulation (``core.tms.threshold``, ~0.3 s a threshold)
by one pass of a small convolutional network (``core.tms.surrogate.network``), so that
threshold maps over a whole hemisphere (``core.tms.maps``) take seconds. It predicts the
threshold |E| at the soma (V/m); the coil threshold of a placement is that divided by |E| at the
soma per A/us of coil dI/dt.

Training (:meth:`ThresholdSurrogate.fit`)
-----------------------------------------
Mean squared error on the standardised log threshold (so, to first order, on the relative
error); AdamW (weight decay 1e-4), batch 64, one-cycle cosine learning rate with a peak of 3e-3,
a fixed number of epochs (no early stopping, so no data outside the training rows chooses the
model). Besides the grid rows, the training set holds the cell's *direction map* (a uniform field
along 128 directions, see ``core.tms.dataset``) as uniform grids: they belong to no placement and
no region, so they leak nothing into the held-out sets. Deterministic: ``torch.manual_seed(seed)``
for the weights, a seeded ``torch.Generator`` for the batches, ``torch.use_deterministic_algorithms``
and ``torch.set_num_threads(n_threads)`` (default 1) during ``fit``; the same data, seed, thread
count and torch build give the same weights bit for bit (checked: retraining L4 LBC, in a
worker process or in the main one, reproduced the shipped weights exactly).

Files (:func:`load_surrogate`, ``assets/tms/surrogate/``)
---------------------------------------------------------
``<cell_type>.pt``: a dict of tensors only (the network's ``state_dict`` plus ``log_mean``,
``log_std``, ``direction_points``, ``direction_thresholds_v_per_m``), read with
``torch.load(weights_only=True)``, so loading runs no pickled code; ``<cell_type>.json``: the
hyper-parameters and metadata. The same folder holds what ``python -m core tms-train`` writes
beside them (``core.tms.surrogate.training``): ``report.json`` / ``report.md`` and
``heldout_sample.parquet``.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.tms.surrogate.baseline import UniformFieldBaseline
from core.tms.surrogate.network import ThresholdCNN, import_torch
from core.tms.surrogate.report import metrics

__all__ = ["DEFAULT_SURROGATE_DIR", "SURROGATE_VERSION", "ThresholdSurrogate", "load_surrogate"]

# <repository>/assets/tms/surrogate; this file is <repository>/core/tms/surrogate/estimator.py
DEFAULT_SURROGATE_DIR = Path(__file__).resolve().parents[3] / "assets" / "tms" / "surrogate"
SURROGATE_VERSION = 1


def _onehot(torch, variants: np.ndarray, known: tuple):
    index = {v: i for i, v in enumerate(known)}
    try:
        idx = np.array([index[int(v)] for v in variants], dtype=np.int64)
    except KeyError as exc:
        raise InputError(f"unknown variant {exc.args[0]}; the surrogate knows {list(known)}.", field="variants") from None
    return torch.nn.functional.one_hot(torch.from_numpy(idx), len(known)).float()


def _as_grids(grids, grid_points: int) -> np.ndarray:
    g = np.asarray(grids, dtype=np.float32)
    if g.ndim == 4:
        g = g[None]
    n = grid_points
    if g.ndim != 5 or g.shape[1:] != (n, n, n, 3):
        raise InputError(f"E-field grids must have shape (n, {n}, {n}, {n}, 3), found {g.shape}.", field="grids")
    if not np.all(np.isfinite(g)):
        raise InputError("E-field grids contain NaN or infinite values.", field="grids")
    return g


class ThresholdSurrogate:
    """CNN surrogate of one cell type's threshold |E| at the soma (V/m); scikit-learn conventions.

    Parameters (stored as given; the network's design is in ``core.tms.surrogate.network``)
    ----------
    cell_type : str, e.g. "L5_PC".
    variants : morphological variants it knows (one-hot input of the dense head).
    channels : output channels of the four Conv3D layers.
    hidden : width of the first dense layer.
    epochs, batch_size, learning_rate, weight_decay : training schedule (AdamW, one-cycle cosine).
    seed : weights and batch order.
    n_threads : torch threads during ``fit`` (1: reproducible bit for bit on any machine).
    waveform : the pulse the training thresholds were computed for.
    grid_points, grid_spacing_mm : the input grid.
    baseline_input : feed the uniform-field threshold (direction map) to the dense head; ``fit``
        then needs ``baseline``.

    Attributes (after ``fit`` or ``load``)
    ----------
    module_ : the torch network (eval mode).
    log_mean_, log_std_ : standardisation of log threshold (V/m).
    baseline_ : UniformFieldBaseline or None, the cell's direction maps (kept with the weights).
    threshold_floor_v_per_m_ : a lower bound used to skip weak-field sites in maps: 0.8 x the
        lowest threshold in the training rows and direction maps.
    baseline_ratio_floor_ : 0.85 x the lowest (NEURON threshold / uniform-field baseline) over the
        training rows, or None without a baseline; maps skip cells whose baseline threshold times
        this is out of range.
    history_ : list of dicts per epoch (loss; validation MAPE when a validation set was given).
    fit_seconds_, n_train_ : training wall time (s) and training rows.
    """

    def __init__(self, cell_type="L5_PC", variants=(0, 1), channels=(8, 16, 32, 64), hidden=64, epochs=200,
                 batch_size=64, learning_rate=3e-3, weight_decay=1e-4, seed=0, n_threads=1, waveform="monophasic",
                 grid_points=9, grid_spacing_mm=0.5, baseline_input=True):
        self.cell_type = cell_type
        self.variants = variants
        self.channels = channels
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed
        self.n_threads = n_threads
        self.waveform = waveform
        self.grid_points = grid_points
        self.grid_spacing_mm = grid_spacing_mm
        self.baseline_input = baseline_input

    # -- fitting -------------------------------------------------------------------------------

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("cell_type", "variants", "channels", "hidden", "epochs", "batch_size",
                                              "learning_rate", "weight_decay", "seed", "n_threads", "waveform",
                                              "grid_points", "grid_spacing_mm", "baseline_input")}

    def _new_module(self):
        return ThresholdCNN(tuple(self.channels), int(self.hidden), len(self.variants), int(self.grid_points),
                            int(bool(self.baseline_input)))

    def fit(self, grids, variants, thresholds_v_per_m, *, baseline: UniformFieldBaseline | None = None,
            validation=None, progress=None) -> ThresholdSurrogate:
        """Train on grids (n, 9, 9, 9, 3) normalised to 1 at the soma, with their variants (n,) and
        NEURON thresholds |E| at the soma (n,) in V/m.

        ``baseline``: the cell's direction maps; they are added to the training rows as uniform
        grids and kept with the model. ``validation``: optional (grids, variants, thresholds) whose
        MAPE is logged in ``history_`` every 10 epochs (monitoring only). ``progress(epoch, epochs)``.
        """
        torch = import_torch()
        g = _as_grids(grids, self.grid_points)
        v = np.asarray(variants).reshape(-1)
        y = np.asarray(thresholds_v_per_m, float).reshape(-1)
        if not (len(g) == len(v) == len(y)) or not len(y):
            raise InputError(f"need as many grids, variants and thresholds (> 0), found {len(g)}, {len(v)}, {len(y)}.")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise InputError("thresholds must be positive and finite (drop rows without a threshold first).",
                             field="thresholds_v_per_m")
        floor = float(y.min())
        ratio_floor = None
        if baseline is not None:
            ratio_floor = 0.85 * float(np.min(y / baseline.predict(g, v)))
            n = self.grid_points
            m = len(baseline.points)
            ug = np.broadcast_to(baseline.points[:, None, None, None, :].astype(np.float32), (m, n, n, n, 3))
            for i, var in enumerate(baseline.variants):
                if var in tuple(self.variants):
                    g = np.concatenate([g, ug])
                    v = np.concatenate([v, np.full(m, var)])
                    y = np.concatenate([y, baseline.thresholds_v_per_m[i]])
            floor = min(floor, float(baseline.thresholds_v_per_m.min()))
        if self.baseline_input and baseline is None:
            raise InputError("baseline_input=True needs the cell's direction maps (baseline=...).", field="baseline")
        self.baseline_ = baseline
        start = time.perf_counter()
        threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(int(self.n_threads))
        torch.use_deterministic_algorithms(True)
        try:
            torch.manual_seed(int(self.seed))
            module = self._new_module()
            logy = np.log(y)
            mean, std = float(logy.mean()), float(logy.std()) or 1.0
            self.log_mean_, self.log_std_ = mean, std
            x_all = torch.from_numpy(np.ascontiguousarray(g.transpose(0, 4, 1, 2, 3)))
            h_all = self._code(torch, v, g[:, g.shape[1] // 2, g.shape[1] // 2, g.shape[1] // 2])
            t_all = torch.from_numpy(((logy - mean) / std).astype(np.float32))
            opt = torch.optim.AdamW(module.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            steps_per_epoch = math.ceil(len(t_all) / self.batch_size)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate, epochs=int(self.epochs),
                                                        steps_per_epoch=steps_per_epoch, pct_start=0.15)
            gen = torch.Generator().manual_seed(int(self.seed))
            history = []
            for epoch in range(int(self.epochs)):
                module.train()
                order = torch.randperm(len(t_all), generator=gen)
                total = 0.0
                for s in range(steps_per_epoch):
                    idx = order[s * self.batch_size:(s + 1) * self.batch_size]
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.mse_loss(module(x_all[idx], h_all[idx]), t_all[idx])
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += float(loss.detach()) * len(idx)
                record = {"epoch": epoch + 1, "loss": total / len(t_all)}
                if validation is not None and ((epoch + 1) % 10 == 0 or epoch + 1 == self.epochs):
                    module.eval()
                    self.module_, self.log_mean_, self.log_std_ = module, mean, std
                    vg, vv, vy = validation
                    record["val_mape_pct"] = metrics(np.asarray(vy, float), self.predict(vg, vv))["mape_pct"]
                history.append(record)
                if progress:
                    progress(epoch + 1, int(self.epochs))
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
        module.eval()
        self.module_, self.log_mean_, self.log_std_ = module, mean, std
        self.threshold_floor_v_per_m_ = 0.8 * floor
        self.baseline_ratio_floor_ = ratio_floor
        self.history_ = history
        self.fit_seconds_ = time.perf_counter() - start
        self.n_train_ = int(len(np.asarray(thresholds_v_per_m).reshape(-1)))
        return self

    # -- prediction ----------------------------------------------------------------------------

    def _code(self, torch, variants, e_soma):
        """Input of the dense head besides the conv features: the variant's one-hot code, and with
        ``baseline_input`` the standardised log uniform-field threshold along ``e_soma``."""
        h = _onehot(torch, np.asarray(variants).reshape(-1), tuple(self.variants))
        if not self.baseline_input:
            return h
        base = np.log(self.baseline_.threshold_v_per_m(np.asarray(e_soma, float), variants))
        return torch.cat([h, torch.from_numpy(((base - self.log_mean_) / self.log_std_).astype(np.float32))[:, None]], 1)

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise InputError("the surrogate is not trained: call fit() or load() first.")

    def predict(self, grids, variants, batch_size: int = 4096) -> np.ndarray:
        """Threshold |E| at the soma (V/m) for grids (n, 9, 9, 9, 3) normalised to 1 at the soma.

        ``variants``: (n,) or one variant for all. The coil threshold (A/us) is this divided by |E|
        at the soma per A/us.
        """
        self._check_fitted()
        torch = import_torch()
        g = _as_grids(grids, self.grid_points)
        v = np.broadcast_to(np.asarray(variants), (len(g),))
        c = self.grid_points // 2
        h = self._code(torch, v, g[:, c, c, c])
        out = np.empty(len(g))
        with torch.inference_mode():
            for s in range(0, len(g), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(g[s:s + batch_size].transpose(0, 4, 1, 2, 3)))
                out[s:s + batch_size] = self.module_(x, h[s:s + batch_size]).double().numpy()
        return np.exp(out * self.log_std_ + self.log_mean_)

    def predict_variants(self, grids, batch_size: int = 4096) -> np.ndarray:
        """Thresholds |E| at the soma (V/m) of every variant: (n, n_variants), columns in the order
        of ``variants``. The convolutional trunk runs once per grid."""
        self._check_fitted()
        torch = import_torch()
        g = _as_grids(grids, self.grid_points)
        k = len(self.variants)
        c = self.grid_points // 2
        codes = [self._code(torch, np.full(len(g), var), g[:, c, c, c]) for var in self.variants]
        out = np.empty((len(g), k))
        with torch.inference_mode():
            for s in range(0, len(g), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(g[s:s + batch_size].transpose(0, 4, 1, 2, 3)))
                f = self.module_.features(x)
                for j in range(k):
                    out[s:s + batch_size, j] = self.module_.head(f, codes[j][s:s + batch_size]).double().numpy()
        return np.exp(out * self.log_std_ + self.log_mean_)

    def _linear_basis(self):
        """Responses of the first conv layer (no bias) to the 12 basis fields of a linear field:
        (12, C1 * S^3) float32 (see :meth:`predict_linear`); cached."""
        cached = getattr(self, "_basis_cache", None)
        if cached is not None and cached[0] is self.module_:
            return cached[1], cached[2]
        torch = import_torch()
        from core.tms.cortex import grid_offsets_mm

        n = int(self.grid_points)
        offsets = grid_offsets_mm(n, self.grid_spacing_mm).astype(np.float32)  # (n, n, n, 3) mm
        basis = np.zeros((12, n, n, n, 3), np.float32)
        for c in range(3):
            basis[c, ..., c] = 1.0  # uniform unit field along component c
            for b in range(3):
                basis[3 + 3 * c + b, ..., c] = offsets[..., b]  # component c grows along axis b
        conv = self.module_.trunk[0]
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(basis.transpose(0, 4, 1, 2, 3)))
            k = torch.nn.functional.conv3d(x, conv.weight, None).reshape(12, -1).contiguous()
            bias = conv.bias.repeat_interleave(k.shape[1] // conv.out_channels).contiguous()
        self._basis_cache = (self.module_, k, bias)
        return k, bias

    def predict_linear(self, e_soma, gradient, batch_size: int = 4096) -> np.ndarray:
        """Thresholds |E| at the soma (V/m) of every variant, (n, n_variants), for *linear* fields
        given by their value and gradient instead of a grid: the grid would be
        ``e_soma + gradient @ offset`` (cell frame, normalised so |e_soma| = 1; ``gradient`` (n, 3, 3)
        per mm, ``gradient[i, c, b] = dE_c/dx_b``). Exactly :meth:`predict_variants` on those grids
        (up to float rounding), but the first conv layer, being linear, is applied to the 12 basis
        fields once and combined (``core.tms.maps`` uses this)."""
        self._check_fitted()
        torch = import_torch()
        a = np.asarray(e_soma, np.float32).reshape(-1, 3)
        b = np.asarray(gradient, np.float32).reshape(-1, 9)
        if len(a) != len(b) or not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
            raise InputError("e_soma (n, 3) and gradient (n, 3, 3) must match and be finite.", field="gradient")
        k, bias = self._linear_basis()
        conv = self.module_.trunk[0]
        size = int(self.grid_points) - 2
        kv = len(self.variants)
        codes = [self._code(torch, np.full(len(a), var), a) for var in self.variants]
        rest = self.module_.trunk[2:]
        out = np.empty((len(a), kv))
        with torch.inference_mode():
            for s in range(0, len(a), batch_size):
                p = torch.from_numpy(np.concatenate([a[s:s + batch_size], b[s:s + batch_size]], axis=1))
                h = torch.relu(torch.addmm(bias, p, k)).reshape(len(p), conv.out_channels, size, size, size)
                f = rest(h)
                for j in range(kv):
                    out[s:s + batch_size, j] = self.module_.head(f, codes[j][s:s + batch_size]).double().numpy()
        return np.exp(out * self.log_std_ + self.log_mean_)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write ``path`` (.pt, tensors only) and its ``.json`` sidecar (parameters, metadata)."""
        torch = import_torch()
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {f"net.{k}": t.detach().clone() for k, t in self.module_.state_dict().items()}
        state["log_mean"] = torch.tensor(self.log_mean_, dtype=torch.float64)
        state["log_std"] = torch.tensor(self.log_std_, dtype=torch.float64)
        if self.baseline_ is not None:
            state["direction_points"] = torch.from_numpy(self.baseline_.points.copy())
            state["direction_thresholds_v_per_m"] = torch.from_numpy(self.baseline_.thresholds_v_per_m.copy())
        torch.save(state, path)
        params = self.get_params()
        params["variants"], params["channels"] = list(params["variants"]), list(params["channels"])
        meta = {"version": SURROGATE_VERSION, "params": params,
                "threshold_floor_v_per_m": self.threshold_floor_v_per_m_,
                "baseline_ratio_floor": self.baseline_ratio_floor_,
                "baseline_variants": list(self.baseline_.variants) if self.baseline_ is not None else None,
                "n_train": self.n_train_, "fit_seconds": round(self.fit_seconds_, 2),
                "n_parameters": int(sum(p.numel() for p in self.module_.parameters())),
                "final_loss": self.history_[-1]["loss"] if self.history_ else None,
                "torch_version": torch.__version__}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path) -> ThresholdSurrogate:
        """Read a surrogate written by :meth:`save` (no pickled code is run)."""
        torch = import_torch()
        path = Path(path)
        import pickle

        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise InputError(f"cannot read the surrogate ({exc}); retrain it with `python -m core tms-train`.",
                             source=str(path)) from exc
        if meta.get("version") != SURROGATE_VERSION:
            raise InputError(f"surrogate file version {meta.get('version')} is not {SURROGATE_VERSION}; retrain it.",
                             source=str(path))
        try:
            p = dict(meta["params"])
            p["variants"], p["channels"] = tuple(p["variants"]), tuple(p["channels"])
            self = cls(**p)
            module = self._new_module()
            module.load_state_dict({k[4:]: t for k, t in state.items() if k.startswith("net.")})
        except (KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"the surrogate file does not match its parameters ({exc}); retrain it.",
                             source=str(path)) from exc
        module.eval()
        self.module_ = module
        self.log_mean_, self.log_std_ = float(state["log_mean"]), float(state["log_std"])
        self.baseline_ = None
        if "direction_points" in state:
            self.baseline_ = UniformFieldBaseline(state["direction_points"].numpy(),
                                                  state["direction_thresholds_v_per_m"].numpy(),
                                                  meta.get("baseline_variants") or p["variants"])
        self.threshold_floor_v_per_m_ = float(meta["threshold_floor_v_per_m"])
        self.baseline_ratio_floor_ = meta.get("baseline_ratio_floor")
        self.history_ = []
        self.fit_seconds_ = float(meta.get("fit_seconds", float("nan")))
        self.n_train_ = int(meta.get("n_train", 0))
        return self


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime: float) -> ThresholdSurrogate:
    return ThresholdSurrogate.load(path)


def load_surrogate(cell_type: str, folder=None) -> ThresholdSurrogate:
    """The shipped (or ``folder``'s) surrogate of ``cell_type`` (cached per file and mtime).

    Raises
    ------
    InputError
        Unknown cell type, or no trained surrogate in the folder.
    """
    from core.tms.neurons import CELL_TYPES

    if cell_type not in CELL_TYPES:
        raise InputError(f"unknown cell type {cell_type!r}; expected one of {list(CELL_TYPES)}.", field="cell_type")
    path = Path(folder or DEFAULT_SURROGATE_DIR) / f"{cell_type}.pt"
    if not path.exists():
        raise InputError(f"no trained surrogate for {cell_type}: run `python -m core tms-train` first.", source=str(path))
    return _load_cached(str(path), path.stat().st_mtime)
