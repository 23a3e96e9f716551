"""Diffusion MRI: a 4-D series with its b-values and gradient directions, a tensor fit, and the
DTI tract features.

Files (FSL / BIDS convention):

- ``*_dwi.nii[.gz]``: 4-D, one volume per gradient (x, y, z, n);
- ``*.bval``: n b-values in s/mm², one row (or one column), separated by spaces, tabs or commas;
- ``*.bvec``: n unit gradient directions, as 3 rows of n values (FSL) or n rows of 3 values.
  Directions of b = 0 volumes are ignored (they may be 0 or NaN).

The tensor is fitted by weighted least squares (dipy) inside a mask of voxels with signal
(mean b0 above 5% of its 99th percentile); FA (0..1) and MD (mm²/s) are 0 outside it. FA maps
then go onto the MNI grid and give the same five ``dti.*`` features as the synthetic generator
(:func:`dti_feature_row`).

:func:`diffusion_to_mni` is the one path from the three files to an FA map on the MNI152 2 mm
grid, for a single upload and for every patient of a multi-patient one: read and check, fit the
tensor, then resample the FA map (a series in MNI space) or register the mean b0 to the template
and carry the FA map along with the same transform (a native-space series; the registration
needs review). :func:`diffusion_companions` says which ``.bval`` and ``.bvec`` go with a series.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.report import ReportEntry, attribute
from core.io.safety import DEFAULT_LIMITS, Budget, DeclaredBytes, UploadLimits, read_source
from core.io.volumes import MNIVolume, Registration, Volume, nifti_from_bytes, to_mni

__all__ = [
    "DiffusionSeries",
    "TensorMaps",
    "DiffusionOnMNI",
    "read_bvals",
    "read_bvecs",
    "read_diffusion",
    "fit_tensor",
    "diffusion_to_mni",
    "diffusion_companions",
    "dti_feature_row",
]

B0_THRESHOLD = 50.0  # s/mm²: volumes at or below count as b = 0
MIN_DIRECTIONS = 6  # a tensor has 6 unknowns
MAX_B_VALUE = 30_000.0  # s/mm²; above is a unit error (e.g. s/m²)
UNIT_NORM_TOLERANCE = 0.1  # |norm - 1| above this for a diffusion-weighted direction is a warning
MASK_FRACTION = 0.05
COMPANION_SUFFIXES = {"bval": (".bval", ".bvals"), "bvec": (".bvec", ".bvecs")}
_NIFTI_SUFFIX = re.compile(r"\.nii(\.gz)?$", re.I)


@dataclass
class DiffusionSeries:
    """A checked diffusion-weighted series.

    Attributes
    ----------
    data : float32 (x, y, z, n) signal.
    affine : (4, 4) voxel -> world mm.
    bvals : (n,) b-values in s/mm².
    bvecs : (n, 3) unit gradient directions (rows of b = 0 volumes are zero).
    source : the NIfTI file's name; ``bval_source`` and ``bvec_source`` name the other two.
    volume : the :class:`~core.io.volumes.Volume` the data came from.
    report : findings about all three files.
    """

    data: np.ndarray
    affine: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    source: str
    bval_source: str
    bvec_source: str
    volume: Volume
    report: list = field(default_factory=list)

    @property
    def n_volumes(self) -> int:
        return int(self.data.shape[-1])

    @property
    def b0_mask(self) -> np.ndarray:
        return self.bvals <= B0_THRESHOLD


@dataclass
class TensorMaps:
    """Maps from a tensor fit, in the series' native space.

    Attributes
    ----------
    fa : float32 (x, y, z), fractional anisotropy 0..1 (0 outside the mask).
    md : float32 (x, y, z), mean diffusivity in mm²/s (0 outside the mask).
    b0 : float32 (x, y, z), mean b = 0 signal (the image to register to the template).
    mask : bool (x, y, z), voxels fitted.
    affine : (4, 4) voxel -> world mm.
    source : the series' file name.
    report : findings.
    """

    fa: np.ndarray
    md: np.ndarray
    b0: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    source: str
    report: list = field(default_factory=list)

    def fa_volume(self) -> Volume:
        """The FA map as a :class:`Volume` (native space) for :func:`~core.io.volumes.to_mni`."""
        return self._volume(self.fa, "FA")

    def b0_volume(self) -> Volume:
        """The mean b0 as a :class:`Volume`: register this one, then apply the transform to FA."""
        return self._volume(self.b0, "b0")

    def _volume(self, data, what):
        import nibabel as nib

        voxel = tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))
        orientation = "".join(nib.aff2axcodes(self.affine))
        return Volume(data, self.affine, f"{self.source} ({what})", 0, "scanner", orientation, voxel, [])


_NUMBER_SPLIT = re.compile(r"[\s,;]+")


def number_rows(text: str, source: str) -> list[list[float]]:
    """Rows of numbers from a whitespace/comma-separated text file; InputError naming a bad token."""
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        row = []
        for token in _NUMBER_SPLIT.split(line):
            if not token:
                continue
            try:
                row.append(float(token))
            except ValueError:
                raise InputError(
                    f"line {line_no}: expected numbers separated by spaces, found {token[:40]!r}.", source=source, field=f"line {line_no}"
                ) from None
        rows.append(row)
    if not rows:
        raise InputError("the file holds no numbers.", source=source)
    return rows


def _text(source, name, limits) -> tuple[str, str]:
    label, raw = read_source(source, name, limits)
    if b"\x00" in raw[:4096]:
        raise InputError("expected a text file of numbers, found binary data.", source=label)
    try:
        return label, raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return label, raw.decode("latin-1")


def read_bvals(source, name: str | None = None, *, limits: UploadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """b-values (n,) in s/mm² from a ``.bval`` file (one row or one column).

    Raises
    ------
    InputError
        Not numbers, not one row or column, negative, non-finite, or implausibly large values.
    """
    label, text = _text(source, name, limits)
    return parse_bvals(number_rows(text, label), label)


def parse_bvals(rows, label) -> np.ndarray:
    if len(rows) == 1:
        values = rows[0]
    elif all(len(r) == 1 for r in rows):
        values = [r[0] for r in rows]
    else:
        raise InputError(f"expected the b-values on one row (or one column), found {len(rows)} rows of {sorted({len(r) for r in rows})} values.", source=label)
    b = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(b)):
        raise InputError("found NaN or infinite b-values; expected finite values in s/mm².", source=label)
    if b.min() < 0:
        raise InputError(f"found a negative b-value ({b.min():g}); expected values >= 0 s/mm².", source=label)
    if b.max() > MAX_B_VALUE:
        raise InputError(f"found a b-value of {b.max():g}; expected s/mm² (typically 0-3000). Are they in s/m²?", source=label)
    return b


def read_bvecs(source, name: str | None = None, *, limits: UploadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Gradient directions (n, 3) from a ``.bvec`` file: 3 rows of n values (FSL) or n rows of 3.

    NaN entries are kept here (b = 0 volumes may carry them); :func:`read_diffusion` checks them
    against the b-values.
    """
    label, text = _text(source, name, limits)
    return parse_bvecs(number_rows(text, label), label)


