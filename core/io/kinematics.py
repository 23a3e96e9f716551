"""Marker trajectories: C3D (ezc3d) and CSV files, to the generator's kinematic features.

Convention
----------
- **C3D**: 3-D points at the file's point rate (``POINT:RATE``), in ``POINT:UNITS`` (mm, cm or
  m; converted to mm). Samples the system marked invalid (negative residual) are gaps.
- **CSV**: a header row; a time column first (``time``, ``time_s``, ``time_ms`` ...), evenly
  sampled; then x, y, z columns per marker: ``x, y, z`` (one marker), or ``hand_x, hand_y,
  hand_z`` / ``hand.X`` / ``hand x [mm]``. Units in the header (``x_m``, ``x [cm]``), default mm
  (warning). Empty cells are gaps.
- **Marker**: ``marker=`` if given; the only marker; else the first whose name contains
  ``hand``, ``wrist``, ``finger``, ``index``, ``fin`` or ``mcp``.
- **Gaps** up to 0.2 s are filled by linear interpolation (warning); gaps at the start or end
  are trimmed (warning); a longer gap inside the recording is an error.

Features are those of the generator (:func:`core.features.kinematic_feature_table`): reaches
found on the hand speed, their peak velocity, duration and smoothness (SPARC), and tremor power.
The recording must last at least 2 s at a rate above 30 Hz.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.c3d import ezc3d_points
from core.io.emg import numeric_table, time_axis
from core.io.report import ReportEntry, attribute
from core.io.safety import DEFAULT_LIMITS, UploadLimits, read_source, run_isolated

__all__ = ["MarkerTrajectories", "read_c3d", "read_trajectory_csv", "read_kinematics", "hand_trajectory", "kinematic_feature_row"]

MAX_GAP_S = 0.2
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
_HAND = re.compile(r"hand|wrist|finger|index|fin|mcp|wri|hnd", re.I)
_AXIS_COLUMN = re.compile(r"^(?:(?P<marker>.+?)[\s._:-]+)?(?P<axis>[xyz])(?:[\s_]*[\[(]?\s*(?P<unit>mm|cm|m)\s*[\])]?)?$", re.I)
C3D_KEY = 0x50
MAX_SUBFRAMES = 1000  # analog samples (or rotations) per point frame: 100 kHz analog at 100 Hz
MAX_C3D_OBJECTS = 50_000_000  # frames x (points + subframes): what ezc3d builds in memory
# Types (-1 text, 1 byte, 2 int16, 4 float) of the parameters ezc3d reads itself: a wrong type
# there crashes it, so they are checked first.
C3D_PARAMETER_TYPES = {
    ("POINT", "USED"): (2,), ("POINT", "LABELS"): (-1,), ("POINT", "DESCRIPTIONS"): (-1,), ("POINT", "SCALE"): (4,),
    ("POINT", "UNITS"): (-1,), ("POINT", "RATE"): (4,), ("POINT", "DATA_START"): (2,), ("POINT", "FRAMES"): (2, 4),
    ("ANALOG", "USED"): (2,), ("ANALOG", "LABELS"): (-1,), ("ANALOG", "DESCRIPTIONS"): (-1,), ("ANALOG", "GEN_SCALE"): (4,),
    ("ANALOG", "SCALE"): (4,), ("ANALOG", "OFFSET"): (2,), ("ANALOG", "UNITS"): (-1,), ("ANALOG", "RATE"): (4,),
    ("ANALOG", "FORMAT"): (-1,), ("ANALOG", "BITS"): (2,), ("FORCE_PLATFORM", "USED"): (2,), ("FORCE_PLATFORM", "TYPE"): (2,),
    ("FORCE_PLATFORM", "ZERO"): (2,), ("FORCE_PLATFORM", "CORNERS"): (4,), ("FORCE_PLATFORM", "ORIGIN"): (4,),
    ("FORCE_PLATFORM", "CHANNEL"): (2,), ("FORCE_PLATFORM", "CAL_MATRIX"): (4,), ("ROTATION", "USED"): (2,),
    ("ROTATION", "DATA_START"): (2,), ("ROTATION", "RATE"): (4,), ("ROTATION", "LABELS"): (-1,),
    ("ROTATION", "DESCRIPTIONS"): (-1,), ("ROTATION", "RATIO"): (2,),
}
# Of those, the ones ezc3d reads a first value of: an empty array there crashes it too.
C3D_SCALARS = {
    ("POINT", "USED"), ("POINT", "SCALE"), ("POINT", "RATE"), ("POINT", "DATA_START"), ("POINT", "FRAMES"),
    ("ANALOG", "USED"), ("ANALOG", "GEN_SCALE"), ("ANALOG", "RATE"), ("FORCE_PLATFORM", "USED"),
    ("ROTATION", "USED"), ("ROTATION", "DATA_START"), ("ROTATION", "RATE"), ("ROTATION", "RATIO"),
}
C3D_PROCESSORS = {84: "<", 85: "<", 86: ">"}  # Intel, DEC (little-endian words), MIPS (big-endian)


@dataclass
class MarkerTrajectories:
    """Marker positions of one file.

    Attributes
    ----------
    source : file name.
    fs_hz : sampling rate in Hz.
    markers : label -> float64 (n_samples, 3) positions in mm, NaN where the marker was not seen.
    report : findings.
    """

    source: str
    fs_hz: float
    markers: dict
    report: list = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.markers)


# ---------------------------------------------------------------- C3D


def _dec_to_ieee(b: bytes) -> float:
    """A DEC (VAX F) float32 as a Python float: swap its two 16-bit words, read IEEE bits, divide by 4."""
    return struct.unpack("<f", b[2:4] + b[0:2])[0] / 4.0


def check_c3d(raw: bytes, source: str) -> dict:
    """Walk a C3D file's header and parameter section with bounds checks, before ezc3d sees it.

    ezc3d (a C++ library) trusts the counts and offsets inside the file; a damaged file can crash
    the whole process instead of raising. Every count ezc3d will use is checked here against the
    file's size and against the other counts.

    Returns
    -------
    dict with ``n_points``, ``n_frames``, ``rate_hz``, ``float_data``, ``groups`` and ``params``
    (``{(GROUP, NAME): (type, dims, payload bytes)}``).

    Raises
    ------
    InputError
        Wrong key byte, unknown processor type, truncated file, or an inconsistent header or
        parameter section.
    """
    def bad(message, what="header"):
        return InputError(f"{message} The file is damaged or not a C3D file.", source=source, field=what)

    if len(raw) < 512:
        raise InputError(f"the file is truncated: {len(raw)} bytes, shorter than the 512-byte C3D header.", source=source, field="header")
    if raw[1] != C3D_KEY:
        raise InputError(
            f"not a C3D file: expected the key byte 0x50 as the file's second byte, found 0x{raw[1]:02x}.",
            source=source,
            field="magic",
        )
    param_block = raw[0]
    if param_block < 2:
        raise bad(f"the parameter section pointer is {param_block}; expected 2 or more.")
    start = (param_block - 1) * 512
    if len(raw) < start + 512:
        raise InputError("the file is truncated before its parameter section.", source=source, field="parameters")
    processor = raw[start + 3]
    if processor not in C3D_PROCESSORS:
        raise bad(f"unknown processor type {processor} (expected 84 Intel, 85 DEC or 86 MIPS).", "processor")
    order = C3D_PROCESSORS[processor]
    n_blocks = raw[start + 2]
    end = start + n_blocks * 512
    if n_blocks < 1 or end > len(raw):
        raise InputError(f"the parameter section claims {n_blocks} blocks of 512 bytes; the file ends before.", source=source, field="parameters")

    u16 = lambda at: struct.unpack_from(order + "H", raw, at)[0]  # noqa: E731
    n_points, n_analog, first, last, data_block, analog_per_frame = u16(2), u16(4), u16(6), u16(8), u16(16), u16(18)
    scale_bytes = raw[12:16]
    if processor == 85:
        scale = _dec_to_ieee(scale_bytes)
        rate = _dec_to_ieee(raw[20:24])
    else:
        scale, rate = struct.unpack(order + "f", scale_bytes)[0], struct.unpack_from(order + "f", raw, 20)[0]
    if not (np.isfinite(scale) and np.isfinite(rate)):
        raise bad("the header's scale factor or frame rate is not a number.")

    groups, params, group_names = {}, {}, set()
    pos = start + 4
    while pos < end:
        if pos + 2 > end:
            raise bad("a parameter record runs past the parameter section.", "parameters")
        n_char = struct.unpack_from("b", raw, pos)[0]
        if n_char == 0:
            break
        group_id = struct.unpack_from("b", raw, pos + 1)[0]
        name_end = pos + 2 + abs(n_char)
        if group_id == 0 or name_end + 2 > end:
            raise bad("a parameter record is malformed.", "parameters")
        name_bytes = raw[pos + 2 : name_end]
        if not all(32 < c < 127 for c in name_bytes):
            raise bad(f"a parameter name holds non-printable bytes ({name_bytes!r}).", "parameters")
        # Names are compared as stored: ezc3d looks parameters up case-sensitively.
        name = name_bytes.decode("ascii")
        offset = struct.unpack_from(order + "h", raw, name_end)[0]
        body = name_end + 2
        next_pos = name_end + offset if offset > 0 else end
        if offset < 0 or next_pos > end:
            raise bad(f"parameter {name!r} points outside the parameter section.", "parameters")
        if group_id < 0:
            if body + 1 > next_pos or body + 1 + raw[body] > next_pos:
                raise bad(f"group {name!r} has a description running past its record.", "parameters")
            if -group_id in groups or name in group_names:
                raise bad(f"group {name!r} is defined twice.", "parameters")
            groups[-group_id] = name
            group_names.add(name)
        else:
            if body + 2 > next_pos:
                raise bad(f"parameter {name!r} is cut short.", "parameters")
            kind = struct.unpack_from("b", raw, body)[0]
            n_dims = raw[body + 1]
            # ezc3d mishandles text without dimensions; real files always give text a length.
            if kind not in (-1, 1, 2, 4) or n_dims > 7 or (kind == -1 and n_dims == 0):
                raise bad(f"parameter {name!r} has type {kind} and {n_dims} dimensions.", "parameters")
            dims = tuple(raw[body + 2 : body + 2 + n_dims])
            payload_start = body + 2 + n_dims
            n_bytes = abs(kind) * int(np.prod(dims, dtype=np.int64)) if n_dims else abs(kind)
            if payload_start + n_bytes + 1 > next_pos or payload_start + n_bytes + 1 + raw[payload_start + n_bytes] > next_pos:
                raise bad(f"parameter {name!r} holds more data than its record.", "parameters")
            key = (group_id, name)
            if key in params:
                raise bad(f"parameter {name!r} is defined twice.", "parameters")
            params[key] = (kind, dims, raw[payload_start : payload_start + n_bytes])
        if offset == 0:
            break
        pos = next_pos

    named = {}
    for (group_id, name), value in params.items():
        if group_id not in groups:
            raise bad(f"parameter {name!r} belongs to group {group_id}, which is not defined.", "parameters")
        named[(groups[group_id], name)] = value

    def integer(group, name):
        if (group, name) not in named:
            raise bad(f"parameter {group}:{name} is missing.", f"{group}:{name}")
        kind, dims, payload = named[(group, name)]
        if kind != 2 or int(np.prod(dims, dtype=np.int64)) < 1:
            raise bad(f"parameter {group}:{name} should be an integer.", f"{group}:{name}")
        return struct.unpack_from(order + "h", payload, 0)[0]

    def count(group, name):
        """Number of entries of an array parameter (strings: the second dimension)."""
        if (group, name) not in named:
            return None
        kind, dims, _ = named[(group, name)]
        if kind == -1:
            return dims[1] if len(dims) > 1 else (1 if dims else 0)
        return int(np.prod(dims, dtype=np.int64)) if dims else 1

    for key, (kind, _, _) in named.items():
        if key in C3D_PARAMETER_TYPES and kind not in C3D_PARAMETER_TYPES[key]:
            raise bad(f"parameter {key[0]}:{key[1]} has type {kind}; expected {C3D_PARAMETER_TYPES[key][0]}.", f"{key[0]}:{key[1]}")
        if key in C3D_SCALARS and count(*key) < 1:
            raise bad(f"parameter {key[0]}:{key[1]} holds no value.", f"{key[0]}:{key[1]}")

    if "POINT" not in group_names:
        raise bad("the POINT group is missing.", "POINT")
    used = integer("POINT", "USED")
    if used != n_points:
        raise bad(f"the header says {n_points} points but POINT:USED says {used}.", "POINT:USED")
    labels = count("POINT", "LABELS")
    if n_points and (labels is None or labels < n_points):
        raise bad(f"POINT:LABELS names {labels or 0} of {n_points} points.", "POINT:LABELS")
    if ("POINT", "DATA_START") in named and integer("POINT", "DATA_START") != data_block:
        raise bad("POINT:DATA_START disagrees with the header.", "POINT:DATA_START")
    for name in ("DESCRIPTIONS", "UNITS"):
        entries = count("POINT", name)
        if name == "DESCRIPTIONS" and entries is not None and n_points and entries < n_points:
            raise bad(f"POINT:{name} covers {entries} of {n_points} points.", f"POINT:{name}")
    for key in (("POINT", "SCALE"), ("POINT", "RATE")):
        if key not in named:
            raise bad(f"parameter {key[0]}:{key[1]} is missing.", f"{key[0]}:{key[1]}")
    analog_used = integer("ANALOG", "USED") if ("ANALOG", "USED") in named else 0
    if analog_used:
        for key in (("ANALOG", "GEN_SCALE"), ("ANALOG", "RATE")):
            if key not in named:
                raise bad(f"parameter {key[0]}:{key[1]} is missing.", f"{key[0]}:{key[1]}")
    if n_analog and (analog_per_frame < 1 or n_analog % analog_per_frame):
        raise bad(f"{n_analog} analog samples per frame is not a multiple of {analog_per_frame} samples per channel.")
    if analog_used < 0 or analog_used * max(analog_per_frame, 1) != n_analog:
        raise bad(f"ANALOG:USED ({analog_used}) disagrees with the header ({n_analog} analog samples per frame).", "ANALOG:USED")
    for name in ("LABELS", "SCALE", "OFFSET", "UNITS", "DESCRIPTIONS"):
        entries = count("ANALOG", name)
        if analog_used and (entries or 0) < analog_used and (name in ("LABELS", "SCALE", "OFFSET") or entries is not None):
            raise bad(f"ANALOG:{name} covers {entries or 0} of {analog_used} channels.", f"ANALOG:{name}")
    def first_number(group, name):
        if (group, name) not in named:
            return None
        kind, dims, payload = named[(group, name)]
        if kind == 2:
            return struct.unpack_from(order + "h", payload, 0)[0]
        if kind == 4:
            return _dec_to_ieee(payload[:4]) if processor == 85 else struct.unpack_from(order + "f", payload, 0)[0]
        return None

    # ezc3d allocates per-frame objects for analog and rotation subframes whether or not the file
    # holds their data; absurd rates or ratios there are a memory bomb, so they are bounded.
    subframes = {"analog": float(analog_per_frame), "rotation": 0.0}
    for part, group in (("analog", "ANALOG"), ("rotation", "ROTATION")):
        sub_rate = first_number(group, "RATE")
        ratio = first_number(group, "RATIO")
        for value in (ratio, sub_rate / rate if sub_rate is not None and rate > 0 else None):
            if value is None:
                continue
            if not np.isfinite(value) or value < 0 or value > MAX_SUBFRAMES:
                raise bad(f"{group} rate or ratio gives {value!r} samples per point frame; expected 0-{MAX_SUBFRAMES}.", f"{group}:RATE")
            subframes[part] = max(subframes[part], float(value))
    frames_for_cost = max(last - first + 1, 0)
    objects = frames_for_cost * (1 + n_points + subframes["analog"] * (1 + analog_used) + subframes["rotation"])
    if objects > MAX_C3D_OBJECTS:
        raise bad(f"{frames_for_cost} frames with {subframes['analog']:g} analog and {subframes['rotation']:g} rotation subframes are too large to read.")
    if ("ROTATION", "USED") in named and integer("ROTATION", "USED") != 0:
        raise bad("the file holds rotation data (ROTATION:USED > 0), which is not supported; export 3-D points only.", "ROTATION:USED")
    if ("FORCE_PLATFORM", "USED") in named and integer("FORCE_PLATFORM", "USED") < 0:
        raise bad("FORCE_PLATFORM:USED is negative.", "FORCE_PLATFORM:USED")
    if first < 1 or last < first:
        raise bad(f"the header's frame range {first}-{last} is empty.")
    if not (rate > 0):
        raise bad(f"the point rate {rate!r} Hz is not positive.")
    n_frames = last - first + 1
    value_bytes = 4 if scale < 0 else 2
    data_start = (data_block - 1) * 512
    need = data_start + n_frames * (4 * n_points + n_analog) * value_bytes
    if data_block < param_block + n_blocks or need > len(raw):
        raise InputError(
            f"the file is truncated: {n_frames} frames of {n_points} points and {n_analog} analog samples need "
            f"{need} bytes from block {data_block}, the file holds {len(raw)}.",
            source=source,
            field="data",
        )
    return {"n_points": n_points, "n_frames": n_frames, "rate_hz": rate, "float_data": scale < 0, "groups": group_names, "params": named, "order": order}


def read_c3d(source, name: str | None = None, *, limits: UploadLimits = DEFAULT_LIMITS) -> MarkerTrajectories:
    """Read the 3-D points of a C3D file (ezc3d), in mm.

    Raises
    ------
    InputError
        A damaged or truncated file (see :func:`check_c3d`), no points, an unknown unit, or a
        file ezc3d refuses.
    """
    label, raw = read_source(source, name, limits)
    return c3d_from_bytes(label, raw)


def c3d_from_bytes(label: str, raw: bytes) -> MarkerTrajectories:
    info = check_c3d(raw, label)
    if info["n_points"] == 0:
        raise InputError("the file holds no 3-D points (markers); expected at least the hand marker.", source=label, field="POINT:USED")
    # ezc3d is C++: a damage the checks above missed could crash the process, so it reads in a child.
    points, residuals, labels, units_value, rate = run_isolated(ezc3d_points, label, raw, source=label, reader="ezc3d")
    unit = (str(units_value[0]).strip().lower() if len(units_value) else "") or "mm"
    report = []
    if not len(units_value):
        report.append(ReportEntry.warning(label, "POINT:UNITS is not set; positions taken as mm.", field="POINT:UNITS"))
    if unit not in UNIT_TO_MM:
        raise InputError(f"point unit {unit!r}; expected mm, cm or m.", source=label, field="POINT:UNITS")
    if not (np.isfinite(rate) and rate > 0):
        raise InputError(f"point rate {rate!r} Hz; expected a positive rate.", source=label, field="POINT:RATE")
    xyz = points[:3] * UNIT_TO_MM[unit]
    invalid = (residuals[0] < 0) | ~np.all(np.isfinite(xyz), axis=0)  # (n_markers, n_frames)
    markers = {}
    for i in range(xyz.shape[1]):
        key = labels[i] if i < len(labels) and labels[i] else f"marker {i + 1}"
        if key in markers:
            key = f"{key} ({i + 1})"
        track = xyz[:, i, :].T.copy()
        track[invalid[i]] = np.nan
        markers[key] = track
    report.insert(0, ReportEntry.ok(label, f"C3D: {len(markers)} markers, {xyz.shape[2]} frames at {rate:g} Hz ({xyz.shape[2] / rate:g} s), unit {unit}."))
    return MarkerTrajectories(label, rate, markers, report)


# ---------------------------------------------------------------- CSV


def read_trajectory_csv(source, name: str | None = None, *, unit: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> MarkerTrajectories:
    """Read marker trajectories from a CSV/TSV: time column, then x, y, z per marker.

    Parameters
    ----------
    unit : unit of coordinate columns whose header names none (``"mm"``, ``"cm"``, ``"m"``);
        default mm with a warning.

    Raises
    ------
    InputError
        Not text, unparseable, no time column, uneven sampling, a non-numeric cell, a column that
        is not an x/y/z coordinate, or a marker without all three coordinates.
    """
    label, raw = read_source(source, name, limits)
    return trajectory_csv_from_bytes(label, raw, unit=unit)


def trajectory_csv_from_bytes(label: str, raw: bytes, *, unit: str | None = None) -> MarkerTrajectories:
    if unit is not None and unit not in UNIT_TO_MM:
        raise InputError(f"unknown unit {unit!r}; expected mm, cm or m.", field="unit")
    frame = numeric_table(raw, label, allow_gaps=True)
    time_column, t, fs = time_axis(frame, label)
    axes: dict = {}
    assumed = []
    for column in frame.columns:
        if column == time_column:
            continue
        match = _AXIS_COLUMN.match(column.strip())
        if not match:
            raise InputError(
                f"column {column!r} is not a coordinate; expected x, y, z columns such as 'hand_x' or 'x_mm'.",
                source=label,
                field=column,
            )
        marker = (match.group("marker") or "marker").strip()
        column_unit = (match.group("unit") or "").lower()
        if not column_unit:
            column_unit = unit or "mm"
            if unit is None:
                assumed.append(column)
        axes.setdefault(marker, {})[match.group("axis").lower()] = frame[column].to_numpy() * UNIT_TO_MM[column_unit]
    markers = {}
    for marker, by_axis in axes.items():
        missing = [a for a in "xyz" if a not in by_axis]
        if missing:
            raise InputError(f"marker {marker!r} lacks its {', '.join(missing)} column(s); expected x, y and z.", source=label, field=marker)
        markers[marker] = np.stack([by_axis[a] for a in "xyz"], axis=1)
    if not markers:
        raise InputError("no coordinate columns; expected x, y, z columns after the time column.", source=label)
    report = [ReportEntry.ok(label, f"CSV: {len(markers)} marker(s), {len(t)} samples at {fs:g} Hz ({len(t) / fs:g} s).")]
    if assumed:
        report.append(ReportEntry.warning(label, f"no unit in the header of {assumed[:3]}; taken as mm.", field=assumed[0]))
    return MarkerTrajectories(label, fs, markers, report)


def read_kinematics(source, name: str | None = None, *, unit: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> MarkerTrajectories:
    """Read a trajectory file by type: C3D by key byte or extension, otherwise CSV/TSV."""
    label, raw = read_source(source, name, limits)
    return kinematics_from_bytes(label, raw, unit=unit)


def kinematics_from_bytes(label: str, raw: bytes, *, unit: str | None = None) -> MarkerTrajectories:
    if label.lower().endswith(".c3d"):
        return c3d_from_bytes(label, raw)
    return trajectory_csv_from_bytes(label, raw, unit=unit)


# ---------------------------------------------------------------- features


def _pick_marker(traj: MarkerTrajectories, marker: str | None) -> str:
    if marker is not None:
        if marker not in traj.markers:
            raise InputError(f"no marker {marker!r}; markers are {traj.labels[:20]}.", source=traj.source, field="marker")
        return marker
    if len(traj.markers) == 1:
        return traj.labels[0]
    hits = [m for m in traj.markers if _HAND.search(m)]
    if hits:
        return hits[0]
    raise InputError(
        f"cannot tell which marker is the hand among {traj.labels[:20]}; name it 'hand' or pass marker='<label>'.",
        source=traj.source,
        field="marker",
    )


def hand_trajectory(traj: MarkerTrajectories, marker: str | None = None) -> tuple:
    """The hand marker as a gap-free :class:`core.data.Trajectory`, and findings.

    Returns
    -------
    (Trajectory, list of ReportEntry)

    Raises
    ------
    InputError
        No hand marker, the marker never seen, or a gap longer than 0.2 s.
    """
    from core.data.raw import Trajectory

    label = _pick_marker(traj, marker)
    position = np.array(traj.markers[label], dtype=np.float64)
    seen = np.all(np.isfinite(position), axis=1)
    report = [ReportEntry.ok(traj.source, f"hand marker: {label!r}.", field="marker")]
    if not seen.any():
        raise InputError(f"marker {label!r} is never seen (all samples are gaps).", source=traj.source, field=label)
    first, last = int(np.argmax(seen)), len(seen) - int(np.argmax(seen[::-1]))
    if first > 0 or last < len(seen):
        report.append(ReportEntry.warning(traj.source, f"marker {label!r} is missing for the first {first / traj.fs_hz:g} s and the last {(len(seen) - last) / traj.fs_hz:g} s; trimmed.", field=label))
    position, seen = position[first:last], seen[first:last]
    if not seen.all():
        gaps = np.flatnonzero(np.diff(np.concatenate([[0], (~seen).astype(int), [0]])))
        starts, stops = gaps[::2], gaps[1::2]
        longest = int(np.argmax(stops - starts))
        if (stops[longest] - starts[longest]) / traj.fs_hz > MAX_GAP_S:
            raise InputError(
                f"marker {label!r} is missing for {(stops[longest] - starts[longest]) / traj.fs_hz:g} s from "
                f"t = {(first + starts[longest]) / traj.fs_hz:g} s; gaps up to {MAX_GAP_S:g} s are filled, longer ones must be "
                "filled before upload.",
                source=traj.source,
                field=label,
            )
        index = np.arange(len(seen))
        for axis in range(3):
            position[~seen, axis] = np.interp(index[~seen], index[seen], position[seen, axis])
        report.append(ReportEntry.warning(traj.source, f"{len(starts)} gap(s) of marker {label!r} (up to {MAX_GAP_S:g} s) filled by linear interpolation.", field=label))
    return Trajectory(traj.fs_hz, position), report


def kinematic_feature_row(trajectory, patient_id: str, *, source: str | None = None) -> pd.DataFrame:
    """The ``kin.*`` features of one hand trajectory as a one-row table
    (:func:`core.features.kinematic_feature_table`, as for synthetic patients)."""
    from core.features.kinematics import kinematic_feature_table

    try:
        return kinematic_feature_table(trajectory.position_mm[None], trajectory.fs_hz, pd.Index([patient_id], name="patient_id"))
    except InputError as exc:
        raise attribute(exc, source or "trajectory") from None
