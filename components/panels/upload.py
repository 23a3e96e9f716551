"""Panels of the Upload page: drop zone, per-file validation, previews, column mapping, build and save.

What was uploaded lives in one :class:`UploadSession` per browser session (one session-state key).
Files are read once, keyed by the sha256 of their bytes (plus the reading options), so a rerun
reads nothing again and a file that fails never costs what was loaded before it: the multi-patient
upload in use stays until another one is read without error (or the user forgets it).

Test seam: :func:`session` returns the facade; AppTest drives the page through the real
``st.file_uploader`` (Streamlit >= 1.50 supports it in AppTest), so no other seam is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import streamlit as st

from components import figures, state
from components.figures import brain_slice_viewer
from components.palette import GREEN, ORANGE, VERMILLION
from components.views import recordings
from core.anatomy import load_anatomy
from core.data.cohort import Cohort
from core.errors import InputError
from core.features.emg import mep_features
from core.features.kinematics import reach_segments, speed_mm_s
from core.io import (
    ColumnMapping,
    ReportEntry,
    UploadedCohort,
    UploadLimits,
    UploadScan,
    apply_column_mapping,
    build_cohort,
    classify_file,
    diffusion_companions,
    diffusion_to_mni,
    emg_recording,
    hand_trajectory,
    mapping_table,
    read_emg,
    read_kinematics,
    read_nifti,
    report_frame,
    scan_upload,
    to_mni,
)
from core.io.tables import COLUMN_TYPES

_SESSION_KEY = "upload"
MiB = 1 << 20
ACCEPTED = ["zip", "nii", "gz", "bval", "bvec", "edf", "bdf", "csv", "tsv", "xlsx", "c3d"]
READ_AS = {"auto": "as named", "table": "clinical table", "emg": "EMG", "kin": "kinematics"}
ROLE_LABELS = {"outcome": "Outcome (improvement %)", "responder": "Responder (yes/no)", "site": "Site",
               "indication": "Indication", "affected_hemisphere": "Affected hemisphere"}
STATUS_STYLE = {"ok": f"background-color: {GREEN}; color: white", "warning": f"background-color: {ORANGE}; color: black",
                "error": f"background-color: {VERMILLION}; color: white"}
COLOUR_MAPS = ["Viridis", "Cividis", "Magma", "Plasma", "Greys"]  # perceptually uniform, colour-blind safe
_NONE = "(none)"


@dataclass
class Loaded:
    """One uploaded file as read: what it is, what was found, and the data (or why it failed)."""

    name: str
    digest: str
    kind: str  # "cohort" (zip or table), "volume", "diffusion", "emg", "kin", "companion"
    report: list
    data: object = None
    error: str | None = None
    raw: bytes | None = None  # kept for cohorts only: each build re-opens the upload
    key: str = ""  # digest and reading options: where the session keeps it

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class UploadSession:
    """What this browser session uploaded; pages reach it only through this module."""

    digests: dict = field(default_factory=dict)  # uploader file id -> sha256
    loaded: dict = field(default_factory=dict)  # read key -> Loaded
    cohort_key: str | None = None  # the multi-patient upload in use
    built: tuple | None = None  # (build key, UploadedCohort)
    saved: str | None = None  # name of the cohort saved last

    @property
    def scan_item(self) -> Loaded | None:
        return self.loaded.get(self.cohort_key) if self.cohort_key else None

    def forget(self) -> None:
        self.cohort_key, self.built = None, None


def session() -> UploadSession:
    return state.session_store(_SESSION_KEY, UploadSession)


# ---------------------------------------------------------------- the spec, from core.io's docstrings


def _md(text: str) -> str:
    text = re.sub(r":(?:func|class|meth|mod):`~?([\w.]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _section(doc: str, start: str, end: str) -> str:
    body = doc.split(start, 1)[1].split(end, 1)[0]
    return re.sub(r"^-+\n", "", body.lstrip("\n"), count=1).strip()


def format_spec() -> None:
    """The accepted formats and the folder layout, as core.io documents them (one source of truth)."""
    import core.io
    from core.io import emg, kinematics, upload

    with st.expander("How to lay out an upload: folder, file names, formats", icon=":material/help:"):
        layout, formats, emg_tab, kin_tab = st.tabs(["Folder layout", "File formats", "EMG convention", "Kinematics convention"])
        try:
            with layout:
                st.code(upload.__doc__.split("::\n\n", 1)[1].split("\n\nA patient", 1)[0].rstrip(), language=None)
                st.markdown(_md(_section(upload.__doc__, "::\n\n", "Two steps")).split("\n\n", 1)[-1].replace("\n", " "))
            with formats:
                rows, table = [], _section(core.io.__doc__, "Accepted formats", "Typical use")
                for line in table.splitlines():
                    if not line.strip(" =-"):
                        continue  # the table's rules
                    if line[:1].strip():
                        rows.append([line[:14].strip(), line[14:].strip()])
                    elif rows and line.strip():
                        rows[-1][1] += " " + line.strip()
                st.markdown("| Data | Accepted |\n|---|---|\n" + "\n".join(f"| {a} | {_md(b)} |" for a, b in rows))
            with emg_tab:
                st.markdown(_md(_section(emg.__doc__, "Convention (what a file must hold)", "Features are those")))
            with kin_tab:
                st.markdown(_md(_section(kinematics.__doc__, "Convention", "Features are those")))
        except (IndexError, AttributeError):  # docstrings reworded: show them whole rather than nothing
            st.code("\n\n".join(m.__doc__ or "" for m in (upload, core.io)), language=None)


def example_upload_zip() -> bytes:
    """The example folder (:data:`core.io.export.EXAMPLE_UPLOAD`): the same bytes as the CLI commands
    :func:`core.cli.example_upload_commands` print."""
    from core.io.export import EXAMPLE_UPLOAD, upload_folder_zip
    from core.synth.config import CohortConfig, presets
    from core.synth.generator import generate_cohort

    e = EXAMPLE_UPLOAD
    config = CohortConfig.from_dict({**presets()[e["preset"]].to_dict(), "name": e["name"], "n_patients": e["n_patients"], "seed": e["seed"]})
    return upload_folder_zip(generate_cohort(config, n_jobs=1), measures=list(e["measures"]))


def example_upload_button() -> None:
    """Nothing to upload yet: an example folder of synthetic patients to download, look into and drop back."""
    from core.cli import example_upload_commands
    from core.io.export import EXAMPLE_UPLOAD

    st.download_button(f"Example folder: {EXAMPLE_UPLOAD['n_patients']} synthetic patients (zip, about 2 MB)", example_upload_zip, file_name="example-upload.zip",
                       mime="application/zip", key="upl-example", icon=":material/folder_zip:", on_click="ignore",
                       help="A clinical table (participants.tsv) and per patient an FA map (NIfTI), EMG with TMS pulses (EDF+) and a reach "
                            "(C3D), some modalities missing as in real data. Unzip it to see the layout, or drop it here as it is. The same "
                            "file from the command line: " + " && ".join(example_upload_commands()))


# ---------------------------------------------------------------- drop zone and reading


def upload_limits() -> UploadLimits:
    return UploadLimits.from_env()


def drop_zone(limits: UploadLimits) -> list:
    """The uploader: a zip of a multi-patient folder, or single files to check and preview."""
    limit_mb = max(1, math.ceil(limits.max_upload_bytes / MiB))
    server_mb = int(st.get_option("server.maxUploadSize"))
    files = st.file_uploader(
        "Drop a zip of a multi-patient folder, or single files to check and preview",
        type=ACCEPTED, accept_multiple_files=True, key="upload-files", max_upload_size=min(limit_mb, server_mb),
        help="Zip: a clinical table at the top and one folder per patient (see 'How to lay out an upload'). Single files: "
             "NIfTI volumes, a 4-D DWI with its .bval and .bvec, EDF/BDF/CSV EMG, C3D/CSV kinematics, CSV/TSV/XLSX tables.",
    )
    if limit_mb > server_mb:
        st.caption(f"NEUROPREDICT_MAX_UPLOAD_MB allows {limit_mb} MB but the server takes at most {server_mb} MB per file "
                   "(server.maxUploadSize in .streamlit/config.toml).")
    return files or []


def reading_options(files) -> dict:
    """Options that change how files are read: trigger channel, hand marker, what a CSV holds."""
    with st.expander("Reading options (EMG trigger channel, hand marker, CSV contents)", icon=":material/tune:"):
        c = st.columns(2)
        trigger = c[0].text_input("EMG trigger channel", key="upl-trigger", placeholder="found by name",
                                  help="Label of the channel carrying the TMS trigger, when pulses are neither annotated nor named 'trigger'.")
        marker = c[1].text_input("Hand marker", key="upl-marker", placeholder="found by name",
                                 help="Label of the hand marker in C3D/CSV trajectories, when it is not named hand, wrist or finger.")
        read_as = {}
        for f in files:
            if f.name.lower().endswith((".csv", ".tsv")):
                read_as[f.name] = st.selectbox(f"Read {f.name}", list(READ_AS), format_func=READ_AS.get, key=f"upl-as-{f.name}")
    return {"trigger": trigger.strip() or None, "marker": marker.strip() or None, "read_as": read_as}


def _digest(s: UploadSession, f) -> str:
    key = (getattr(f, "file_id", None) or f.name, f.size)
    if key not in s.digests:
        s.digests[key] = hashlib.sha256(f.getvalue()).hexdigest()
    return s.digests[key]


def _kind(name: str, read_as: str) -> str:
    lower = name.lower()
    if lower.endswith(".zip"):
        return "cohort"
    if lower.endswith((".nii", ".nii.gz")):
        return "volume"
    if lower.endswith((".bval", ".bvec")):
        return "companion"
    if read_as != "auto":
        return {"table": "cohort"}.get(read_as, read_as)
    kind = classify_file(name)
    return {"table": "cohort", "fa": "volume", "dwi": "volume"}.get(kind, kind)


def load_uploads(files, limits: UploadLimits, options: dict) -> list[Loaded]:
    """Read every uploaded file once (by content digest); a failure is kept as that file's error."""
    s = session()
    blobs = [(f.name, _digest(s, f), f) for f in files]
    companions = {n: (d, f) for n, d, f in blobs if n.lower().endswith((".bval", ".bvec"))}
    items, used = [], {}  # companion file -> whether its diffusion series was read
    for name, digest, f in blobs:
        kind = _kind(name, options["read_as"].get(name, "auto"))
        if kind == "companion":
            continue
        extra = sorted(d for d, _ in companions.values()) if kind == "volume" else []
        key = "|".join([digest, kind, str(options.get("trigger")), str(options.get("marker")), *extra])
        fresh = key not in s.loaded
        if fresh:
            s.loaded[key] = _read(kind, name, digest, f.getvalue(), companions, limits, options)
        item = s.loaded[key]
        item.key = key
        items.append(item)
        if item.kind == "diffusion":
            used.update(dict.fromkeys(item.data["companions"], item.ok))
        if kind == "cohort" and item.ok and fresh:
            s.cohort_key, s.built = key, None  # the newest good upload is the one in use
    for name in companions:
        if name in used:
            note = ReportEntry.ok(name, "read with its diffusion series.") if used[name] else \
                ReportEntry.warning(name, "not used: its diffusion series could not be read (see its error).")
        else:
            note = ReportEntry.warning(name, "no 4-D diffusion series uploaded with it; upload the DWI, .bval and .bvec together.")
        items.append(Loaded(name, companions[name][0], "companion", [note]))
    if s.scan_item is not None and any(i.digest == s.scan_item.digest and i.kind != "cohort" for i in items):
        s.forget()  # the same file, now read as something else than a table
    keep = {s.cohort_key} | {k for k, v in s.loaded.items() if any(v is i for i in items)}
    s.loaded = {k: v for k, v in s.loaded.items() if k in keep}
    return items