def parse_bvecs(rows, label) -> np.ndarray:
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"expected rows of equal length, found rows of {sorted(widths)} values.", source=label)
    table = np.asarray(rows, dtype=float)
    if table.shape[0] == 3:  # FSL: x, y, z rows (also the reading of a 3 x 3 file)
        return table.T.copy()
    if table.shape[1] == 3:
        return table
    raise InputError(f"expected 3 rows of n values (FSL) or n rows of 3 values, found a {table.shape[0]} x {table.shape[1]} table.", source=label)


def read_diffusion(
    dwi, bval, bvec, *, names: tuple | None = None, limits: UploadLimits = DEFAULT_LIMITS, budget: Budget | None = None
) -> DiffusionSeries:
    """Read and check a diffusion series: 4-D NIfTI, ``.bval`` and ``.bvec``.

    Parameters
    ----------
    dwi : path, bytes or binary file object of the 4-D NIfTI, or a 4-D
        :class:`~core.io.volumes.Volume` already read from it.
    bval, bvec : paths, bytes or binary file objects.
    names : optional (dwi name, bval name, bvec name) for messages.
    limits : upload and decompression caps.
    budget : the decompression budget of the upload the files belong to (default: a fresh one).

    Returns
    -------
    DiffusionSeries

    Raises
    ------
    InputError
        Any NIfTI problem (see :func:`~core.io.volumes.read_nifti`), a 3-D image, b-value or
        direction counts that differ from the number of volumes, no b = 0 volume, fewer than 6
        non-collinear diffusion directions, or a zero / NaN direction for a weighted volume.
    """
    names = names or (None, None, None)
    if isinstance(dwi, Volume):
        volume = dwi
    elif isinstance(dwi, DeclaredBytes):  # a zip entry already decompressed header first
        volume = nifti_from_bytes(names[0] or "dwi.nii", dwi, dims="4d", budget=budget or Budget(limits))
    else:
        label, raw = read_source(dwi, names[0], limits)
        volume = nifti_from_bytes(label, raw, dims="4d", budget=budget or Budget(limits))
    bval_label, bval_text = _text(bval, names[1], limits)
    bvec_label, bvec_text = _text(bvec, names[2], limits)
    return series_from_parts(volume, parse_bvals(number_rows(bval_text, bval_label), bval_label), bval_label, number_rows(bvec_text, bvec_label), bvec_label)


