"""Writers for the formats :mod:`core.io` reads: EDF+/BDF+ (pyedflib), C3D (ezc3d) and gzipped NIfTI.

They write what the readers accept, so that a cohort's raw data can leave the app as files another
tool (or this one) reads back: :mod:`core.io.export` builds an upload folder with them. Output is
the same bytes for the same input (fixed recording dates, no gzip time stamps).
"""

from __future__ import annotations

import datetime
import gzip
import warnings
from pathlib import Path

import numpy as np

__all__ = ["write_edf", "write_c3d", "nifti_gz_bytes"]

# EDF headers carry a start date; a fixed one keeps the file's bytes a function of its samples.
RECORDING_START = datetime.datetime(2000, 1, 1)


def write_edf(path, channels: dict, fs_hz: float, *, units="uV", bdf: bool = False, annotations=(), physical_max: float | None = None) -> Path:
    """Write an EDF+ (or BDF+) file.

    Parameters
    ----------
    path : file to write.
    channels : label -> samples, each an array of shape (n_samples,) in ``units``; the length must be a
        whole number of seconds (EDF data records are 1 s).
    fs_hz : sampling rate of every channel (Hz).
    units : a unit for every channel ("uV", "mV", "V"), or label -> unit.
    bdf : 24-bit BDF+ instead of 16-bit EDF+.
    annotations : (onset s, duration s or -1 for none, text) triples, e.g. ``(1.0, -1, "TMS")``.
    physical_max : the physical range +- this value; default just above each channel's largest
        magnitude, so that 16 bits resolve it finely.
    """
    import pyedflib

    kind = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    digital = 8388607 if bdf else 32767
    writer = pyedflib.EdfWriter(str(path), len(channels), file_type=kind)
    try:
        writer.setStartdatetime(RECORDING_START)
        headers = []
        for label, values in channels.items():
            top = physical_max or float(np.ceil(np.abs(values).max() * 1.05 + 1))
            unit = units[label] if isinstance(units, dict) else units
            headers.append({"label": label, "dimension": unit, "sample_frequency": fs_hz, "physical_max": top, "physical_min": -top,
                            "digital_max": digital, "digital_min": -digital - 1, "transducer": "", "prefilter": ""})
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.asarray(v, dtype=float) for v in channels.values()])
        for onset, duration, text in annotations:
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()
    return Path(path)


def write_c3d(path, markers: dict, fs_hz: float, *, unit: str = "mm", analogs=None, analog_rate_hz: float | None = None) -> Path:
    """Write a C3D file of marker trajectories.

    Parameters
    ----------
    markers : label -> positions of shape (n_samples, 3) in ``unit`` (the same n for every marker).
    fs_hz : marker sampling rate (Hz).
    unit : POINT:UNITS, "mm", "cm" or "m".
    analogs : optional (n_channels, n_analog_samples) analog data at ``analog_rate_hz``.
    """
    import ezc3d

    c3d = ezc3d.c3d()
    labels = list(markers)
    n = len(next(iter(markers.values())))
    c3d["parameters"]["POINT"]["RATE"]["value"] = [fs_hz]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = [unit]
    points = np.ones((4, len(labels), n))
    for i, label in enumerate(labels):
        points[:3, i, :] = np.asarray(markers[label], dtype=float).T
    c3d["data"]["points"] = points
    if analogs is not None:
        c3d["parameters"]["ANALOG"]["RATE"]["value"] = [analog_rate_hz]
        c3d["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(f"a{i}" for i in range(analogs.shape[0]))
        c3d["data"]["analogs"] = analogs[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ezc3d warns about parameters it fills in itself
        c3d.write(str(path))
    return Path(path)


def nifti_gz_bytes(volume, affine, *, space_code: int = 4, dtype=np.uint8) -> bytes:
    """A 3-D volume as ``.nii.gz`` bytes.

    Parameters
    ----------
    volume : 3-D array, e.g. an FA map (0..1).
    affine : (4, 4) voxel -> mm matrix, written as both sform and qform.
    space_code : NIfTI xform code: 4 MNI152 (the readers resample it to the template grid), 1 scanner
        (the readers register it).
    dtype : stored type; an integer type is scaled (slope, intercept), so uint8 keeps FA to 1/255
        in a quarter of float32's size.
    """
    import nibabel as nib

    image = nib.Nifti1Image(np.asarray(volume, np.float32), np.asarray(affine, float))
    image.set_data_dtype(dtype)
    image.header.set_sform(affine, space_code)
    image.header.set_qform(affine, space_code)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