def _read(kind, name, digest, data, companions, limits, options) -> Loaded:
    try:
        if kind == "cohort":
            if name.lower().endswith(".zip"):
                scan, raw = scan_upload(data, name, limits=limits), data
            else:  # a table alone: a one-file upload (features computed elsewhere, or clinical only)
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as archive:
                    archive.writestr(PurePosixPath(name).name, data)
                raw = buffer.getvalue()
                scan = scan_upload(raw, name, table=PurePosixPath(name).name, limits=limits)
            return Loaded(name, digest, kind, list(scan.report), scan, raw=raw)
        if kind == "volume":
            return _read_volume(name, digest, data, companions, limits)
        if kind == "emg":
            emg = read_emg(data, name, limits=limits)
            extraction = emg_recording(emg, trigger_channel=options.get("trigger"))
            return Loaded(name, digest, kind, emg.report + extraction.report, extraction)
        if kind == "kin":
            markers = read_kinematics(data, name, limits=limits)
            trajectory, found = hand_trajectory(markers, options.get("marker"))
            return Loaded(name, digest, kind, markers.report + found, trajectory)
        return Loaded(name, digest, kind, [ReportEntry.warning(name, "not a file type the Upload page reads; ignored.")])
    except InputError as exc:
        return Loaded(name, digest, kind, [ReportEntry.from_error(exc, name)], error=str(exc))
    except MemoryError:
        return Loaded(name, digest, kind, [ReportEntry.error(name, "not enough memory to read this file.")], error=f"{name}: not enough memory to read this file.")


