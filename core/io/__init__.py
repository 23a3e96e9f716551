"""Readers for real patient data: volumes, diffusion MRI, EMG, kinematics, clinical tables, and
multi-patient uploads that become a :class:`~core.data.Cohort`.

Every reader takes a path, the bytes, or a binary file object (Streamlit's ``UploadedFile``)
plus an optional display ``name``, and returns its data with a ``report``: a list of
:class:`ReportEntry` (``ok`` / ``warning`` / ``error`` with the reason). Bad input raises
:class:`core.errors.InputError` naming the file (``source``), the field, what was expected and
what was found; a multi-patient upload turns a bad per-patient file into an ``error`` entry and
NaN features instead, and never drops a patient.

Accepted formats
----------------
============  ==============================================================================
Volumes       NIfTI-1/2, ``.nii`` / ``.nii.gz``, 3-D (a 4-D file with one volume is fine).
              MNI-space images (sform/qform code 3-5, or a known MNI grid) are resampled to
              the MNI152 2 mm grid; native-space ones are registered (affine, dipy) and need
              review (overlay). No NaN/inf voxels; voxel sizes 0.05-20 mm.
Diffusion     4-D NIfTI + ``.bval`` (s/mm², one row or column) + ``.bvec`` (3 x n FSL, or
              n x 3); at least one b = 0 (b <= 50) and 6 non-collinear directions. The
              ``.bval`` and ``.bvec`` beside the series and named after it (``sub-01_dwi.bval``),
              or the only ones there. Tensor fit (WLS) -> FA (0..1), MD (mm²/s); FA onto the
              MNI grid (a native series: its b0 registered) -> the five ``dti.*`` features.
EMG           EDF/EDF+/BDF/BDF+ (also gzipped, ``.edf.gz``) or CSV (time column + channels). Channels named FDI and ECR,
              one rate >= 1000 Hz, units V/mV/µV/nV (-> µV). TMS pulses from a given list,
              EDF+ annotations ("TMS", "pulse", "trigger", "stim", "MEP"), or a trigger
              channel (rising edges); sweeps -20..80 ms. Voluntary contraction from a given
              window, an annotation ("voluntary", "MVC", "contraction") with a duration, or a
              0/1 channel named "voluntary". -> the six ``emg.*`` features.
Kinematics    C3D (points, POINT:UNITS mm/cm/m) or CSV (time + x, y, z per marker, e.g.
              ``hand_x_mm``). Hand marker by name ("hand", "wrist", "finger"...); gaps
              <= 0.2 s interpolated. >= 2 s at > 30 Hz. -> the four ``kin.*`` features.
Clinical      CSV, TSV (BIDS ``participants.tsv``, "n/a" = missing), XLSX (first sheet). A
              :class:`ColumnMapping` says which column is the patient id, outcome (improvement
              %), responder, site, indication, affected hemisphere, and the type of the others.
              A column of mostly numbers is numeric (its other cells are named as errors);
              cells outside a known scale's range (age, NIHSS, FM-UE, UPDRS-III, ...) warned.
Uploads       A folder or a zip: one clinical table at the top; per patient a folder named by
              its id (``sub-<id>`` accepted, any sub-folders) or files named ``<id>_...``.
              Max upload 1 GiB (``UploadLimits``, ``NEUROPREDICT_MAX_UPLOAD_MB``);
              decompression capped (gzip and zip bombs); zip paths escaping the folder refused.
              NIfTI and EDF/BDF are decompressed header first: the header is judged on the
              first bytes and decompression stops at the size it declares (a 2 GiB bomb is
              refused in milliseconds, with a few MB of memory).
============  ==============================================================================

Typical use (the Upload page)::

    scan = scan_upload(uploaded_zip)                  # files listed, table read
    mapping = scan.mapping                            # show mapping_table(scan.table, mapping)
    result = build_cohort(scan, mapping, name="my-cohort")
    report_frame(result.report)                       # per-file ok / warning / error
    result.cohort                                     # a Cohort for prediction and ablation

One diffusion series (the Upload page's single files, and each patient of ``build_cohort``)::

    bval, bvec = diffusion_companions("sub-01_dwi.nii.gz", uploaded_names)   # InputError if unpaired
    diffusion = diffusion_to_mni(dwi_bytes, bval_bytes, bvec_bytes, names=("sub-01_dwi.nii.gz", bval, bvec))
    diffusion.fa_mni                                  # FA (99, 117, 95) on the MNI152 2 mm grid
    diffusion.needs_review                            # native series: check diffusion.registration

The way back: a cohort's raw data written in the layout above (EDF+, C3D, NIfTI; :mod:`core.io.writers`)::

    data = upload_folder_zip(cohort, patient_ids, measures=["fmue_total_w12"])   # zip bytes
    read_cohort(data, "cohort.zip").cohort            # the same features again
"""

