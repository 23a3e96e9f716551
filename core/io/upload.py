"""A multi-patient upload (a folder or a zip) becomes a :class:`~core.data.Cohort`.

Layout
------
::

    <upload>/                      a folder or a zip (one wrapping folder inside the zip is fine)
      participants.tsv             ONE clinical table at the top: .tsv, .csv or .xlsx
      sub-P01/  (or P01/)          one folder per patient, named by its id ("sub-" optional) ...
        anat/, dwi/, emg/, ...     ... any sub-folders (BIDS-like); files are found by name:
        *FA*.nii.gz                FA map (MNI or native space)                       -> dti.*
        *_dwi.nii.gz + .bval + .bvec   diffusion series (tensor fit, then as FA)      -> dti.*
        *.edf, *.bdf (or .gz), *emg*.csv   EMG with TMS pulses (see core.io.emg)      -> emg.*
        *.c3d, *motion*/*kin*/*reach*/*traj*/*marker*.csv   hand trajectories         -> kin.*
      P02_emg.edf                  ... or flat files whose names start with the patient id

A patient without a file of a modality that others have gets NaN for that modality's features
and an entry in the report; a file that cannot be read gets an ``error`` entry and NaN. No
patient is dropped. Files of patients missing from the table are listed and ignored. DTI
features need the affected hemisphere (a mapped table column).

Two steps for the page: :func:`scan_upload` (lists files, reads the table, guesses the column
mapping) and, once the user confirmed the mapping, :func:`build_cohort`. :func:`read_cohort`
does both with the guessed mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.diffusion import diffusion_companions, diffusion_to_mni, dti_feature_row
from core.io.report import ReportEntry, report_frame
from core.io.safety import DEFAULT_LIMITS, UploadLimits, UploadTree
from core.io.tables import ClinicalTable, ColumnMapping, apply_column_mapping, infer_column_mapping, normalise_patient_id, table_from_bytes

__all__ = ["UploadScan", "UploadedCohort", "UploadRawSource", "scan_upload", "build_cohort", "read_cohort", "classify_file"]

MODALITY_FILES = ("dti", "emg", "kin")
MAX_GRADIENT_FILE_BYTES = 1 << 20  # a .bval/.bvec of 10,000 volumes is ~300 kB: more is a bomb or not a gradient file
FA_MAX = 1.0 + 1e-3  # FA is 0..1; a map up to 1000 is FA x 1000
_NIFTI = re.compile(r"\.nii(\.gz)?$", re.I)
_TABLE_EXT = (".csv", ".tsv", ".xlsx", ".xlsm")
_TOKENS = re.compile(r"[^a-z0-9]+")
_FA_TOKENS = {"fa", "fractionalanisotropy", "fractional"}
_EMG_TOKENS = {"emg", "mep", "tms"}
_KIN_TOKENS = {"motion", "kin", "kinematics", "reach", "reaching", "traj", "trajectory", "trajectories", "marker", "markers", "mocap"}
_TABLE_HINTS = ("participants", "clinical", "patients", "subjects", "cohort", "table", "demographics")


def _tokens(path: str) -> set:
    name = PurePosixPath(path).name.lower()
    name = _NIFTI.sub("", name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    tokens = set(t for t in _TOKENS.split(stem) if t)
    # BIDS entities: "desc-FA" -> also "fa"
    return tokens


def classify_file(path: str) -> str:
    """What a file is, from its name: ``fa``, ``dwi``, ``bval``, ``bvec``, ``emg``, ``kin``,
    ``table`` (a .csv/.tsv/.xlsx without a modality hint) or ``other``."""
    lower = path.lower()
    tokens = _tokens(path)
    if _NIFTI.search(lower):
        if tokens & _FA_TOKENS:
            return "fa"
        if "dwi" in tokens or "dti" in tokens or "diffusion" in tokens:
            return "dwi"
        return "other"
    if lower.endswith(".bval") or lower.endswith(".bvals"):
        return "bval"
    if lower.endswith(".bvec") or lower.endswith(".bvecs"):
        return "bvec"
    if lower.endswith((".edf", ".bdf", ".edf.gz", ".bdf.gz")):
        return "emg"
    if lower.endswith(".c3d"):
        return "kin"
    if lower.endswith((".csv", ".tsv", ".txt")):
        if tokens & _EMG_TOKENS:
            return "emg"
        if tokens & _KIN_TOKENS:
            return "kin"
        return "table" if lower.endswith((".csv", ".tsv")) else "other"
    if lower.endswith((".xlsx", ".xlsm")):
        return "table"
    return "other"


@dataclass(frozen=True)
class FileSet:
    """The file(s) giving one modality of one patient: one path, or (dwi, bval, bvec)."""

    kind: str  # "fa", "dwi", "emg", "kin"
    paths: tuple

    @property
    def modality(self) -> str:
        return "dti" if self.kind in ("fa", "dwi") else self.kind

    @property
    def label(self) -> str:
        return self.paths[0]


@dataclass
class UploadScan:
    """What an upload holds, before any per-patient file is read.

    Attributes
    ----------
    tree : the :class:`~core.io.safety.UploadTree` (folder or zip).
    table_path : path of the clinical table inside the upload.
    table : the :class:`~core.io.tables.ClinicalTable` read from it.
    mapping : the guessed :class:`~core.io.tables.ColumnMapping` (show it, let the user edit it).
    report : findings so far.
    """

    tree: UploadTree
    table_path: str
    table: ClinicalTable
    mapping: ColumnMapping
    report: list = field(default_factory=list)
    _root: str = ""

    def assignment(self, mapping: ColumnMapping | None = None) -> tuple[dict, list, list]:
        """(files by patient id and modality, unassigned paths, findings) under a mapping."""
        mapping = mapping or self.mapping
        if mapping.patient_id not in self.table.frame.columns:
            raise InputError(f"the patient id column {mapping.patient_id!r} is not in the table.", source=self.table_path, field="patient_id")
        ids = [normalise_patient_id(v) for v in self.table.frame[mapping.patient_id] if str(v).strip()]
        return _assign(self.tree.paths, ids, self._root, self.table_path)

    def file_table(self, mapping: ColumnMapping | None = None) -> pd.DataFrame:
        """Patients x modalities: the file used for each (``""`` where there is none)."""
        files, _, _ = self.assignment(mapping)
        mapping = mapping or self.mapping
        ids = [normalise_patient_id(v) for v in self.table.frame[mapping.patient_id] if str(v).strip()]
        return pd.DataFrame(
            {m: [files.get(pid, {}).get(m).label if m in files.get(pid, {}) else "" for pid in ids] for m in MODALITY_FILES},
            index=pd.Index(ids, name="patient_id"),
        )


@dataclass
class UploadedCohort:
    """The result of a multi-patient upload.

    Attributes
    ----------
    cohort : the :class:`~core.data.Cohort` (provenance ``kind = "upload"``), raw data attached.
    report : every finding, per file and per patient.
    registrations : patient id -> :class:`~core.io.volumes.Registration` for volumes registered
        from native space (review their overlays before trusting the DTI features).
    """

    cohort: object
    report: list
    registrations: dict = field(default_factory=dict)

    def report_frame(self) -> pd.DataFrame:
        return report_frame(self.report)


class UploadRawSource:
    """Raw data of uploaded patients, kept in memory as read (FA only inside the brain mask)."""

    def __init__(self):
        self._fa: dict = {}
        self._emg: dict = {}
        self._trajectory: dict = {}

    def add_fa(self, patient_id: str, fa_mni: np.ndarray) -> None:
        from core.anatomy import load_anatomy

        self._fa[patient_id] = np.asarray(fa_mni, np.float32)[load_anatomy().brain_mask]

    def add_emg(self, patient_id: str, recording) -> None:
        self._emg[patient_id] = recording

    def add_trajectory(self, patient_id: str, trajectory) -> None:
        self._trajectory[patient_id] = trajectory

    def load(self, patient_id: str):
        from core.anatomy import load_anatomy
        from core.data.raw import PatientRaw

        anatomy = load_anatomy()
        raw = PatientRaw(patient_id=patient_id, affine=anatomy.affine)
        if patient_id in self._fa:
            volume = np.zeros(anatomy.shape, np.float32)
            volume[anatomy.brain_mask] = self._fa[patient_id]
            raw.fa = volume
        raw.emg = self._emg.get(patient_id)
        raw.trajectory = self._trajectory.get(patient_id)
        return raw


# ---------------------------------------------------------------- scanning


def _common_root(paths: list[str]) -> str:
    """The single wrapping folder of a zip ("cohort/..."), or ""."""
    tops = {PurePosixPath(p).parts[0] for p in paths}
    if len(tops) == 1 and all(len(PurePosixPath(p).parts) > 1 for p in paths):
        return next(iter(tops)) + "/"
    return ""


def scan_upload(source, name: str | None = None, *, table: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> UploadScan:
    """List a folder or zip, read its clinical table and guess the column mapping.

    Parameters
    ----------
    source : folder path, zip path, zip bytes or a zip file object.
    name : display name.
    table : path (inside the upload) of the clinical table, when the top level holds several.

    Raises
    ------
    InputError
        Unsafe or damaged archive (see :class:`~core.io.safety.UploadTree`), no or several
        candidate tables at the top level, or an unreadable table.
    """
    tree = UploadTree.open(source, name, limits)
    if not tree.paths:
        raise InputError("the upload holds no files.", source=tree.name)
    root = _common_root(tree.paths)
    if table is None:
        top = [p for p in tree.paths if "/" not in p[len(root):] and classify_file(p) == "table"]
        if not top:
            raise InputError(
                "no clinical table at the top of the upload; expected one participants.tsv, .csv or .xlsx next to the patient folders.",
                source=tree.name,
            )
        if len(top) > 1:
            hinted = [p for p in top if any(h in PurePosixPath(p).name.lower() for h in _TABLE_HINTS)]
            if len(hinted) != 1:
                raise InputError(f"several candidate clinical tables at the top: {top[:6]}; keep one or choose it.", source=tree.name, field="table")
            top = hinted
        table = top[0]
    elif table not in tree.paths:
        raise InputError(f"no file {table!r} in the upload.", source=tree.name, field="table")
    clinical = table_from_bytes(table, tree.read(table), budget=tree.budget)
    mapping = infer_column_mapping(clinical)
    report = [ReportEntry.ok(tree.name, f"{len(tree.paths)} files; clinical table {table!r}.")] + clinical.report
    return UploadScan(tree, table, clinical, mapping, report, root)


def _patient_of(path: str, ids_lower: dict, root: str) -> str | None:
    rel = path[len(root):] if root and path.startswith(root) else path
    parts = PurePosixPath(rel).parts
    for part in parts[:-1]:
        pid = ids_lower.get(normalise_patient_id(part).lower())
        if pid is not None:
            return pid
    name = parts[-1]
    # Flat layout: "P01_emg.edf", "sub-P01_ses-1_dwi.nii.gz".
    head = re.split(r"[_.]", name, maxsplit=1)[0]
    return ids_lower.get(normalise_patient_id(head).lower())


def _assign(paths: list[str], ids: list[str], root: str, table_path: str) -> tuple[dict, list, list]:
    ids_lower = {pid.lower(): pid for pid in ids}
    found: dict = {}
    companions: dict = {}  # patient id -> its .bval/.bvec paths
    unassigned, report = [], []
    for path in paths:
        if path == table_path:
            continue
        kind = classify_file(path)
        pid = _patient_of(path, ids_lower, root)
        if kind == "table":
            kind = "other"
        if pid is None:
            if kind != "other" or "/" in path[len(root):]:
                unassigned.append(path)
            continue
        if kind in ("bval", "bvec"):
            companions.setdefault(pid, []).append(path)
            continue
        if kind == "other":
            if not PurePosixPath(path).name.lower().endswith((".json", ".md", ".txt")):
                report.append(ReportEntry.warning(path, "not recognised as an FA map, diffusion series, EMG or trajectory file; ignored.", patient_id=pid))
            continue
        found.setdefault(pid, {}).setdefault("dti" if kind in ("fa", "dwi") else kind, []).append((kind, path))

    files: dict = {}
    for pid, by_modality in found.items():
        for modality, candidates in by_modality.items():
            # An FA map beats a diffusion series (no fit, no registration of the b0 needed).
            candidates = sorted(candidates, key=lambda kp: (kp[0] != "fa", kp[1]))
            kind, path = candidates[0]
            if len(candidates) > 1:
                report.append(ReportEntry.warning(path, f"{len(candidates)} {modality} files for patient {pid}; using this one.", patient_id=pid, modality=modality))
            if kind == "dwi":
                try:
                    bval, bvec = diffusion_companions(path, companions.get(pid, []))
                except InputError as exc:
                    report.append(ReportEntry.from_error(exc, path, patient_id=pid, modality="dti"))
                    continue
                files.setdefault(pid, {})["dti"] = FileSet("dwi", (path, bval, bvec))
            else:
                files.setdefault(pid, {})[modality] = FileSet(kind, (path,))
    return files, unassigned, report


# ---------------------------------------------------------------- building


def _check_fa(data: np.ndarray, source: str) -> None:
    low, high = float(data.min()), float(data.max())
    if low < -1e-3 or high > FA_MAX:
        hint = " Is it FA x 1000? Divide it by 1000." if high > 10 else ""
        raise InputError(f"FA values range from {low:.3g} to {high:.3g}; expected 0..1.{hint}", source=source, field="voxels")


def _nifti_entry(tree, path: str, dims: str):
    """A NIfTI file of the upload: a .nii.gz as its (compressed) bytes, a .nii zip entry
    decompressed header first, so that a bomb behind a NIfTI name is refused at its header."""
    from core.io.volumes import nifti_declared_size

    if path.lower().endswith(".gz"):
        return tree.read(path)
    return tree.read_declared(path, lambda head: nifti_declared_size(head, path, dims))


def _emg_entry(tree, path: str):
    """An EMG file of the upload: an .edf/.bdf zip entry decompressed header first (its header
    declares records x samples), anything else (CSV, .edf.gz) as its bytes."""
    from core.io.emg import edf_declared_size

    if path.lower().endswith((".edf", ".bdf")):
        return tree.read_declared(path, lambda head: edf_declared_size(head, path))
    return tree.read(path)


def _dti_row(tree, files: FileSet, pid, hemisphere, raw_source, registrations):
    from core.io.volumes import nifti_from_bytes, to_mni

    if files.kind == "fa":
        volume = nifti_from_bytes(files.label, _nifti_entry(tree, files.label, "3d"), dims="3d", budget=tree.budget)
        _check_fa(volume.data, files.label)
        placed = to_mni(volume)
        fa, registration, report = placed.data, placed.registration, placed.report
    else:
        dwi, bval, bvec = files.paths
        companions = (tree.read(bval, max_bytes=MAX_GRADIENT_FILE_BYTES), tree.read(bvec, max_bytes=MAX_GRADIENT_FILE_BYTES))
        diffusion = diffusion_to_mni(_nifti_entry(tree, dwi, "4d"), *companions, names=files.paths, limits=tree.limits, budget=tree.budget)
        fa, registration, report = diffusion.fa_mni, diffusion.registration, diffusion.report
    if registration is not None:
        registrations[pid] = registration
    raw_source.add_fa(pid, fa)
    if hemisphere not in ("left", "right"):
        raise InputError("DTI features need the affected hemisphere (left/right); map the hemisphere column of the table.", source=files.label, field="affected_hemisphere")
    return dti_feature_row(fa, hemisphere, pid, source=files.label), list(report)


def _emg_row(tree, files: FileSet, pid, raw_source, emg_options):
    from core.io.emg import emg_feature_row, emg_from_bytes, emg_recording

    signals = emg_from_bytes(files.label, _emg_entry(tree, files.label), budget=tree.budget)
    extraction = emg_recording(signals, **(emg_options or {}))
    raw_source.add_emg(pid, extraction.recording)
    return emg_feature_row(extraction, pid, source=files.label), signals.report + extraction.report


def _kin_row(tree, files: FileSet, pid, raw_source, marker):
    from core.io.kinematics import hand_trajectory, kinematic_feature_row, kinematics_from_bytes

    markers = kinematics_from_bytes(files.label, tree.read(files.label))
    trajectory, found = hand_trajectory(markers, marker)
    raw_source.add_trajectory(pid, trajectory)
    return kinematic_feature_row(trajectory, pid, source=files.label), markers.report + found


def build_cohort(
    scan: UploadScan,
    mapping: ColumnMapping | None = None,
    *,
    name: str = "uploaded",
    emg_options: dict | None = None,
    marker: str | None = None,
    progress=None,
) -> UploadedCohort:
    """Read every patient's files and assemble the Cohort.

    Parameters
    ----------
    scan : from :func:`scan_upload`.
    mapping : the confirmed column mapping (default: the guessed one).
    name : the cohort's name.
    emg_options : keyword arguments of :func:`core.io.emg.emg_recording` (``muscles``,
        ``trigger_channel``, ``voluntary_window_s``) applied to every EMG file.
    marker : hand marker label for every trajectory file (default: found by name).
    progress : optional ``progress(done, total)`` called after each patient.

    Returns
    -------
    UploadedCohort

    Raises
    ------
    InputError
        Only for problems of the table or the mapping (see
        :func:`~core.io.tables.apply_column_mapping`); a bad per-patient file becomes an
        ``error`` entry and NaN features instead.
    """
    from core.data.cohort import Cohort

    mapping = mapping or scan.mapping
    mapped = apply_column_mapping(scan.table, mapping)
    files, unassigned, report = scan.assignment(mapping)
    report = list(scan.report) + list(mapped.report) + report
    for path in unassigned:
        report.append(ReportEntry.warning(path, "belongs to no patient of the clinical table (by folder or file name); ignored."))
    ids = list(mapped.patients.index)
    present = {m for by in files.values() for m in by}
    raw_source = UploadRawSource()
    registrations: dict = {}
    rows: dict = {m: [] for m in MODALITY_FILES}
    hemispheres = mapped.patients["affected_hemisphere"] if "affected_hemisphere" in mapped.patients else pd.Series(None, index=mapped.patients.index, dtype=object)
    readers = {
        "dti": lambda fs, pid: _dti_row(scan.tree, fs, pid, hemispheres.get(pid), raw_source, registrations),
        "emg": lambda fs, pid: _emg_row(scan.tree, fs, pid, raw_source, emg_options),
        "kin": lambda fs, pid: _kin_row(scan.tree, fs, pid, raw_source, marker),
    }
    for done, pid in enumerate(ids, start=1):
        for modality in MODALITY_FILES:
            if modality not in present:
                continue
            fileset = files.get(pid, {}).get(modality)
            if fileset is None:
                report.append(ReportEntry.warning(pid, f"no {modality.upper()} file for this patient; its {modality}.* features are missing (NaN).", patient_id=pid, modality=modality))
                continue
            try:
                row, found = readers[modality](fileset, pid)
                rows[modality].append(row)
                report += [e.with_context(patient_id=pid, modality=modality) for e in found]
            except InputError as exc:
                report.append(ReportEntry.from_error(exc, fileset.label, patient_id=pid, modality=modality))
            except MemoryError:
                report.append(ReportEntry.error(fileset.label, "not enough memory to read this file.", patient_id=pid, modality=modality))
            except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the other patients
                report.append(ReportEntry.error(
                    fileset.label,
                    f"unexpected failure while reading this file ({type(exc).__name__}: {str(exc)[:200]}); its features are missing.",
                    patient_id=pid,
                    modality=modality,
                ))
        if progress is not None:
            progress(done, len(ids))
    for modality in MODALITY_FILES:
        if modality not in present:
            report.append(ReportEntry.ok(scan.tree.name, f"no {modality.upper()} files in this upload; the cohort has no {modality}.* features."))

    index = mapped.patients.index
    tables = [mapped.features]
    for modality in MODALITY_FILES:
        if modality in present:
            tables.append(pd.concat(rows[modality]).reindex(index) if rows[modality] else _empty_features(modality, index))
    features = pd.concat(tables, axis=1)
    clash = features.columns[features.columns.duplicated()].unique().tolist()
    if clash:
        raise InputError(f"the table already holds feature column(s) {clash[:5]} that are computed from the files; rename or drop them.", source=scan.table_path)
    files_json = {pid: {m: list(fs.paths) for m, fs in by.items()} for pid, by in files.items() if pid in set(ids)}
    cohort = Cohort(
        name=name,
        patients=mapped.patients,
        features=features,
        outcomes=mapped.outcomes,
        responder_threshold_pct=float(mapping.responder_threshold_pct),
        provenance={
            "kind": "upload",
            "source": scan.tree.name,
            "table": scan.table_path,
            "mapping": mapping.to_dict(),
            "files": files_json,
            "errors": sum(e.status == "error" for e in report),
            "measures": mapped.measures,
        },
        raw=raw_source,
    )
    return UploadedCohort(cohort, report, registrations)


def _empty_features(modality: str, index: pd.Index) -> pd.DataFrame:
    """All-NaN feature columns of a modality, named exactly as the generator names them."""
    from core.data.schema import FEATURE_DESCRIPTIONS

    columns = [c for c in FEATURE_DESCRIPTIONS if c.startswith(modality + ".")]
    return pd.DataFrame(np.nan, index=index, columns=columns)


def read_cohort(
    source,
    name: str | None = None,
    *,
    mapping: ColumnMapping | None = None,
    cohort_name: str = "uploaded",
    limits: UploadLimits = DEFAULT_LIMITS,
    **options,
) -> UploadedCohort:
    """:func:`scan_upload` then :func:`build_cohort` (with ``mapping`` or the guessed one)."""
    scan = scan_upload(source, name, limits=limits)
    return build_cohort(scan, mapping, name=cohort_name, **options)