def _read_volume(name, digest, data, companions, limits) -> Loaded:
    volume = read_nifti(data, name, dims="any", limits=limits)
    if volume.data.ndim == 3:
        mni = to_mni(volume)
        return Loaded(name, digest, "volume", mni.report, {"mni": mni, "label": "FA" if classify_file(name) == "fa" else "intensity"})
    bval, bvec = diffusion_companions(name, companions)
    try:
        diffusion = diffusion_to_mni(volume, companions[bval][1].getvalue(), companions[bvec][1].getvalue(), names=(name, bval, bvec), limits=limits)
    except InputError as exc:  # still say which .bval/.bvec went with it
        return Loaded(name, digest, "diffusion", [ReportEntry.from_error(exc, name)], {"companions": [bval, bvec]}, error=str(exc))
    return Loaded(name, digest, "diffusion", diffusion.report,
                  {"mni": diffusion.placed, "fa": diffusion.fa_mni, "label": "FA", "companions": [bval, bvec]})


def choose_cohort_upload(items: list[Loaded]) -> Loaded | None:
    """The multi-patient upload in use: the newest good one, or the user's pick among several."""
    s = session()
    good = [i for i in items if i.kind == "cohort" and i.ok]
    if len(good) > 1:
        keys = [i.key for i in good]
        pick = st.selectbox("Upload to build the cohort from", keys, index=keys.index(s.cohort_key) if s.cohort_key in keys else len(keys) - 1,
                            format_func=lambda k: next(i.name for i in good if i.key == k), key="upl-which")
        if pick != s.cohort_key:
            s.cohort_key, s.built = pick, None
    return s.scan_item


