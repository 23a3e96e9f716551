"""Synthetic fractional anisotropy (FA) volumes and the DTI features read from them.

A patient's FA at voxel ``v`` is a closed-form function of the reference anatomy, a handful of
patient parameters and a counter-based noise term ``n(key, v)``. Because nothing depends on
neighbouring voxels, the features can be computed by evaluating only the voxels they read (the
two CSTs and a white-matter sample) and still equal, bit for bit, what the full volume shown on
screen gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.anatomy import VOXEL_VOLUME_ML, Anatomy, load_anatomy
from core.features.dti import dti_features

FA_NOISE_SD = 0.03
LESION_FA_DROP = 0.75  # FA inside a lesion core falls to 25% of normal
WALLERIAN_FA_DROP = 0.30  # FA of the tract below a complete transection falls by 30%


@dataclass(frozen=True)
class FAParameters:
    """What sets one patient's FA map.

    Attributes
    ----------
    noise_key : int, patient key for the voxel noise.
    wm_scale : multiplicative white-matter integrity (1 = typical adult; age lowers it).
    offset : additive scanner (site) offset in FA units.
    affected_hemisphere : "left" or "right".
    lesion_center_mm : (3,) MNI centre of an ellipsoidal lesion, or None.
    lesion_radii_mm : (3,) semi-axes (x, y, z) in mm.
    transection : fraction (0..1) of the CST cross-section the lesion cuts; drives Wallerian
        degeneration of the tract below the lesion.
    noise_scale : multiplier on FA_NOISE_SD.
    cst_scale : multiplicative integrity of both CSTs; None = ``wm_scale``. Separate because
        age-related white-matter decline spares the corticospinal tract relative to association
        fibres (Salat et al. 2005, Neurobiol Aging 26:1215).
    """

    noise_key: int
    wm_scale: float
    offset: float
    affected_hemisphere: str
    lesion_center_mm: tuple | None = None
    lesion_radii_mm: tuple | None = None
    transection: float = 0.0
    noise_scale: float = 1.0
    cst_scale: float | None = None


NOISE_TABLE_BITS = 21  # 2**21 > voxels in the grid, so one patient never reuses a value


@lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    return np.random.default_rng(0x5EED_FA).standard_normal(2**NOISE_TABLE_BITS).astype(np.float32)


def voxel_noise(key, flat_index: np.ndarray) -> np.ndarray:
    """Standard normal noise that depends only on (key, voxel): same value whatever else is drawn.

    A patient's key picks an offset into one fixed table of normal deviates, so evaluating any
    subset of voxels is a gather. ``key`` and ``flat_index`` broadcast against each other.
    """
    mask = (1 << NOISE_TABLE_BITS) - 1
    offset = np.asarray(key, dtype=np.int64) & mask
    return _noise_table()[(np.asarray(flat_index, dtype=np.int64) + offset) & mask]


def lesion_weight(points_mm: np.ndarray, center_mm, radii_mm) -> np.ndarray:
    """Lesion membership (0..1) of points (n, 3): 1 in the core, 0.5 on the ellipsoid surface."""
    if center_mm is None:
        return np.zeros(len(points_mm))
    center, radii = np.asarray(center_mm, float), np.asarray(radii_mm, float)
    q = np.sqrt(sum(((points_mm[:, k] - center[k]) / radii[k]) ** 2 for k in range(3)))
    return np.clip((1.0 - q) / 0.2 + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class VoxelSet:
    """The patient-independent part of FA at a set of voxels, computed once and reused."""

    flat_index: np.ndarray  # (n,) int64
    mm: np.ndarray  # (n, 3) MNI coordinates
    normal_fa: np.ndarray  # (n,) population-typical FA
    cst_side: np.ndarray  # (n,) 0 = not CST, 1 = left CST, 2 = right CST
    inside: np.ndarray  # (n,) bool, inside the brain mask


_SIDE_CODE = {"left": 1, "right": 2}


def voxel_set(flat_index: np.ndarray, anatomy: Anatomy | None = None) -> VoxelSet:
    """Population-typical FA at voxels: grey matter ~0.1, white matter ~0.45, CST core ~0.65."""
    anatomy = anatomy or load_anatomy()
    flat_index = np.asarray(flat_index, dtype=np.int64)
    inside = anatomy.brain_mask.ravel()[flat_index]
    fa = np.where(inside, 0.08 + 0.42 * anatomy.wm_probability.ravel()[flat_index], 0.0)
    side = np.zeros(len(flat_index), np.int8)
    for name, code in _SIDE_CODE.items():
        cst = anatomy.cst_index[name]
        order = np.argsort(cst)
        pos = np.clip(np.searchsorted(cst, flat_index, sorter=order), 0, len(cst) - 1)
        hit = cst[order[pos]] == flat_index
        # High anisotropy along the tract axis, falling towards the tube edge.
        fa[hit] = 0.50 + 0.18 * (1.0 - anatomy.cst_distance_mm[order[pos[hit]]] / 6.0)
        side[hit] = code
    return VoxelSet(flat_index, anatomy.voxel_mm(flat_index), fa, side, inside)


def fa_batch(params: list[FAParameters], voxels: VoxelSet) -> np.ndarray:
    """FA of several patients at one voxel set, shape (n_patients, n_voxels), float32."""
    col = lambda values: np.asarray(values, dtype=float)[:, None]  # noqa: E731
    wm_scale = col([p.wm_scale for p in params])
    cst_scale = col([p.wm_scale if p.cst_scale is None else p.cst_scale for p in params])
    fa = voxels.normal_fa[None, :] * np.where(voxels.cst_side[None, :] > 0, cst_scale, wm_scale)
    lesioned = [i for i, p in enumerate(params) if p.lesion_center_mm is not None]
    if lesioned:
        center = np.array([params[i].lesion_center_mm for i in lesioned], float)
        radii = np.array([params[i].lesion_radii_mm for i in lesioned], float)
        side = np.array([_SIDE_CODE[params[i].affected_hemisphere] for i in lesioned])
        transection = col([params[i].transection for i in lesioned])
        # Wallerian degeneration of the affected tract below the lesion, then the lesion itself.
        below = (voxels.cst_side[None, :] == side[:, None]) & (voxels.mm[None, :, 2] < center[:, None, 2])
        q = np.sqrt(sum(((voxels.mm[None, :, k] - center[:, k, None]) / radii[:, k, None]) ** 2 for k in range(3)))
        weight = np.clip((1.0 - q) / 0.2 + 0.5, 0.0, 1.0)
        fa[lesioned] *= (1.0 - WALLERIAN_FA_DROP * transection * below) * (1.0 - LESION_FA_DROP * weight)
    keys = np.array([p.noise_key for p in params], dtype=np.int64)
    noise = voxel_noise(keys[:, None], voxels.flat_index[None, :])
    out = fa + col([p.offset for p in params]) + FA_NOISE_SD * col([p.noise_scale for p in params]) * noise
    return np.where(voxels.inside, np.clip(out, 0.0, 1.0), 0.0).astype(np.float32)


def fa_at(params: FAParameters, flat_index: np.ndarray, anatomy: Anatomy | None = None) -> np.ndarray:
    """FA of one patient at the given flat voxel indices (any subset, any order), float32."""
    return fa_batch([params], voxel_set(flat_index, anatomy))[0]


def fa_volume(params: FAParameters, anatomy: Anatomy | None = None) -> np.ndarray:
    """Whole FA volume (99, 117, 95), float32, for display."""
    anatomy = anatomy or load_anatomy()
    flat = np.flatnonzero(anatomy.brain_mask.ravel())
    volume = np.zeros(anatomy.template.size, np.float32)
    volume[flat] = fa_at(params, flat, anatomy)
    return volume.reshape(anatomy.shape)


def lesion_mask(params: FAParameters, anatomy: Anatomy | None = None) -> np.ndarray:
    """Boolean lesion volume (inside the ellipsoid), for display; all False without a lesion."""
    anatomy = anatomy or load_anatomy()
    if params.lesion_center_mm is None:
        return np.zeros(anatomy.shape, bool)
    flat = np.flatnonzero(anatomy.brain_mask.ravel())
    mask = np.zeros(anatomy.template.size, bool)
    mask[flat] = lesion_weight(anatomy.voxel_mm(flat), params.lesion_center_mm, params.lesion_radii_mm) >= 0.5
    return mask.reshape(anatomy.shape)


def true_cst_lesion(params: FAParameters, anatomy: Anatomy | None = None) -> tuple[float, float]:
    """Ground truth: (lesion load in mL of the affected CST, transected fraction of its cross-section)."""
    anatomy = anatomy or load_anatomy()
    if params.lesion_center_mm is None:
        return 0.0, 0.0
    cst = anatomy.cst_index[params.affected_hemisphere]
    inside = lesion_weight(anatomy.voxel_mm(cst), params.lesion_center_mm, params.lesion_radii_mm) >= 0.5
    return float(inside.sum() * VOXEL_VOLUME_ML), transected_fraction(anatomy, inside)


def transected_fraction(anatomy: Anatomy, inside: np.ndarray) -> float:
    """Largest fraction of a tract cross-section (1 mm-thick depth bins) that lies in the lesion."""
    bins = np.minimum((anatomy.cst_depth * 40).astype(int), 39)
    total = np.bincount(bins, minlength=40)
    hit = np.bincount(bins, weights=inside.astype(float), minlength=40)
    return float(np.max(np.divide(hit, total, out=np.zeros(40), where=total > 0)))


def dti_features_for(params: FAParameters, anatomy: Anatomy | None = None) -> dict:
    """Features of one patient, reading only the voxels they need."""
    anatomy = anatomy or load_anatomy()
    other = "left" if params.affected_hemisphere == "right" else "right"
    return dti_features(
        fa_at(params, anatomy.cst_index[params.affected_hemisphere], anatomy),
        fa_at(params, anatomy.cst_index[other], anatomy),
        fa_at(params, anatomy.wm_sample_index, anatomy),
    )
