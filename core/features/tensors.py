"""Fixed-size arrays of each patient's raw data, the inputs of the deep fusion model.

A deep model learns from the raw recordings themselves, so every patient's data are brought to
one shape, whatever their source (synthetic or uploaded):

- ``fa``: the FA map around both corticospinal tracts, on a 4 mm grid: the MNI152 2 mm map
  cropped to x -48..48, y -44..0, z -40..72 mm and averaged over 2 x 2 x 2 voxels,
  shape :data:`FA_CROP_SHAPE` (24, 11, 28);
- ``mep``: the TMS MEP sweeps of FDI and ECR on a 2 kHz grid from -20 to 80 ms after the pulse,
  as the mean and the SD over trials (4 channels x 200 samples, µV);
- ``voluntary``: 1 s of the voluntary contraction of FDI and ECR at 2 kHz (2 x 2000, µV), the
  second of largest RMS;
- ``reach``: the hand trajectory over the recording, resampled to 512 samples: position relative
  to the first sample (mm) and velocity (m/s), 6 x 512.

A patient without a modality gets zeros there and ``False`` in its mask: the model sees the mask,
never a made-up signal. Clinical values are not here: they are the cohort's ``clin.*`` features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError

__all__ = [
    "FA_CROP_SHAPE", "FA_CROP_MM", "FA_CROP_AFFINE", "MEP_SHAPE", "VOLUNTARY_SHAPE", "REACH_SHAPE", "TENSOR_MODALITIES",
    "FusionInputs", "fa_crop", "fa_crop_index", "mep_tensor", "voluntary_tensor", "reach_tensor", "inputs_from_raw",
]

# The crop on the MNI152 2 mm grid (affine: x = 2 i - 98, y = 2 j - 134, z = 2 k - 72): voxel ranges
# covering both CSTs (x -44..44, y -32..-8, z -38..68 mm) with a margin for lesions beside them.
_CROP_2MM = ((25, 73), (45, 67), (16, 72))
FA_CROP_MM = ((-48.0, 48.0), (-44.0, 0.0), (-40.0, 72.0))
FA_CROP_SHAPE = tuple((b - a) // 2 for a, b in _CROP_2MM)  # 4 mm voxels
# Voxel -> MNI mm of the 4 mm crop: each voxel's centre is the mean of its eight 2 mm voxels' centres.
FA_CROP_AFFINE = np.array([[4.0, 0, 0, 2 * _CROP_2MM[0][0] - 98 + 1], [0, 4.0, 0, 2 * _CROP_2MM[1][0] - 134 + 1], [0, 0, 4.0, 2 * _CROP_2MM[2][0] - 72 + 1], [0, 0, 0, 1]])
EMG_GRID_HZ = 2000.0
SWEEP_WINDOW_MS = (-20.0, 80.0)
MEP_SHAPE = (4, 200)  # FDI mean, ECR mean, FDI SD, ECR SD over trials
VOLUNTARY_SHAPE = (2, 2000)
REACH_SHAPE = (6, 512)
TENSOR_MODALITIES = ("dti", "emg", "kin")  # the modalities with raw data; "emg" covers mep and voluntary
_MUSCLES = ("fdi", "ecr")


@dataclass
class FusionInputs:
    """The fusion model's raw inputs of n patients, in one row order.

    Attributes
    ----------
    patient_ids : (n,) patient ids.
    fa : (n, 24, 11, 28) float16 FA (0..1) on the 4 mm crop.
    mep : (n, 4, 200) float16 µV; voluntary : (n, 2, 2000) float16 µV; reach : (n, 6, 512) float16.
    mask : dict modality -> (n,) bool, True where the patient has that modality's raw data.
    """

    patient_ids: np.ndarray
    fa: np.ndarray
    mep: np.ndarray
    voluntary: np.ndarray
    reach: np.ndarray
    mask: dict = field(default_factory=dict)

    ARRAYS = ("fa", "mep", "voluntary", "reach")

    @classmethod
    def empty(cls, patient_ids) -> FusionInputs:
        n = len(patient_ids)
        return cls(np.asarray(patient_ids, dtype=object), np.zeros((n, *FA_CROP_SHAPE), np.float16), np.zeros((n, *MEP_SHAPE), np.float16),
                   np.zeros((n, *VOLUNTARY_SHAPE), np.float16), np.zeros((n, *REACH_SHAPE), np.float16),
                   {m: np.zeros(n, bool) for m in TENSOR_MODALITIES})

    def __len__(self) -> int:
        return len(self.patient_ids)

    def take(self, rows) -> FusionInputs:
        """The inputs of some rows (positions), in that order."""
        rows = np.asarray(rows)
        return FusionInputs(self.patient_ids[rows], *(getattr(self, a)[rows] for a in self.ARRAYS), {m: v[rows] for m, v in self.mask.items()})

    @classmethod
    def concat(cls, parts: list[FusionInputs]) -> FusionInputs:
        return cls(np.concatenate([p.patient_ids for p in parts]), *(np.concatenate([getattr(p, a) for p in parts]) for a in cls.ARRAYS),
                   {m: np.concatenate([p.mask[m] for p in parts]) for m in TENSOR_MODALITIES})

    def reindex(self, patient_ids) -> FusionInputs:
        """The rows of these patients, in their order; InputError naming patients not here."""
        position = {pid: i for i, pid in enumerate(self.patient_ids)}
        missing = [p for p in patient_ids if p not in position]
        if missing:
            raise InputError(f"no fusion inputs for patient(s) {missing[:5]}; rebuild the cache for this cohort.", field="patient_id")
        return self.take([position[p] for p in patient_ids])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects) for ``np.savez``: ids as unicode strings, masks as bool."""
        return {"patient_ids": self.patient_ids.astype(str), **{a: getattr(self, a) for a in self.ARRAYS},
                **{f"mask_{m}": v for m, v in self.mask.items()}}

    @classmethod
    def from_arrays(cls, arrays) -> FusionInputs:
        return cls(np.asarray(arrays["patient_ids"]).astype(object), *(np.asarray(arrays[a]) for a in cls.ARRAYS),
                   {m: np.asarray(arrays[f"mask_{m}"], bool) for m in TENSOR_MODALITIES})