# ---------------------------------------------------------------- the validation report


def show_report(entries: list, key: str) -> None:
    """Per-file findings with a coloured status: errors first, then warnings, then what is fine."""
    frame = report_frame(entries)
    counts = frame["status"].value_counts()
    c = st.columns([1, 1, 1, 1, 2], vertical_alignment="bottom")
    c[0].metric("Sources", frame["source"].nunique(), help="Files, and patients for findings about a patient (e.g. a missing file).")
    for col, status, label in zip(c[1:4], ("ok", "warning", "error"), ("Checks passed", "Warnings", "Errors")):
        col.metric(label, int(counts.get(status, 0)), help="Lines of the report below: a file gets a line for each thing read or checked in it (its format, pulses, markers, space ...).")
    if c[4].toggle("Only warnings and errors", key=f"{key}-problems"):
        frame = frame[frame["status"] != "ok"]
    severity = frame["status"].map({"error": 0, "warning": 1, "ok": 2})
    frame = frame.iloc[np.argsort(severity.to_numpy(), kind="stable")]
    shown = frame[["status", "source", "patient_id", "modality", "field", "message"]].fillna("")
    st.dataframe(shown.style.map(lambda v: STATUS_STYLE.get(v, ""), subset=["status"]), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(frame), 420), column_config={"source": st.column_config.TextColumn("source", width="medium"),
                                                                       "message": st.column_config.TextColumn("message", width="large")})
    st.download_button("Report (CSV)", report_frame(entries).to_csv(index=False).encode(), f"{key}.csv", "text/csv", key=f"{key}-csv", icon=":material/download:")