def series_from_parts(volume: Volume, bvals: np.ndarray, bval_label: str, bvec_rows, bvec_label: str) -> DiffusionSeries:
    """Check a 4-D volume against its b-values and direction rows (see :func:`read_diffusion`)."""
    label = volume.source
    if volume.data.ndim != 4:
        raise InputError(f"expected a 4-D diffusion series, found shape {volume.data.shape}.", source=label, field="dim")
    n = volume.data.shape[3]
    if len(bvals) != n:
        raise InputError(
            f"lists {len(bvals)} b-values but {label} holds {n} volumes; expected one b-value per volume. "
            "Are the .bval and the image from the same acquisition?",
            source=bval_label,
        )
    bvecs = parse_bvecs(bvec_rows, bvec_label)
    if len(bvecs) != n:
        raise InputError(
            f"lists {len(bvecs)} gradient directions but {label} holds {n} volumes; expected one direction per volume.",
            source=bvec_label,
        )
    report = list(volume.report)
    weighted = bvals > B0_THRESHOLD
    if not np.any(~weighted):
        raise InputError(f"no b = 0 volume (b <= {B0_THRESHOLD:g} s/mm²); a tensor fit needs one.", source=bval_label)
    bvecs = np.where(weighted[:, None], bvecs, 0.0)
    bad = np.flatnonzero(weighted & ~np.all(np.isfinite(bvecs), axis=1))
    if len(bad):
        raise InputError(f"volume {int(bad[0])} (b = {bvals[bad[0]]:g}) has a NaN or infinite direction.", source=bvec_label, field=f"volume {int(bad[0])}")
    norms = np.linalg.norm(bvecs, axis=1)
    zero = np.flatnonzero(weighted & (norms < 1e-6))
    if len(zero):
        raise InputError(f"volume {int(zero[0])} has b = {bvals[zero[0]]:g} but a zero gradient direction.", source=bvec_label, field=f"volume {int(zero[0])}")
    if np.any(np.abs(norms[weighted] - 1) > UNIT_NORM_TOLERANCE):
        report.append(ReportEntry.warning(bvec_label, "some gradient directions are not unit vectors; they were normalised.", field="norm"))
    bvecs[weighted] /= norms[weighted, None]
    # The 6 tensor unknowns are identifiable only if the directions' outer products span 6 dimensions.
    g = bvecs[weighted]
    design = np.stack([g[:, 0] ** 2, g[:, 1] ** 2, g[:, 2] ** 2, g[:, 0] * g[:, 1], g[:, 0] * g[:, 2], g[:, 1] * g[:, 2]], axis=1)
    if len(g) < MIN_DIRECTIONS or np.linalg.matrix_rank(design, tol=1e-3) < MIN_DIRECTIONS:
        raise InputError(
            f"found {len(g)} diffusion-weighted volumes whose directions span fewer than 6 independent tensor components; "
            "a tensor fit needs at least 6 non-collinear directions.",
            source=bvec_label,
        )
    report.append(
        ReportEntry.ok(
            bval_label,
            f"{n} volumes: {int((~weighted).sum())} at b = 0, {int(weighted.sum())} diffusion-weighted "
            f"(b = {bvals[weighted].min():g}-{bvals[weighted].max():g} s/mm²).",
        )
    )
    return DiffusionSeries(volume.data, volume.affine, bvals, bvecs, label, bval_label, bvec_label, volume, report)