def fa_crop_index() -> np.ndarray:
    """(n_crop_2mm,) flat indices on the MNI152 2 mm grid (99, 117, 95) of the crop, in C order."""
    (i0, i1), (j0, j1), (k0, k1) = _CROP_2MM
    i, j, k = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1), np.arange(k0, k1), indexing="ij")
    return np.ravel_multi_index((i.ravel(), j.ravel(), k.ravel()), (99, 117, 95))


def fa_crop(values_2mm: np.ndarray) -> np.ndarray:
    """FA on the 4 mm crop: (..., 24, 11, 28), each 4 mm voxel the mean of its eight 2 mm voxels.

    ``values_2mm``: whole MNI152 2 mm volumes (..., 99, 117, 95), or FA at the crop's 2 mm voxels
    (..., n) in :func:`fa_crop_index` order.
    """
    v = np.asarray(values_2mm, dtype=np.float32)
    fine = tuple(b - a for a, b in _CROP_2MM)
    if v.shape[-3:] == (99, 117, 95):
        (i0, i1), (j0, j1), (k0, k1) = _CROP_2MM
        v = v[..., i0:i1, j0:j1, k0:k1]
    elif v.shape[-1] == int(np.prod(fine)):
        v = v.reshape(*v.shape[:-1], *fine)
    else:
        raise InputError(f"expected FA on the MNI152 2 mm grid (99, 117, 95) or at the {int(np.prod(fine))} crop voxels; found shape {v.shape}.", field="fa")
    a, b, c = FA_CROP_SHAPE
    return v.reshape(*v.shape[:-3], a, 2, b, 2, c, 2).mean(axis=(-5, -3, -1))


def _resample(x: np.ndarray, n_out: int) -> np.ndarray:
    """Linear resampling of the last axis to ``n_out`` samples spanning the same interval."""
    n_in = x.shape[-1]
    if n_in == n_out:
        return x.astype(np.float32)
    t_in, t_out = np.linspace(0.0, 1.0, n_in), np.linspace(0.0, 1.0, n_out)
    flat = x.reshape(-1, n_in)
    return np.stack([np.interp(t_out, t_in, row) for row in flat]).reshape(*x.shape[:-1], n_out).astype(np.float32)