# ---------------------------------------------------------------- previews


def volume_view(background, affine, overlay, *, key: str, name: str, title: str) -> None:
    """The cohort page's slice viewer with the overlay's threshold, colour map and opacity to choose."""
    finite = overlay[np.isfinite(overlay)]
    top = float(np.percentile(finite[finite > 0], 99.5)) if (finite > 0).any() else 1.0
    top = 1.0 if name == "FA" else top
    c = st.columns(3)
    threshold = c[0].slider(f"{name} threshold", 0.0, top, 0.15 if name == "FA" else round(0.1 * top, 3), top / 100, key=f"{key}-thr",
                            help="Values below it are transparent.")
    colours = c[1].selectbox("Colour map", COLOUR_MAPS, key=f"{key}-cmap")
    opacity = c[2].slider("Overlay opacity", 0.1, 1.0, 0.8, 0.05, key=f"{key}-opacity")
    scale_top = 0.8 if name == "FA" else top  # FA: the cohort page's colour scale, where white matter spreads
    brain_slice_viewer(background, affine, overlay=overlay, key=key, overlay_threshold=threshold, overlay_range=(threshold, max(scale_top, threshold + 1e-6)),
                       overlay_colorscale=colours, overlay_opacity=opacity, overlay_name=name, background_name="T1 template intensity", title=title)


def review_registration(registration, *, key: str, title: str) -> str | None:
    """Overlay of a registered image on the template, and the user's verdict (None until given)."""
    st.metric("Similarity to the template (NMI, 1 = unrelated, 2 = identical)", f"{registration.similarity:.3f}",
              help=f"{registration.kind} registration in {registration.seconds:.1f} s; below 1.05 the result is not trustworthy.")
    volume_view(registration.template, registration.grid_affine, registration.registered, key=f"{key}-overlay", name="registered", title=title)
    return st.radio("Registration", ["accept", "reject"], index=None, horizontal=True, key=f"{key}-verdict",
                    format_func={"accept": "Accept: the brains line up", "reject": "Reject: features from this image are dropped"}.get)


def emg_view(recording, *, key: str) -> None:
    if recording.mep_sweeps_uv.shape[1]:
        mep = mep_features(recording.mep_sweeps_uv, recording.fs_hz, recording.sweep_start_ms)
        figures.show_figure(recordings.mep_sweeps_figure(recording.mep_sweeps_uv, recording.fs_hz, recording.sweep_start_ms, recording.muscles,
                                                         latency_ms=mep["latency_ms"], present=mep["present"]), key=f"{key}-mep", filename=f"{key}-mep")
    else:
        st.info("No TMS pulses found: no MEP sweeps to show.")
    if recording.voluntary_uv.shape[-1]:
        figures.show_figure(recordings.voluntary_emg_figure(recording.voluntary_uv, recording.fs_hz, recording.muscles), key=f"{key}-vol", filename=f"{key}-voluntary")