def fit_tensor(series: DiffusionSeries, mask: np.ndarray | None = None) -> TensorMaps:
    """Fit the diffusion tensor (weighted least squares, dipy) and return FA and MD maps.

    Parameters
    ----------
    series : a :class:`DiffusionSeries`.
    mask : bool (x, y, z) voxels to fit; default: mean b0 above 5% of its 99th percentile.

    Returns
    -------
    TensorMaps
    """
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    data = series.data
    b0 = data[..., series.b0_mask].mean(axis=-1).astype(np.float32)
    if mask is None:
        level = np.percentile(b0, 99)
        mask = b0 > MASK_FRACTION * level if level > 0 else np.zeros(b0.shape, bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != b0.shape:
        raise InputError(f"mask shape {mask.shape} does not match the image {b0.shape}.", source=series.source, field="mask")
    if not mask.any():
        raise InputError("no voxel has signal in the b = 0 volumes; nothing to fit.", source=series.source, field="voxels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dipy warns about voxels whose signal it clips
        gtab = gradient_table(series.bvals, bvecs=series.bvecs, b0_threshold=B0_THRESHOLD)
        fit = TensorModel(gtab, fit_method="WLS").fit(data, mask=mask)
        fa = np.nan_to_num(np.asarray(fit.fa, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        md = np.nan_to_num(np.asarray(fit.md, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    fa = np.clip(np.where(mask, fa, 0.0), 0.0, 1.0).astype(np.float32)
    md = np.where(mask, np.maximum(md, 0.0), 0.0).astype(np.float32)
    report = [
        ReportEntry.ok(
            series.source,
            f"tensor fitted in {int(mask.sum())} voxels: median FA {np.median(fa[mask]):.3f}, "
            f"median MD {1e3 * np.median(md[mask]):.2f} x 10^-3 mm²/s.",
        )
    ]
    return TensorMaps(fa, md, b0, mask, series.affine, series.source, report)


@dataclass
class DiffusionOnMNI:
    """A diffusion series, its tensor fit, and its FA map on the MNI152 2 mm grid.

    Attributes
    ----------
    series : the checked :class:`DiffusionSeries`.
    maps : the :class:`TensorMaps` in the series' own space.
    fa_mni : float32 (99, 117, 95), FA 0..1 on the MNI152 2 mm grid (0 outside the fitted mask
        and outside the series' field of view).
    placed : the :class:`~core.io.volumes.MNIVolume` that went onto the grid: the FA map itself
        (a series in MNI space, resampled) or the mean b0 (a native-space series, registered;
        show its overlay for review).
    report : findings about the three files, the fit and the placement, in that order.
    """

    series: DiffusionSeries
    maps: TensorMaps
    fa_mni: np.ndarray
    placed: MNIVolume
    report: list = field(default_factory=list)

    @property
    def registration(self) -> Registration | None:
        """The registration of the mean b0 to the template (native-space series), else None."""
        return self.placed.registration

    @property
    def needs_review(self) -> bool:
        """True when the series was registered: a person checks the overlay before trusting FA."""
        return self.placed.needs_review


def diffusion_to_mni(
    dwi, bval, bvec, *, names: tuple | None = None, limits: UploadLimits = DEFAULT_LIMITS, budget: Budget | None = None
) -> DiffusionOnMNI:
    """A diffusion series (4-D NIfTI, ``.bval``, ``.bvec``) -> tensor maps and FA on the MNI152 2 mm grid.

    Steps: :func:`read_diffusion`, :func:`fit_tensor`, then

    - a series whose header declares a standard space (sform/qform code 3-5): the FA map is
      resampled onto the grid (:func:`~core.io.volumes.to_mni`, ``space="mni"``);
    - any other series: the mean b0, which has the template's contrast, is registered to the
      MNI152 template (affine) and the FA map is carried onto the grid with that transform,
      clipped to 0..1 (interpolation may overshoot).

    Parameters
    ----------
    dwi, bval, bvec, names, limits, budget : as :func:`read_diffusion`.

    Returns
    -------
    DiffusionOnMNI

    Raises
    ------
    InputError
        Everything :func:`read_diffusion` and :func:`fit_tensor` raise; an MNI-space series
        covering less than half of the MNI brain; a native series too small to register.
    """
    series = read_diffusion(dwi, bval, bvec, names=names, limits=limits, budget=budget)
    maps = fit_tensor(series)
    if series.volume.in_standard_space:
        placed = to_mni(maps.fa_volume(), space="mni")
        fa_mni = placed.data
    else:
        placed = to_mni(maps.b0_volume(), space="native")
        fa_mni = np.clip(placed.registration.apply(maps.fa_volume()), 0.0, 1.0)
    return DiffusionOnMNI(series, maps, fa_mni, placed, series.report + maps.report + placed.report)


def diffusion_companions(dwi_path: str, candidates) -> tuple[str, str]:
    """The ``.bval`` and ``.bvec`` files that go with a diffusion series, chosen by name.

    Only candidates in the series' folder count. For each of the two, the file named after the
    series (``sub-01_dwi.nii.gz`` -> ``sub-01_dwi.bval``; ``.bvals`` / ``.bvecs`` accepted) wins;
    without one, the folder's only file of that kind is taken.

    Parameters
    ----------
    dwi_path : path (or name) of the 4-D NIfTI, POSIX separators.
    candidates : paths (or names) of the files beside it; files of other kinds are ignored.

    Returns
    -------
    (bval path, bvec path)

    Raises
    ------
    InputError
        Naming ``dwi_path``, with field ``bval`` or ``bvec``: no file of that kind in the folder,
        or several and not exactly one named after the series.
    """
    stem = _NIFTI_SUFFIX.sub("", dwi_path)
    folder = PurePosixPath(dwi_path).parent
    expected_name = PurePosixPath(stem).name
    beside = [str(c) for c in candidates if PurePosixPath(str(c)).parent == folder]
    picked = []
    for kind, suffixes in COMPANION_SUFFIXES.items():
        found = sorted(c for c in beside if c.lower().endswith(suffixes))
        named = [c for c in found if c.rsplit(".", 1)[0] == stem]
        if len(named) == 1 or (not named and len(found) == 1):
            picked.append((named or found)[0])
            continue
        expected = f"expected {expected_name}.{kind} beside it (upload the series, its .bval and its .bvec together)"
        if not found:
            raise InputError(f"found no .{kind} file for this diffusion series; {expected}.", source=dwi_path, field=kind)
        shown = ", ".join(PurePosixPath(c).name for c in (named or found))
        raise InputError(f"found {len(named or found)} .{kind} files ({shown}) and cannot tell which belongs to this diffusion series; "
                         f"expected exactly one, or one named {expected_name}.{kind}.", source=dwi_path, field=kind)
    return picked[0], picked[1]


def dti_feature_row(fa_mni: np.ndarray, affected_hemisphere: str, patient_id: str, *, source: str | None = None) -> pd.DataFrame:
    """The five ``dti.*`` features of one FA map on the MNI152 2 mm grid, as a one-row table.

    The same voxels and formulas as the synthetic generator
    (:func:`core.features.dti_feature_table`): mirror-paired corticospinal-tract voxels of the
    affected and unaffected hemisphere, and the deep white-matter sample.

    Parameters
    ----------
    fa_mni : float (99, 117, 95) FA, 0..1.
    affected_hemisphere : ``"left"`` or ``"right"``.
    patient_id : row index.
    source : file name for messages.
    """
    from core.anatomy import load_anatomy
    from core.features.dti import dti_feature_table

    anatomy = load_anatomy()
    fa_mni = np.asarray(fa_mni)
    if fa_mni.shape != anatomy.shape:
        raise InputError(f"FA volume has shape {fa_mni.shape}; expected the MNI152 2 mm grid {anatomy.shape}.", source=source, field="dim")
    if affected_hemisphere not in ("left", "right"):
        raise InputError(f"affected hemisphere must be 'left' or 'right', found {affected_hemisphere!r}.", source=source, field="affected_hemisphere")
    other = "left" if affected_hemisphere == "right" else "right"
    flat = fa_mni.ravel()
    try:
        return dti_feature_table(
            flat[anatomy.cst_index[affected_hemisphere]][None],
            flat[anatomy.cst_index[other]][None],
            flat[anatomy.wm_sample_index][None],
            pd.Index([patient_id], name="patient_id"),
        )
    except InputError as exc:
        raise attribute(exc, source or "FA map") from None
