"""The uniform-field baseline of the threshold surrogate: a cell variant's direction map, interpolated.

The approach the CNN is compared with (Aberra et al. 2023's "uniform E-field" estimate): the
threshold of the cell variant in a uniform field along the field direction at the soma, looked up
in its direction map (128 Fibonacci directions, ``core.tms.dataset``), in V/m; the coil threshold
is that divided by |E| at the soma per A/us. The lookup is barycentric interpolation of the log
threshold on the spherical Delaunay triangulation of the directions (the convex hull of the
points): exact at the sampled directions (a direction within 1e-6 rad of one, e.g. read back from
a float32 grid, takes its value), continuous everywhere. A smoother lookup (thin-plate RBF on the
sphere) lowered the baseline's MAPE on L2/3 PC only from 3.1 to 2.9 %: its error is mostly the
non-uniform field, not the interpolation, so this is a fair baseline. The CNN also takes this
baseline's threshold as an input (``core.tms.surrogate.network``).
"""

from __future__ import annotations

import numpy as np

from core.errors import InputError

__all__ = ["UniformFieldBaseline"]

_SNAP_RAD = 1e-6  # rad: a direction this close to a sampled one takes its value exactly


class UniformFieldBaseline:
    """Threshold from a cell variant's direction map (uniform field); see the module docstring.

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
