"""DTI features of an FA map: CST FA per side, its asymmetry, lesion load, white-matter FA."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.anatomy import VOXEL_VOLUME_ML, Anatomy, load_anatomy
from core.errors import InputError

LESION_RATIO_THRESHOLD = 0.55  # a CST voxel is lesioned when FA < 0.55 x its mirror voxel


def dti_features(fa_affected: np.ndarray, fa_unaffected: np.ndarray, fa_wm_sample: np.ndarray) -> dict:
    """DTI features from FA sampled at mirror-paired CST voxels and a white-matter sample.

    Parameters
    ----------
    fa_affected, fa_unaffected : (..., n_cst) FA at homologous CST voxels of the affected and the
        unaffected hemisphere (voxel k of one mirrors voxel k of the other).
    fa_wm_sample : (..., n_wm) FA at deep white-matter voxels.

    Returns
    -------
    dict of (...,) arrays: ``cst_fa_affected``, ``cst_fa_unaffected``, ``cst_fa_asymmetry``
    ((unaffected - affected) / (unaffected + affected), 0 when symmetric), ``cst_lesion_load_ml``
    (volume of affected-CST voxels whose FA is below 0.55 x their mirror voxel), ``wm_fa_mean``.
    """
    arrays = [np.asarray(a, dtype=float) for a in (fa_affected, fa_unaffected, fa_wm_sample)]
    for name, a in zip(("affected CST FA", "unaffected CST FA", "white-matter FA"), arrays):
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name} contains NaN or infinite voxels; expected finite FA values in 0..1.")
    aff, unaff, wm = arrays
    if aff.shape != unaff.shape:
        raise InputError(f"affected and unaffected CST samples differ in shape: {aff.shape} vs {unaff.shape}.")
    mean_aff, mean_unaff = aff.mean(-1), unaff.mean(-1)
    lesioned = aff < LESION_RATIO_THRESHOLD * unaff
    return {
        "cst_fa_affected": mean_aff,
        "cst_fa_unaffected": mean_unaff,
        "cst_fa_asymmetry": (mean_unaff - mean_aff) / (mean_unaff + mean_aff),
        "cst_lesion_load_ml": lesioned.sum(-1) * VOXEL_VOLUME_ML,
        "wm_fa_mean": wm.mean(-1),
    }


def dti_features_from_volume(volume: np.ndarray, affected_hemisphere: str, anatomy: Anatomy | None = None) -> dict:
    """Features of an FA volume on the MNI152 2 mm grid (the path uploaded maps take)."""
    anatomy = anatomy or load_anatomy()
    if volume.shape != anatomy.shape:
        raise InputError(f"FA volume has shape {volume.shape}; expected the MNI152 2 mm grid {anatomy.shape}.")
    if affected_hemisphere not in ("left", "right"):
        raise InputError(f"affected hemisphere must be 'left' or 'right', found {affected_hemisphere!r}.")
    flat = volume.ravel()
    other = "left" if affected_hemisphere == "right" else "right"
    return dti_features(
        flat[anatomy.cst_index[affected_hemisphere]],
        flat[anatomy.cst_index[other]],
        flat[anatomy.wm_sample_index],
    )


def dti_feature_table(fa_affected, fa_unaffected, fa_wm, index) -> pd.DataFrame:
    """DTI features of a batch from FA at mirror-paired CST voxels (n, n_cst) and WM voxels (n, n_wm)."""
    dti = dti_features(fa_affected, fa_unaffected, fa_wm)
    return pd.DataFrame({f"dti.{k}": v for k, v in dti.items()}, index=index)
