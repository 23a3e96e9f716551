"""Raw per-patient data: FA volume and lesion, EMG recording, hand trajectory, and lazy access to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class RawSource(Protocol):
    """Lazy access to a patient's raw data (volumes, signals, trajectories)."""

    def load(self, patient_id: str) -> PatientRaw: ...


@dataclass
class PatientRaw:
    """Raw data of one patient; a modality the patient lacks is None.

    Attributes
    ----------
    fa : (99, 117, 95) float32 FA volume on the MNI152 2 mm grid, or None.
    lesion_mask : boolean volume of the same shape (all False without a lesion), or None.
    affine : (4, 4) voxel -> MNI mm.
    emg : :class:`core.data.EMGRecording` or None.
    trajectory : :class:`core.data.Trajectory` or None.
    """

    patient_id: str
    fa: np.ndarray | None = None
    lesion_mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    emg: object | None = None
    trajectory: object | None = None


@dataclass
class EMGRecording:
    """Surface EMG of one patient.

    Attributes
    ----------
    fs_hz : sampling rate in Hz.
    muscles : muscle names, one per row.
    mep_sweeps_uv : (n_muscles, n_trials, n_sweep_samples) µV, sweeps around single TMS pulses.
    sweep_start_ms : time of each sweep's first sample relative to the pulse (ms).
    voluntary_uv : (n_muscles, n_samples) µV, a voluntary contraction.
    """

    fs_hz: float
    muscles: tuple
    mep_sweeps_uv: np.ndarray
    sweep_start_ms: float
    voluntary_uv: np.ndarray


@dataclass
class Trajectory:
    """Hand marker trajectory of one patient: ``position_mm`` (n_samples, 3) at ``fs_hz``."""

    fs_hz: float
    position_mm: np.ndarray