def trajectory_view(trajectory, *, key: str) -> None:
    speed = speed_mm_s(trajectory.position_mm, trajectory.fs_hz)
    c1, c2 = st.columns(2)
    with c1:
        figures.show_figure(recordings.trajectory_figure(trajectory.position_mm, trajectory.fs_hz), key=f"{key}-traj", filename=f"{key}-trajectory")
    with c2:
        figures.show_figure(recordings.speed_profile_figure(speed, trajectory.fs_hz, reach_segments(trajectory.position_mm, trajectory.fs_hz)),
                            key=f"{key}-speed", filename=f"{key}-speed")


def preview(item: Loaded) -> None:
    """The preview of one single file: volume (slices), diffusion (FA), EMG traces or a trajectory."""
    key = f"upl-{item.digest[:12]}"
    anatomy = load_anatomy()
    if item.kind in ("volume", "diffusion"):
        mni, label = item.data["mni"], item.data["label"]
        if mni.needs_review:
            st.warning("This image was in native space and has been registered to MNI152: check that the brains line up before trusting it.",
                       icon=":material/warning:")
            verdict = review_registration(mni.registration, key=key, title=f"{item.name} registered onto MNI152")
            if verdict and item.kind == "diffusion" and verdict == "accept":
                volume_view(anatomy.template, anatomy.affine, item.data["fa"], key=f"{key}-fa", name="FA", title=f"FA of {item.name} over MNI152")
        else:
            volume_view(anatomy.template, anatomy.affine, mni.data, key=key, name=label, title=f"{item.name} over MNI152 ({mni.method})")
    elif item.kind == "emg":
        emg_view(item.data.recording, key=key)
    elif item.kind == "kin":
        trajectory_view(item.data, key=key)


def patient_preview(cohort: Cohort, patient_id: str) -> None:
    """One uploaded patient's raw data as read: FA over the template, EMG and reaching."""
    raw, anatomy, key = cohort.raw_data(patient_id), load_anatomy(), f"upl-patient-{patient_id}"
    views = (("dti", raw.fa, lambda: volume_view(anatomy.template, anatomy.affine, raw.fa, key=key, name="FA", title=f"{patient_id}: FA over MNI152")),
             ("emg", raw.emg, lambda: emg_view(raw.emg, key=key)), ("kin", raw.trajectory, lambda: trajectory_view(raw.trajectory, key=key)))
    for modality, data, view in views:
        if data is not None:
            view()
        elif modality in cohort.modalities:
            st.info(f"No {modality.upper()} data for {patient_id}: its file is missing or could not be read (see the report).", icon=":material/info:")


# ---------------------------------------------------------------- mapping, files, build, save


def mapping_editor(scan: UploadScan, key: str) -> ColumnMapping:
    """Roles by selectbox, feature columns and their types in an editable table; starts from the guess."""
    guess, columns = scan.mapping, list(scan.table.frame.columns)
    c = st.columns(3)
    chosen = {"patient_id": c[0].selectbox("Patient id", columns, index=columns.index(guess.patient_id), key=f"{key}-patient_id")}
    for i, (role, label) in enumerate(ROLE_LABELS.items(), start=1):
        options = [_NONE, *columns]
        current = getattr(guess, role)
        value = c[i % 3].selectbox(label, options, index=options.index(current) if current in options else 0, key=f"{key}-{role}")
        chosen[role] = None if value == _NONE else value
    threshold = c[0].number_input("Responder threshold (% improvement)", 0.0, 100.0, float(guess.responder_threshold_pct), 5.0, key=f"{key}-threshold",
                                  help="A patient is a responder from this improvement on (ignored when a responder column is chosen).")
    table = mapping_table(scan.table, guess)
    table = table[~table["column"].isin([v for v in chosen.values() if v])]
    table.insert(1, "use", table["role"].eq("feature"))
    table["feature"] = [f or "clin." + (re.sub(r"[^0-9a-z]+", "_", col.lower()).strip("_") or "column") for col, f in zip(table["column"], table["feature"])]
    signature = hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:8]
    st.caption("Other columns: tick those to use as features and confirm their type (binary -> 0/1, categorical -> one column per level, text -> not used).")
    edited = st.data_editor(
        table.drop(columns=["role"]), hide_index=True, width="stretch", key=f"{key}-columns-{signature}", disabled=["column", "missing", "examples"],
        column_config={"use": st.column_config.CheckboxColumn("use", help="Use as a feature"),
                       "type": st.column_config.SelectboxColumn("type", options=list(COLUMN_TYPES), required=True),
                       "feature": st.column_config.TextColumn("feature name", help="Needs a modality prefix: clin., dti., emg. or kin.")},
    )
    used = edited[edited["use"]]
    types = {**guess.types, **dict(zip(edited["column"], edited["type"]))}
    measures = measure_mapping(edited["column"].tolist(), key, guess.measures)
    used = used[~used["column"].isin(list(measures))]  # an outcome measure is never also a feature
    return ColumnMapping(**chosen, features=dict(zip(used["column"], used["feature"])), types=types, responder_threshold_pct=float(threshold), measures=measures)


