"""A 3D-CNN surrogate of the NEURON threshold, the uniform-field baseline, and their validation.

The surrogate replaces a compartmental simulation (``core.tms.threshold``, ~0.3 s a threshold)
by one pass of a small convolutional network, so that threshold maps over a whole hemisphere
(``core.tms.maps``) take seconds. It follows Aberra et al. 2023 (NeuroImage 275:120184): the input
is the E-field on a 9 x 9 x 9 grid around the soma in the cell's frame, normalised by |E| at the
soma; the output is the threshold |E| at the soma (V/m), predicted as a log. The coil threshold
of a placement is that divided by |E| at the soma per A/us of coil dI/dt.

Model (:class:`ThresholdCNN`, one per cell type)
------------------------------------------------
Input (3, 9, 9, 9): the field components along the cell's x, y, z (z = the cortical normal
towards the pia). Four Conv3D layers, kernel 3, no padding, ReLU, so the grid shrinks
9 -> 7 -> 5 -> 3 -> 1 and the last layer sees the whole grid; channels (8, 16, 32, 64) by default.
Then two dense layers: the 64 conv features, concatenated with (a) a one-hot code of the
*morphological variant* and (b) the standardised log of the *uniform-field threshold* of that
variant along the field direction at the soma (the baseline below, from the cell's direction
map), -> 64 (ReLU) -> 1. Output: the standardised natural log of the threshold (the training
mean and s.d. are stored with the weights). About 78 k parameters, 1.1 M multiply-adds a grid.

Why these inputs. Both variants of a cell type share the convolutional trunk (they respond to the
same spatial features of the field) and differ in the dense head, so a map runs the trunk once
for both. The direction-map input (``baseline_input=True``) hands the network the dependence on
the field direction, measured on 128 exact uniform fields per variant, which it would otherwise
have to learn from ~1,900 rows; the convolutions then learn what the non-uniform field adds. On
an inner split of the training rows (held-out placements 2 mod 4 or region 3; the test sets
untouched) it lowered the MAPE from 2.19 to 1.86 % (L2/3 PC) and from 2.09 to 1.74 % (L4 LBC,
where the pure CNN was no better than the baseline, 1.98 %). Predicting the *residual* over the
baseline instead was worse than both (2.80 % for L2/3 PC): the barycentric interpolation has
kinks along the triangle edges that a CNN cannot undo. Aberra's network is larger (more filters,
trained on far more samples); this one is sized to train in a few minutes per cell type on one
CPU core and to evaluate ~10^4 grids a second.

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

Split (:class:`SplitConfig`)
----------------------------
Never random rows. A row is *held out* when its coil placement is in ``test_placements``
(default every 4th placement, 0, 4, ..., 36: 10 of 40, including placement 0, the hand-knob
preset itself) OR its cortical region is in ``test_regions`` (default 0, the patch around the
hand knob, and 4, the farthest patch: 2 of 8 k-means patches, ``core.tms.dataset``). Held-out rows
are never trained on. The report gives the errors on three disjoint held-out sets: new placement
in a trained region (``placement``), new region under a trained placement (``region``), and new
placement *and* new region (``both``, the strictest); the issue's bar is checked on each.

Uniform-field baseline (:class:`UniformFieldBaseline`)
------------------------------------------------------
The approach the CNN is compared with (Aberra 2023's "uniform E-field" estimate): the threshold
of the cell variant in a uniform field along the field direction at the soma, looked up in its
direction map (128 Fibonacci directions), in V/m; the coil threshold is that divided by |E| at the
soma per A/us. The lookup is barycentric interpolation of the log threshold on the spherical
Delaunay triangulation of the directions (the convex hull of the points): exact at the sampled
directions (a direction within 1e-6 rad of one, e.g. read back from a float32 grid, takes its
value), continuous everywhere. A smoother lookup (thin-plate RBF on the sphere) lowered the
baseline's MAPE on L2/3 PC only from 3.1 to 2.9 %: its error is mostly the non-uniform field,
not the interpolation, so this is a fair baseline.

Waveform
--------
The shipped dataset and models are for the monophasic pulse only (``config.waveform``); a
biphasic surrogate needs a biphasic dataset (``DatasetConfig(waveform="biphasic")``) and
``tms-train`` on it.

Files (:func:`load_surrogate`, ``assets/tms/surrogate/``)
---------------------------------------------------------
``<cell_type>.pt``: a dict of tensors only (the network's ``state_dict`` plus ``log_mean``,
``log_std``, ``direction_points``, ``direction_thresholds_v_per_m``), read with
``torch.load(weights_only=True)``, so loading runs no pickled code; ``<cell_type>.json``: the
hyper-parameters and metadata; ``report.json`` / ``report.md``: the validation report written by
``python -m core tms-train``; ``heldout_sample.parquet``: 16 rows per cell type of the ``both``
held-out set (float16 grids), for the tests (:func:`load_heldout_sample`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputError

__all__ = [
    "ABERRA_2023",
    "DEFAULT_SURROGATE_DIR",
    "SplitConfig",
    "ThresholdCNN",
    "ThresholdSurrogate",
    "UniformFieldBaseline",
    "load_heldout_sample",
    "load_surrogate",
    "metrics",
    "train_surrogates",
    "add_cli",
    "run_cli",
]

DEFAULT_SURROGATE_DIR = Path(__file__).resolve().parents[2] / "assets" / "tms" / "surrogate"
SURROGATE_VERSION = 1
# Aberra et al. 2023, NeuroImage 275:120184: the CNN's error on held-out data and the uniform-field
# approach's, as quoted in issue 7.
ABERRA_2023 = {"cnn_mape_pct_below": 2.5, "cnn_r2_above": 0.96, "uniform_mape_pct_range": (5.9, 9.8)}
BAR = {"cnn_mape_pct_max": 2.5, "cnn_r2_min": 0.96, "speedup_min": 1000.0}


def _torch():
    import torch

    return torch


# ---------------------------------------------------------------------------------------------
# network


def _module_class():
    torch = _torch()
    nn = torch.nn

    class ThresholdCNN(nn.Module):
        """Grid (n, 3, 9, 9, 9) + code (n, n_variants + n_extra) -> standardised log threshold (n,).

        The code is the variant's one-hot vector, followed (``n_extra`` = 1) by the standardised
        log uniform-field threshold. See the module docstring. ``features(x)`` is the
        convolutional trunk, ``head(f, code)`` the two dense layers.
        """

        def __init__(self, channels=(8, 16, 32, 64), hidden=64, n_variants=2, grid_points=9, n_extra=0):
            super().__init__()
            layers, c, size = [], 3, grid_points
            for out in channels:
                layers += [nn.Conv3d(c, out, 3), nn.ReLU()]
                c, size = out, size - 2
            if size < 1:
                raise InputError(f"{len(channels)} conv layers need a grid of at least {2 * len(channels) + 1} points.",
                                 field="channels")
            self.trunk = nn.Sequential(*layers, nn.Flatten())
            self.n_variants = n_variants
            self.dense1 = nn.Linear(c * size**3 + n_variants + n_extra, hidden)
            self.dense2 = nn.Linear(hidden, 1)

        def features(self, x):
            return self.trunk(x)

        def head(self, f, code):
            return self.dense2(torch.relu(self.dense1(torch.cat([f, code], dim=1)))).squeeze(1)

        def forward(self, x, code):
            return self.head(self.features(x), code)

    return ThresholdCNN


_CNN = None


def ThresholdCNN(*args, **kwargs):  # noqa: N802 - a class, built lazily so that importing this module needs no torch
    """The network (a ``torch.nn.Module``); see the module docstring. Arguments: ``channels``,
    ``hidden``, ``n_variants``, ``grid_points``."""
    global _CNN
    if _CNN is None:
        _CNN = _module_class()
    return _CNN(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# uniform-field baseline


_SNAP_RAD = 1e-6


class UniformFieldBaseline:
    """Threshold from a cell variant's direction map (uniform field), see the module docstring.

    Parameters
    ----------
    points : (m, 3) array, unit directions in the cell frame (z towards the pia).
    thresholds_v_per_m : (n_variants, m) array, uniform-field threshold |E| (V/m) per direction.
    variants : the variant numbers of the rows of ``thresholds_v_per_m``.
    """

    def __init__(self, points, thresholds_v_per_m, variants=(0, 1)):
        from scipy.spatial import ConvexHull, cKDTree

        p = np.asarray(points, float)
        t = np.asarray(thresholds_v_per_m, float)
        if p.ndim != 2 or p.shape[1] != 3 or len(p) < 4:
            raise InputError(f"direction map needs (m >= 4, 3) directions, found {p.shape}.", field="points")
        if t.shape != (len(variants), len(p)) or not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise InputError(f"direction map thresholds must be positive and finite, shape {(len(variants), len(p))}, "
                             f"found shape {t.shape}.", field="thresholds_v_per_m")
        self.points = p / np.linalg.norm(p, axis=1, keepdims=True)
        self.thresholds_v_per_m = t
        self.variants = tuple(int(v) for v in variants)
        self._log = np.log(t)
        self._triangles = ConvexHull(self.points).simplices  # spherical Delaunay triangulation
        self._inverse = np.linalg.inv(self.points[self._triangles].transpose(0, 2, 1))  # (T, 3, 3): d -> corner weights
        incident = [[] for _ in range(len(p))]
        for k, tri in enumerate(self._triangles):
            for v in tri:
                incident[v].append(k)
        width = max(len(i) for i in incident)
        self._incident = np.array([i + [i[0]] * (width - len(i)) for i in incident])
        self._tree = cKDTree(self.points)

    @classmethod
    def from_directions(cls, directions, cell_type: str) -> UniformFieldBaseline:
        """From ``TMSDataset.directions`` (columns cell_type, variant, direction_id, dir_x/y/z, threshold_v_per_m)."""
        d = directions[directions["cell_type"] == cell_type] if len(directions) else directions
        if not len(d):
            raise InputError(f"the dataset holds no direction map for {cell_type}.", field="cell_type")
        variants = sorted(int(v) for v in d["variant"].unique())
        parts = [d[d["variant"] == v].sort_values("direction_id") for v in variants]
        if len({len(p) for p in parts}) != 1:
            raise InputError(f"the direction maps of {cell_type} are incomplete.", field="directions")
        points = parts[0][["dir_x", "dir_y", "dir_z"]].to_numpy(float)
        return cls(points, np.stack([p["threshold_v_per_m"].to_numpy(float) for p in parts]), variants)

    def weights(self, directions) -> tuple[np.ndarray, np.ndarray]:
        """Barycentric interpolation weights on the spherical triangulation.

        Returns
        -------
        corners : (n, 3) int array, direction indices.
        weights : (n, 3) float array, non-negative, summing to 1.
        """
        d = np.asarray(directions, float).reshape(-1, 3)
        norm = np.linalg.norm(d, axis=1)
        if not np.all(np.isfinite(norm)) or np.any(norm == 0):
            raise InputError("field directions must be finite non-zero vectors.", field="directions")
        d = d / norm[:, None]
        distance, nearest = self._tree.query(d)  # chord length ~ angle (rad) when small
        cand = self._incident[nearest]  # (n, k) triangles around the nearest direction
        coef = np.einsum("nkij,nj->nki", self._inverse[cand], d)
        best = np.argmax(coef.min(axis=2), axis=1)
        tri = cand[np.arange(len(d)), best]
        w = coef[np.arange(len(d)), best]
        missed = w.min(axis=1) < -1e-9
        if np.any(missed):  # rare: the containing triangle does not touch the nearest direction
            full = np.einsum("tij,nj->nti", self._inverse, d[missed])
            b = np.argmax(full.min(axis=2), axis=1)
            tri[missed] = b
            w[missed] = full[np.arange(len(b)), b]
        w = np.clip(w, 0.0, None)
        corners = self._triangles[tri]
        w = w / w.sum(axis=1, keepdims=True)
        # a direction within 1e-6 rad of a sampled one (e.g. read back from a float32 grid) takes
        # that sample's value exactly
        snap = distance < _SNAP_RAD
        if np.any(snap):
            corners[snap] = nearest[snap, None]
            w[snap] = (1.0, 0.0, 0.0)
        return corners, w

    def _rows(self, variants, n: int) -> np.ndarray:
        v = np.broadcast_to(np.asarray(variants), (n,))
        lookup = {var: i for i, var in enumerate(self.variants)}
        try:
            return np.array([lookup[int(x)] for x in v], dtype=int) if n else np.zeros(0, int)
        except KeyError as exc:
            raise InputError(f"unknown variant {exc.args[0]}; known: {list(self.variants)}.", field="variants") from None

    def threshold_v_per_m(self, directions, variants) -> np.ndarray:
        """Uniform-field threshold |E| (V/m) along each direction (cell frame) for each variant."""
        corners, w = self.weights(directions)
        rows = self._rows(variants, len(w))
        return np.exp(np.einsum("ni,ni->n", w, self._log[rows[:, None], corners]))

    def predict(self, grids, variants) -> np.ndarray:
        """Baseline threshold |E| at the soma (V/m) of grids (n, 9, 9, 9, 3): the direction map at
        the direction of the field at the soma (the centre of the grid)."""
        g = np.asarray(grids)
        c = g.shape[1] // 2
        return self.threshold_v_per_m(g[:, c, c, c].astype(float), variants)


# ---------------------------------------------------------------------------------------------
# the estimator


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

    Parameters (stored as given; see the module docstring for the design)
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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
        torch = _torch()
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


# ---------------------------------------------------------------------------------------------
# split and metrics


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


# ---------------------------------------------------------------------------------------------
# training all cell types, with the validation report


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
    torch = _torch()
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


HELDOUT_SAMPLE = "heldout_sample.parquet"


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
              "`core.tms.surrogate.load_surrogate(cell_type)`; design in that module's docstring."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# command line (registered by core.__main__)


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

    assets = Path(__file__).resolve().parents[2] / "assets" / "tms"
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