import importlib

__all__ = [
    # report and limits
    "ReportEntry", "report_frame", "worst_status", "UploadLimits", "DEFAULT_LIMITS", "UploadTree", "gunzip_capped", "GzipStream", "read_declared", "DeclaredBytes",
    # volumes
    "Volume", "MNIVolume", "Registration", "read_nifti", "to_mni", "register_to_mni", "load_volume_to_mni",
    # diffusion
    "DiffusionSeries", "TensorMaps", "DiffusionOnMNI", "read_bvals", "read_bvecs", "read_diffusion", "fit_tensor",
    "diffusion_to_mni", "diffusion_companions", "dti_feature_row",
    # EMG
    "EMGSignals", "EMGExtraction", "read_edf", "read_emg_csv", "read_emg", "emg_recording", "emg_feature_row",
    # kinematics
    "MarkerTrajectories", "read_c3d", "read_trajectory_csv", "read_kinematics", "hand_trajectory", "kinematic_feature_row",
    # clinical tables
    "ClinicalTable", "ColumnMapping", "MappedTable", "read_table", "infer_column_mapping", "apply_column_mapping", "mapping_table",
    # multi-patient uploads
    "UploadScan", "UploadedCohort", "scan_upload", "build_cohort", "read_cohort", "classify_file",
    # the way back
    "upload_folder_zip",
]


# Loaded on first use, so that a light module (core.io.safety, or core.io.isolated in its own
# process) does not import pandas, nibabel and dipy with the package.
_HOME = {name: module for module, names in {
    "core.io.diffusion": ('DiffusionOnMNI', 'DiffusionSeries', 'TensorMaps', 'diffusion_companions', 'diffusion_to_mni', 'dti_feature_row', 'fit_tensor', 'read_bvals', 'read_bvecs', 'read_diffusion'),
    "core.io.emg": ('EMGExtraction', 'EMGSignals', 'emg_feature_row', 'emg_recording', 'read_edf', 'read_emg', 'read_emg_csv'),
    "core.io.export": ('upload_folder_zip',),
    "core.io.kinematics": ('MarkerTrajectories', 'hand_trajectory', 'kinematic_feature_row', 'read_c3d', 'read_kinematics', 'read_trajectory_csv'),
    "core.io.report": ('ReportEntry', 'report_frame', 'worst_status'),
    "core.io.safety": ('DEFAULT_LIMITS', 'DeclaredBytes', 'GzipStream', 'UploadLimits', 'UploadTree', 'gunzip_capped', 'read_declared'),
    "core.io.tables": ('ClinicalTable', 'ColumnMapping', 'MappedTable', 'apply_column_mapping', 'infer_column_mapping', 'mapping_table', 'read_table'),
    "core.io.upload": ('UploadedCohort', 'UploadScan', 'build_cohort', 'classify_file', 'read_cohort', 'scan_upload'),
    "core.io.volumes": ('MNIVolume', 'Registration', 'Volume', 'load_volume_to_mni', 'read_nifti', 'register_to_mni', 'to_mni'),
}.items() for name in names}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'core.io' has no attribute {name!r}")