_DESCRIBE = "Describe it ..."


def measure_mapping(columns: list, key: str, guessed: dict) -> dict:
    """Outcome columns beside the responder outcome: each mapped to a measure of the bank or described (the Any outcome page predicts them).

    ``guessed``: column -> bank key of the columns named as a bank measure, chosen to begin with."""
    from core.data.outcome_bank import load_outcome_bank

    chosen = st.multiselect("Columns holding further outcome measures (FM-UE, ARAT, UPDRS ...)", columns, default=[c for c in guessed if c in columns], key=f"{key}-measures",
                            help="Each becomes an outcome the Any outcome page can evaluate and predict, not a feature. Columns named as a measure of "
                                 "the outcome bank are chosen to begin with: a follow-up score among the features would leak the outcome.")
    bank = {s.key: s.name for s in load_outcome_bank()}
    measures = {}
    for column in chosen:
        c = st.columns([2, 3, 1, 1])
        options = [_DESCRIBE, *bank]
        pick = c[0].selectbox(f"Measure in {column!r}", options, index=options.index(guessed[column]) if guessed.get(column) in bank else 0,
                              format_func=lambda k: bank.get(k, k), key=f"{key}-measure-{column}")
        if pick != _DESCRIBE:
            measures[column] = pick
            continue
        description = c[1].text_input("Description", key=f"{key}-measure-text-{column}", placeholder="what is measured, how, on which body part")
        indication = c[2].selectbox("Indication", ["stroke", "parkinsons"], key=f"{key}-measure-ind-{column}")
        direction = c[3].selectbox("Direction", ["higher_better", "higher_worse"], key=f"{key}-measure-dir-{column}")
        if description.strip():
            measures[column] = {"description": description, "indication": indication, "direction": direction, "name": column}
    return measures


def mapping_summary(scan: UploadScan, mapping: ColumnMapping) -> bool:
    """Apply the mapping to the table now, so its problems show before any file is read."""
    try:
        mapped = apply_column_mapping(scan.table, mapping)
    except InputError as exc:
        st.error(str(exc), icon=":material/error:")
        return False
    responders = pd.to_numeric(mapped.outcomes["responder"], errors="coerce")
    st.caption(f"{len(mapped.patients)} patients · {mapped.features.shape[1]} clinical feature column(s) · "
               f"{int(responders.sum())} responders, {int((responders == 0).sum())} non-responders, {int(responders.isna().sum())} without outcome")
    return True


def files_per_patient(scan: UploadScan, mapping: ColumnMapping) -> None:
    files = scan.file_table(mapping)
    present = [m for m in files.columns if files[m].ne("").any()]
    missing = {m: int(files[m].eq("").sum()) for m in present}
    shown = files[present].replace("", "missing") if present else files
    st.caption("Files found per patient (by folder or file name). " + (
        "; ".join(f"{n} patient(s) have no {m.upper()} file: their {m}.* features will be NaN" for m, n in missing.items() if n) or "Every patient has every modality found."))
    st.dataframe(shown.style.map(lambda v: STATUS_STYLE["warning"] if v == "missing" else ""), width="stretch", height=min(38 + 35 * len(files), 320), key="upl-files-table")