def _muscle_rows(muscles) -> list[int]:
    names = [str(m).lower() for m in muscles]
    missing = [m for m in _MUSCLES if m not in names]
    if missing:
        raise InputError(f"EMG lacks muscle(s) {missing}; expected channels named {list(_MUSCLES)}.", field="muscles")
    return [names.index(m) for m in _MUSCLES]


def mep_tensor(sweeps_uv: np.ndarray, fs_hz: float, sweep_start_ms: float, muscles) -> np.ndarray:
    """(4, 200) µV: mean and SD over trials of the FDI and ECR sweeps on the 2 kHz -20..80 ms grid.

    ``sweeps_uv``: (n_muscles, n_trials, n_samples) sweeps starting ``sweep_start_ms`` after the pulse.
    """
    sweeps = np.asarray(sweeps_uv, dtype=np.float64)[_muscle_rows(muscles)]
    t = sweep_start_ms + np.arange(sweeps.shape[-1]) * 1000.0 / fs_hz
    grid = SWEEP_WINDOW_MS[0] + np.arange(MEP_SHAPE[1]) * 1000.0 / EMG_GRID_HZ
    if t[0] > grid[0] + 1e-6 or t[-1] < grid[-1] - 1e-6:
        raise InputError(f"MEP sweeps cover {t[0]:g}..{t[-1]:g} ms; expected at least {grid[0]:g}..{grid[-1]:g} ms around the pulse.", field="sweeps")
    on_grid = np.stack([[np.interp(grid, t, trial) for trial in muscle] for muscle in sweeps])  # (2, trials, 200)
    return np.concatenate([on_grid.mean(axis=1), on_grid.std(axis=1)]).astype(np.float32)


def voluntary_tensor(voluntary_uv: np.ndarray, fs_hz: float, muscles) -> np.ndarray:
    """(2, 2000) µV: the 1 s of FDI and ECR voluntary EMG of largest RMS, on a 2 kHz grid.

    A recording shorter than 1 s is resampled onto 2,000 samples as a whole.
    """
    x = np.asarray(voluntary_uv, dtype=np.float64)[_muscle_rows(muscles)]
    if fs_hz != EMG_GRID_HZ:
        duration_s = x.shape[-1] / fs_hz
        x = _resample(x, max(2, int(round(duration_s * EMG_GRID_HZ))))
    n = VOLUNTARY_SHAPE[1]
    if x.shape[-1] <= n:
        return _resample(x, n)
    power = np.convolve((x**2).sum(axis=0), np.ones(n), mode="valid")  # energy of each 1 s window
    start = int(np.argmax(power))
    return x[:, start : start + n].astype(np.float32)


def reach_tensor(position_mm: np.ndarray, fs_hz: float) -> np.ndarray:
    """(6, 512): position relative to the first sample (mm) and velocity (m/s), resampled to 512 samples."""
    p = np.asarray(position_mm, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 4:
        raise InputError(f"expected a trajectory of shape (n_samples >= 4, 3), found {p.shape}.", field="position_mm")
    p = p - p[0]
    v = np.gradient(p, 1.0 / fs_hz, axis=0) / 1000.0
    return _resample(np.concatenate([p, v], axis=1).T, REACH_SHAPE[1])


def inputs_from_raw(raws: list) -> FusionInputs:
    """Fusion inputs of patients from their :class:`~core.data.PatientRaw`, one at a time.

    The general path (uploads); a synthetic cohort makes the same arrays in batches.
    """
    out = FusionInputs.empty([r.patient_id for r in raws])
    for i, raw in enumerate(raws):
        if raw.fa is not None:
            out.fa[i] = fa_crop(raw.fa)
            out.mask["dti"][i] = True
        if raw.emg is not None:
            e = raw.emg
            out.mep[i] = mep_tensor(e.mep_sweeps_uv, e.fs_hz, e.sweep_start_ms, e.muscles)
            out.voluntary[i] = voluntary_tensor(e.voluntary_uv, e.fs_hz, e.muscles)
            out.mask["emg"][i] = True
        if raw.trajectory is not None:
            out.reach[i] = reach_tensor(raw.trajectory.position_mm, raw.trajectory.fs_hz)
            out.mask["kin"][i] = True
    return out
