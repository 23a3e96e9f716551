"""A cohort's raw data as an upload folder: the files a clinic would drop on the Upload page.

:func:`upload_folder_zip` writes the layout :mod:`core.io.upload` reads (``participants.tsv`` and one
BIDS-like folder per patient), so a cohort leaves the app as files any tool can open and comes back
with the same features. Its use: an example of a valid upload, built from synthetic patients.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.writers import nifti_gz_bytes, write_c3d, write_edf

__all__ = ["continuous_emg", "upload_folder_zip", "UPLOAD_MARKER", "EXAMPLE_UPLOAD"]

# The Upload page's example folder: these patients of the default preset, with these measures.
EXAMPLE_UPLOAD = {"preset": "default", "name": "example", "n_patients": 10, "seed": 11,
                  "measures": ("fmue_total_w12", "arat_total_w12", "updrs3_total_w12", "pdq39_si_w12")}

UPLOAD_MARKER = "RHAND"  # the hand marker's label in the C3D files
# Zip entries carry a date; a fixed one keeps the archive's bytes a function of the cohort.
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)
_DERIVED_CLINICAL = {"clin.indication_pd"}  # rebuilt from the indication column on upload


def continuous_emg(recording, *, pulse_period_s: float = 1.0, voluntary_at_s: float | None = None):
    """A recording's MEP sweeps and voluntary contraction laid out as one continuous recording.

    Parameters
    ----------
    recording : :class:`core.data.EMGRecording` (sweeps around single pulses, and a contraction).
    pulse_period_s : one TMS pulse every this many seconds, the first at ``pulse_period_s``.
    voluntary_at_s : start of the contraction; default 0.5 s after the last sweep.

    Returns
    -------
    (samples (n_muscles, n) µV, pulse times s, contraction start s, contraction duration s). The length
    is a whole number of seconds, as EDF data records need.
    """
    fs = recording.fs_hz
    n_pre = int(round(-recording.sweep_start_ms / 1000 * fs))
    n_muscles, n_trials, n_sweep = recording.mep_sweeps_uv.shape
    n_voluntary = recording.voluntary_uv.shape[-1]
    if voluntary_at_s is None:
        voluntary_at_s = n_trials * pulse_period_s + (n_sweep - n_pre) / fs + 0.5
    total = int(round((voluntary_at_s + n_voluntary / fs + 0.5) * fs))
    total += (-total) % int(fs)
    x = np.zeros((n_muscles, total))
    pulses = []
    for k in range(n_trials):
        at = int(round((1 + k) * pulse_period_s * fs))
        x[:, at - n_pre : at - n_pre + n_sweep] = recording.mep_sweeps_uv[:, k]
        pulses.append(at / fs)
    start = int(round(voluntary_at_s * fs))
    x[:, start : start + n_voluntary] = recording.voluntary_uv
    return x, pulses, start / fs, n_voluntary / fs


def _participants(cohort, ids: list, measures) -> pd.DataFrame:
    """The clinical table: roles, clinical features under their own names, the outcome and the measures."""
    table = pd.DataFrame({"participant_id": [f"sub-{pid}" for pid in ids]}, index=ids)
    for column in ("indication", "site", "affected_hemisphere"):
        if column in cohort.patients:
            table[column] = cohort.patients.loc[ids, column].to_numpy()
    for feature in cohort.features_of("clin") if "clin" in cohort.modalities else []:
        if feature not in _DERIVED_CLINICAL:
            table[feature.split(".", 1)[1]] = cohort.features.loc[ids, feature].to_numpy()
    table["improvement_pct"] = cohort.outcomes.loc[ids, "improvement_pct"].round(2).to_numpy()
    held = cohort.measure_specs()
    for key in held if measures is None else measures:
        if key not in held:
            raise InputError(f"the cohort holds no outcome measure {key!r}; it holds {', '.join(held) or 'none'}.", source=cohort.name, field="measures")
        values = cohort.outcomes.loc[ids, key]
        if values.notna().any():
            table[key] = values.to_numpy()
    return table


def upload_folder_zip(cohort, patient_ids=None, *, measures=None, folder: str = "cohort") -> bytes:
    """Write patients of ``cohort`` as a zip of an upload folder.

    Layout: ``<folder>/participants.tsv`` (patient id, indication, site, affected hemisphere, the
    clinical features under their own names, ``improvement_pct`` and the outcome measures, ``n/a``
    where missing), and per patient ``<folder>/sub-<id>/`` with
    ``dwi/sub-<id>_desc-FA_dwimap.nii.gz`` (FA on the MNI152 2 mm grid, 8-bit), ``emg/sub-<id>_emg.edf``
    (EDF+, FDI and ECR in µV, pulses annotated "TMS" and the contraction "voluntary") and
    ``motion/sub-<id>_motion.c3d`` (the hand marker, ``UPLOAD_MARKER``, in mm). A modality a patient
    lacks has no file, as in a real upload.

    Parameters
    ----------
    cohort : :class:`core.data.Cohort` with raw data (a synthetic or an uploaded cohort).
    patient_ids : which patients, in order; default all.
    measures : outcome-measure columns to write (keys of :meth:`Cohort.measure_specs`); default every
        one the cohort holds.
    folder : name of the folder inside the zip.

    Returns
    -------
    bytes of the zip; the same cohort and patients give the same bytes.

    Raises
    ------
    InputError : the cohort has no raw data, a patient id is not in it, or it holds no such measure.
    """
    ids = list(cohort.patients.index if patient_ids is None else patient_ids)
    unknown = [pid for pid in ids if pid not in cohort.patients.index]
    if unknown:
        raise InputError(f"patient(s) {', '.join(map(str, unknown[:5]))} are not in the cohort.", source=cohort.name, field="patient_ids")
    if not ids:
        raise InputError("no patients to write: choose at least one.", source=cohort.name, field="patient_ids")
    participants = _participants(cohort, ids, measures)  # first: a bad measure is refused before any file is written
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, data: bytes) -> None:
            archive.writestr(zipfile.ZipInfo(f"{folder}/{name}", date_time=_ZIP_DATE), data, compress_type=zipfile.ZIP_DEFLATED)

        scratch = Path(tmp)
        for pid in ids:
            raw, sub = cohort.raw_data(pid), f"sub-{pid}"
            if raw.fa is not None:
                add(f"{sub}/dwi/{sub}_desc-FA_dwimap.nii.gz", nifti_gz_bytes(raw.fa, raw.affine))
            if raw.emg is not None:
                x, pulses, onset, duration = continuous_emg(raw.emg)
                channels = {muscle.upper(): x[i] for i, muscle in enumerate(raw.emg.muscles)}
                notes = [(p, -1, "TMS") for p in pulses] + [(onset, duration, "voluntary")]
                add(f"{sub}/emg/{sub}_emg.edf", write_edf(scratch / f"{pid}.edf", channels, raw.emg.fs_hz, annotations=notes).read_bytes())
            if raw.trajectory is not None:
                c3d = write_c3d(scratch / f"{pid}.c3d", {UPLOAD_MARKER: raw.trajectory.position_mm.astype(float)}, raw.trajectory.fs_hz)
                add(f"{sub}/motion/{sub}_motion.c3d", c3d.read_bytes())
        add("participants.tsv", participants.to_csv(sep="\t", index=False, na_rep="n/a").encode())
    return buffer.getvalue()