def build_key(item: Loaded, mapping: ColumnMapping, options: dict) -> str:
    text = json.dumps([item.digest, mapping.to_dict(), options.get("trigger"), options.get("marker")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(item: Loaded, mapping: ColumnMapping, options: dict, limits: UploadLimits) -> UploadedCohort | None:
    """Read every patient's files with a progress bar; the result is kept in the session."""
    s = session()
    with st.status(f"Reading the files of {len(scan_patients(item.data, mapping))} patients ...", expanded=True) as status:
        bar = st.progress(0.0, text="opening the upload")
        try:
            # A fresh scan: each read spends the upload's decompression budget, so a rebuild starts anew.
            scan = scan_upload(item.raw, item.name, table=item.data.table_path, limits=limits)
            result = build_cohort(scan, mapping, name="uploaded", emg_options={"trigger_channel": options["trigger"]} if options.get("trigger") else None,
                                  marker=options.get("marker"), progress=lambda done, total: bar.progress(done / total, text=f"patient {done} of {total} read"))
        except InputError as exc:
            status.update(label="Not built", state="error")
            st.error(str(exc), icon=":material/error:")
            return None
        status.update(label=f"Read {result.cohort.n_patients} patients", state="complete", expanded=False)
    s.built = (build_key(item, mapping, options), result)
    return result


def scan_patients(scan: UploadScan, mapping: ColumnMapping) -> list:
    return [v for v in scan.table.frame[mapping.patient_id] if str(v).strip()]


def reviewed_cohort(result: UploadedCohort, verdicts: dict) -> Cohort:
    """The cohort with the DTI features of patients whose registration was rejected set to NaN."""
    rejected = sorted(pid for pid, v in verdicts.items() if v == "reject")
    if not rejected:
        return result.cohort
    features = result.cohort.features.copy()
    features.loc[rejected, result.cohort.features_of("dti")] = np.nan
    return replace(result.cohort, features=features, provenance={**result.cohort.provenance, "rejected_registrations": rejected})


def registrations_panel(result: UploadedCohort, key: str) -> dict | None:
    """Every native-space registration reviewed, or None while some are not."""
    if not result.registrations:
        return {}
    st.subheader("Registrations to check")
    st.caption(f"{len(result.registrations)} image(s) were in native space and registered to MNI152. Check each overlay; a rejected "
               "registration drops that patient's DTI features (NaN).")
    pid = st.selectbox("Patient", sorted(result.registrations), key=f"{key}-reg-patient")
    review_registration(result.registrations[pid], key=f"{key}-reg-{pid}", title=f"{pid}: registered image over MNI152")
    verdicts = {p: state.widget_value(f"{key}-reg-{p}-verdict") for p in result.registrations}
    waiting = [p for p, v in verdicts.items() if v is None]
    if waiting:
        st.warning(f"Not checked yet: {', '.join(waiting)}. Save is possible once every registration is accepted or rejected.")
        return None
    return verdicts


def save_form(result: UploadedCohort, verdicts: dict, default_name: str, workspace) -> str | None:
    """Name the cohort and save it; returns the saved name (the caller makes it the current cohort)."""
    with st.form("upl-save"):
        c = st.columns([2, 1], vertical_alignment="bottom")
        name = c[0].text_input("Cohort name", default_name, key="upl-name")
        replace_it = c[1].checkbox("Replace a saved cohort of the same name", key="upl-replace")
        submitted = st.form_submit_button("Save to workspace", type="primary", icon=":material/save:")
    if not submitted:
        return None
    name = name.strip()
    try:
        workspace.save(replace(reviewed_cohort(result, verdicts), name=name), overwrite=replace_it)
    except InputError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    session().saved = name
    return name


def default_name(upload_name: str) -> str:
    stem = re.sub(r"\.(zip|csv|tsv|xlsx)$", "", PurePosixPath(upload_name).name, flags=re.I)
    return re.sub(r"[^0-9A-Za-z _.-]+", "-", stem).strip(" -._")[:64] or "uploaded"
