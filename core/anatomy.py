"""Reference anatomy on the MNI152 2 mm grid, built only from what nilearn ships.

The corticospinal tract (CST) is modelled as a tube of radius ``CST_RADIUS_MM`` around a
polyline through documented MNI waypoints (hand knob of M1, corona radiata, posterior limb of
the internal capsule, cerebral peduncle, pons), kept inside the brain mask. The left tract is
the exact mirror (x -> -x) of the right one, so voxel ``k`` of one tract pairs with voxel ``k``
of the other: asymmetry indices compare homologous voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# MNI mm waypoints of the right CST, from cortex (hand knob) down to the pons.
CST_WAYPOINTS_MM = np.array(
    [
        [38.0, -20.0, 62.0],  # precentral hand knob (M1)
        [28.0, -17.0, 38.0],  # corona radiata
        [22.0, -14.0, 8.0],  # posterior limb of the internal capsule
        [14.0, -20.0, -12.0],  # cerebral peduncle
        [8.0, -26.0, -32.0],  # ventral pons
    ]
)
CST_RADIUS_MM = 6.0
WM_SAMPLE_SIZE = 1500  # voxels of deep white matter read for the global FA feature
VOXEL_VOLUME_ML = 0.008  # 2 mm isotropic


@dataclass(frozen=True)
class Anatomy:
    """MNI152 2 mm reference arrays (all shapes (99, 117, 95), affine voxel -> mm RAS).

    Attributes
    ----------
    template : float32 array, T1 template intensities (0..1).
    wm_probability : float32 array, white-matter probability (0..1).
    brain_mask : bool array.
    affine : (4, 4) float array.
    cst_index : dict ``{"left", "right"}`` -> (n_cst,) flat voxel indices, mirror-paired.
    cst_distance_mm : (n_cst,) distance of each CST voxel to the tract axis (same for both sides).
    cst_depth : (n_cst,) position along the tract, 0 at the cortex to 1 at the pons.
    wm_sample_index : (WM_SAMPLE_SIZE,) flat indices of deep white-matter voxels outside the CST.
    """

    template: np.ndarray
    wm_probability: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    cst_index: dict
    cst_distance_mm: np.ndarray
    cst_depth: np.ndarray
    wm_sample_index: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.template.shape

    def voxel_mm(self, flat_index: np.ndarray) -> np.ndarray:
        """MNI coordinates (n, 3) in mm of flat voxel indices."""
        ijk = np.stack(np.unravel_index(flat_index, self.shape), axis=-1).astype(float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) of each point to a polyline, and the normalised arc position (0..1) of its foot."""
    seg_start, seg_end = polyline[:-1], polyline[1:]
    seg_vec = seg_end - seg_start
    seg_len = np.linalg.norm(seg_vec, axis=1)
    arc_before = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
    rel = points[:, None, :] - seg_start[None]
    t = np.clip(np.einsum("nsk,sk->ns", rel, seg_vec) / seg_len**2, 0.0, 1.0)
    foot = seg_start[None] + t[..., None] * seg_vec[None]
    dist = np.linalg.norm(points[:, None, :] - foot, axis=2)
    nearest = dist.argmin(axis=1)
    rows = np.arange(len(points))
    arc = (arc_before[nearest] + t[rows, nearest] * seg_len[nearest]) / seg_len.sum()
    return dist[rows, nearest], arc


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Build the reference anatomy once per process (about 1 s, no download)."""
    from nilearn import datasets

    template_img = datasets.load_mni152_template(resolution=2)
    affine = template_img.affine.copy()
    template = np.asarray(template_img.get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=2).get_fdata(), dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=2).get_fdata()) > 0.5
    shape = template.shape

    # Right CST: brain voxels within the tube; the left one is its mirror through x = 0.
    inv = np.linalg.inv(affine)
    lo = np.floor((inv[:3, :3] @ (CST_WAYPOINTS_MM.min(0) - CST_RADIUS_MM - 2) + inv[:3, 3])).astype(int)
    hi = np.ceil((inv[:3, :3] @ (CST_WAYPOINTS_MM.max(0) + CST_RADIUS_MM + 2) + inv[:3, 3])).astype(int)
    box = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    box_mm = box @ affine[:3, :3].T + affine[:3, 3]
    dist, arc = _distance_to_polyline(box_mm, CST_WAYPOINTS_MM)
    keep = (dist <= CST_RADIUS_MM) & brain[tuple(box.T)]
    right_ijk, dist, arc = box[keep], dist[keep], arc[keep]
    # Mirror: x = 2 i - 98 on this grid, so i -> (shape_x - 1) - i maps x -> -x exactly.
    left_ijk = right_ijk.copy()
    left_ijk[:, 0] = shape[0] - 1 - right_ijk[:, 0]
    order = np.argsort(np.ravel_multi_index(tuple(right_ijk.T), shape))
    right_flat = np.ravel_multi_index(tuple(right_ijk[order].T), shape)
    left_flat = np.ravel_multi_index(tuple(left_ijk[order].T), shape)

    # Deep white matter outside both tracts, a fixed sample for the global FA feature.
    not_cst = np.ones(template.size, bool)
    not_cst[right_flat] = False
    not_cst[left_flat] = False
    candidates = np.flatnonzero((wm.ravel() > 0.8) & brain.ravel() & not_cst)
    wm_sample = np.sort(np.random.default_rng(20240607).choice(candidates, WM_SAMPLE_SIZE, replace=False))

    return Anatomy(
        template=template / template.max(),
        wm_probability=np.clip(wm, 0.0, 1.0),
        brain_mask=brain,
        affine=affine,
        cst_index={"right": right_flat, "left": left_flat},
        cst_distance_mm=dist[order].astype(np.float32),
        cst_depth=arc[order].astype(np.float32),
        wm_sample_index=wm_sample,
    )
