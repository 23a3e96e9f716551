"""Surface EMG with TMS motor evoked potentials: EDF/BDF (pyedflib) and CSV files.

Convention (what a file must hold)
----------------------------------
- **Muscle channels** named after the muscle: a label containing ``FDI`` (first dorsal
  interosseous) and one containing ``ECR`` (extensor carpi radialis), e.g. ``"EMG FDI R"``.
  Other labels can be mapped with ``muscles={"fdi": "<label>", "ecr": "<label>"}``. Both must share
  one sampling rate of at least 1000 Hz (MEP onsets need 1 ms resolution).
- **Units**: EDF/BDF physical dimension ``uV``/``µV``, ``mV``, ``V`` or ``nV``; CSV column headers
  may carry the unit (``FDI [mV]``, ``fdi_uv``, ``ECR (uV)``). Everything is converted to µV. A
  channel without a unit is taken as µV (with a warning).
- **TMS pulse times**, first found of:
  1. a list passed by the caller (``pulse_times_s``, seconds from the recording's start);
  2. EDF+/BDF+ annotations whose text contains ``TMS``, ``pulse``, ``trigger``, ``stim`` or ``MEP``;
  3. a trigger channel (label or CSV column containing ``trig``, ``TMS``, ``stim`` or ``pulse``,
     or named by ``trigger_channel=``): one pulse at each rising crossing of the midpoint between
     the channel's minimum and maximum, crossings within 100 ms of the previous pulse ignored.
  Each pulse is placed on the nearest sample; the sweep is -20 ms .. +80 ms around it, as in the
  synthetic recordings. Pulses too close to the recording's ends for a whole sweep are dropped
  (warning). Without pulses the MEP features are NaN (warning).
- **Voluntary contraction** (RMS and median frequency), first found of: ``voluntary_window_s=
  (start, stop)``; an annotation containing ``voluntary``, ``MVC`` or ``contraction`` with a
  duration; a channel/column named ``voluntary`` that is non-zero during the contraction; else
  the recording after the last sweep (+0.5 s), or the whole recording when it has no pulses
  (both with a warning). It must last at least 0.5 s.
- **CSV**: a header row; a time column first (``time``, ``time_s``, ``time (s)``, ``time_ms`` ...;
  seconds unless the name says ms), evenly sampled; then one column per channel. Comma,
  semicolon or tab separated.

Features are those of the generator (:func:`core.features.emg_feature_table`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.report import ReportEntry, attribute
from core.io.safety import DEFAULT_LIMITS, Budget, DeclaredBytes, GzipStream, UploadLimits, bytes_as_path, is_gzip, read_declared, read_source

__all__ = ["EMGSignals", "EMGExtraction", "read_edf", "read_emg_csv", "read_emg", "emg_recording", "emg_feature_row"]

SWEEP_START_MS = -20.0
SWEEP_END_MS = 80.0
MIN_MEP_RATE_HZ = 1000.0
MIN_VOLUNTARY_S = 0.5  # 10 periods of the 20 Hz band edge
VOLUNTARY_GAP_S = 0.5  # default voluntary segment starts this long after the last sweep
TRIGGER_REFRACTORY_S = 0.1
MUSCLES = ("fdi", "ecr")
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "microv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
              "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3, "v": 1e6, "volt": 1e6, "volts": 1e6, "nv": 1e-3}
_PULSE_TEXT = re.compile(r"tms|pulse|trigger|stim|\bmep\b", re.I)
_VOLUNTARY_TEXT = re.compile(r"voluntary|mvc|contraction", re.I)
_TRIGGER_LABEL = re.compile(r"trig|tms|stim|pulse", re.I)
_VOLUNTARY_LABEL = re.compile(r"^\s*voluntary", re.I)
_EDF_MAGIC = b"0       "
_BDF_MAGIC = b"\xffBIOSEMI"


@dataclass
class EMGSignals:
    """Channels of one EMG file, as read.

    Attributes
    ----------
    source : file name.
    channels : label -> samples (float64); in µV where ``units[label]`` is a voltage unit.
    fs_hz : label -> sampling rate in Hz.
    units : label -> unit as written in the file ("" when none).
    annotations : list of (onset s, duration s or NaN, text).
    report : findings.
    """

    source: str
    channels: dict
    fs_hz: dict
    units: dict
    annotations: list = field(default_factory=list)
    report: list = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.channels)

    def duration_s(self, label: str) -> float:
        return len(self.channels[label]) / self.fs_hz[label]


@dataclass
class EMGExtraction:
    """What the feature functions read from one EMG file.

    Attributes
    ----------
    recording : :class:`core.data.EMGRecording`: ``mep_sweeps_uv`` (2, n_trials, n_sweep)
        µV and ``voluntary_uv`` (2, n_voluntary) µV, muscles ("fdi", "ecr"); n_trials or
        n_voluntary is 0 when that part is missing.
    pulse_times_s : (n_trials,) pulse times used, s from the start.
    pulse_source : where they came from ("caller", "annotations", "channel <label>", "none").
    voluntary_window_s : (start, stop) in s, or None.
    report : findings.
    """

    recording: object
    pulse_times_s: np.ndarray
    pulse_source: str
    voluntary_window_s: tuple | None
    report: list = field(default_factory=list)


def _to_uv_factor(unit: str) -> float | None:
    key = unit.strip().lower().replace(" ", "")
    return UNIT_TO_UV.get(key)


# ---------------------------------------------------------------- EDF / BDF


def _ascii_field(header: bytes, start: int, width: int) -> str:
    return header[start : start + width].decode("ascii", errors="replace").strip()


def _edf_int(text: str, what: str, source: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"header field '{what}' should be an integer, found {text[:20]!r}; the file is damaged.", source=source, field=what) from None


def check_edf_header(raw: bytes, source: str) -> dict:
    """Check an EDF/BDF file's structure before a C library parses it.

    Returns ``{"bdf": bool, "n_signals": int, "n_records": int, "record_s": float}``.

    Raises
    ------
    InputError
        Wrong magic bytes, a non-numeric or inconsistent header field, or a file size that does
        not match the header (truncated or padded file).
    """
    layout = _edf_layout(bytes(memoryview(raw)[: 256 * 4098]), source)
    expected = layout["expected"]
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise InputError(
            f"the file is {state}: {layout['n_records']} records of {layout['samples']} samples need {expected} bytes, "
            f"found {len(raw)}. Upload the complete, unmodified recording.",
            source=source,
            field="file size",
        )
    return {k: layout[k] for k in ("bdf", "n_signals", "n_records", "record_s")}


MAX_EDF_BYTES = 1 << 31  # 2 GiB of samples: days of a 2-channel 10 kHz EMG; a header declaring more is damaged


def edf_declared_size(raw: bytes, source: str) -> int:
    """The exact size in bytes an EDF/BDF file must have, from its header alone (the first
    ``256 x (n_signals + 1)`` bytes): header bytes + records x samples per record x 2 (EDF) or 3 (BDF).

    Raises
    ------
    InputError
        Wrong magic bytes, a non-numeric or inconsistent header field, or a declared size past
        ``MAX_EDF_BYTES`` (naming the field).
    """
    return _edf_layout(raw, source)["expected"]


def _edf_layout(raw: bytes, source: str) -> dict:
    if raw[:8] == _EDF_MAGIC:
        bdf, sample_bytes = False, 2
    elif raw[:8] == _BDF_MAGIC:
        bdf, sample_bytes = True, 3
    else:
        raise InputError(
            f"not an EDF or BDF file: expected the magic bytes '0' followed by 7 spaces (EDF) or 0xff 'BIOSEMI' (BDF), "
            f"found {raw[:8]!r}.",
            source=source,
            field="magic",
        )
    if len(raw) < 256:
        raise InputError(f"the file is truncated: {len(raw)} bytes, shorter than the 256-byte EDF header.", source=source, field="header")
    header_bytes = _edf_int(_ascii_field(raw, 184, 8), "header bytes", source)
    n_records = _edf_int(_ascii_field(raw, 236, 8), "number of data records", source)
    n_signals = _edf_int(_ascii_field(raw, 252, 4), "number of signals", source)
    try:
        record_s = float(_ascii_field(raw, 244, 8))
    except ValueError:
        raise InputError(f"header field 'data record duration' should be a number, found {_ascii_field(raw, 244, 8)!r}.", source=source, field="data record duration") from None
    if not 1 <= n_signals <= 4096:
        raise InputError(f"header says {n_signals} signals; expected 1-4096.", source=source, field="number of signals")
    if header_bytes != 256 * (n_signals + 1):
        raise InputError(f"header size field says {header_bytes} bytes; {n_signals} signals need {256 * (n_signals + 1)}.", source=source, field="header bytes")
    if len(raw) < header_bytes:
        raise InputError(f"the file is truncated inside its header ({len(raw)} of {header_bytes} bytes).", source=source, field="header")
    if n_records < 1:
        raise InputError(f"header says {n_records} data records; expected at least 1 (was the recording closed properly?).", source=source, field="number of data records")
    if not (np.isfinite(record_s) and record_s > 0):
        raise InputError(f"data record duration {record_s!r} s; expected a positive number.", source=source, field="data record duration")
    spr_start = 256 + n_signals * 216
    samples_per_record = [_edf_int(_ascii_field(raw, spr_start + 8 * i, 8), "samples per record", source) for i in range(n_signals)]
    if min(samples_per_record) < 1:
        raise InputError("a signal has fewer than 1 sample per data record.", source=source, field="samples per record")
    expected = header_bytes + n_records * sum(samples_per_record) * sample_bytes
    if expected > MAX_EDF_BYTES:
        raise InputError(
            f"header declares {n_records} records of {sum(samples_per_record)} samples, {expected} bytes; "
            f"at most {MAX_EDF_BYTES} are accepted. The header is damaged.",
            source=source,
            field="number of data records",
        )
    return {"bdf": bdf, "n_signals": n_signals, "n_records": n_records, "record_s": record_s, "samples": sum(samples_per_record), "expected": expected}


def read_edf(source, name: str | None = None, *, limits: UploadLimits = DEFAULT_LIMITS) -> EMGSignals:
    """Read an EDF, EDF+, BDF or BDF+ file with pyedflib.

    Returns
    -------
    EMGSignals
        Every signal channel (annotation channels excluded), physical values converted to µV
        where the channel's unit is a voltage, and the EDF+/BDF+ annotations.

    Raises
    ------
    InputError
        Wrong magic bytes, a damaged or truncated file (see :func:`check_edf_header`), or a file
        pyedflib refuses (its reason is given).
    """
    label, raw = read_source(source, name, limits)
    return edf_from_bytes(label, raw, budget=Budget(limits))


def edf_from_bytes(label: str, raw: bytes, *, budget: Budget | None = None) -> EMGSignals:
    """:func:`read_edf` on bytes already in memory; gzip-compressed EDF/BDF (``.edf.gz``) is
    decompressed header first: the header's size (records x samples) caps the decompression."""
    import pyedflib

    loaded = None
    if isinstance(raw, DeclaredBytes):  # a zip entry already decompressed header first
        loaded = raw
    elif is_gzip(raw[:2]):
        loaded = read_declared(GzipStream(raw, label).read, label, lambda head: edf_declared_size(head, label), budget=budget, compressed_bytes=len(raw))
    if loaded is not None:
        if loaded.extra:
            raise InputError(
                f"the file is longer than its header says: it needs {loaded.declared} bytes, found more. Upload the complete, unmodified recording.",
                source=label,
                field="file size",
            )
        raw = loaded.data
    info = check_edf_header(raw, label)
    with bytes_as_path(raw, ".bdf" if info["bdf"] else ".edf") as path:
        try:
            reader = pyedflib.EdfReader(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            reason = str(exc).replace(path, label).split(":", 1)[-1].strip() or "unknown reason"
            raise InputError(f"pyedflib cannot read this EDF/BDF file: {reason}.", source=label) from exc
        try:
            labels = [str(s).strip() for s in reader.getSignalLabels()]
            channels, rates, units = {}, {}, {}
            for i, name_i in enumerate(labels):
                if name_i.lower() in ("edf annotations", "bdf annotations"):
                    continue  # an annotation channel of a file not flagged EDF+: text, not a signal
                key = name_i or f"channel {i + 1}"
                if key in channels:
                    key = f"{key} ({i + 1})"
                values = np.asarray(reader.readSignal(i), dtype=np.float64)
                units[key] = str(reader.getPhysicalDimension(i)).strip()
                rates[key] = float(reader.getSampleFrequency(i))
                factor = _to_uv_factor(units[key])
                channels[key] = values * factor if factor else values
            onsets, durations, texts = reader.readAnnotations()
            annotations = [(float(o), float(d) if d >= 0 else float("nan"), str(t)) for o, d, t in zip(onsets, durations, texts)]
        except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise InputError(f"pyedflib cannot read the signals: {exc}.", source=label) from exc
        finally:
            reader.close()
    if not channels:
        raise InputError("the file holds no signal channels (only annotations).", source=label)
    for key, values in channels.items():
        if not np.all(np.isfinite(values)):
            raise InputError(f"channel {key!r} holds NaN or infinite samples.", source=label, field=key)
    rate_text = ", ".join(f"{r:g}" for r in sorted(set(rates.values())))
    report = [
        ReportEntry.ok(
            label,
            f"{'BDF' if info['bdf'] else 'EDF'}: {len(channels)} channels at {rate_text} Hz, "
            f"{info['n_records'] * info['record_s']:g} s, {len(annotations)} annotations.",
        )
    ]
    return EMGSignals(label, channels, rates, units, annotations, report)


# ---------------------------------------------------------------- CSV

_TIME_NAME = re.compile(r"^\s*(time|t|timestamp|secs?|seconds|ms|msec)(?=$|[\s_\[(])", re.I)
_UNIT_IN_NAME = re.compile(
    r"^(?P<base>.+?)(?:[\s_]+|[\s_]*[\[(]\s*)(?P<unit>[uµμnm]?v|microv|millivolts?|microvolts?|volts?)\s*[\])]?\s*$", re.I
)


def decode_text(raw: bytes, source: str) -> str:
    if b"\x00" in raw[:65536]:
        raise InputError("expected a text (CSV) file, found binary data.", source=source)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_separator(text: str, source: str, default: str = ",") -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise InputError("the file is empty.", source=source)
    counts = {sep: first.count(sep) for sep in ("\t", ";", ",")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else default


def numeric_table(raw: bytes, source: str, *, separator: str | None = None, allow_gaps: bool = False) -> pd.DataFrame:
    """A CSV/TSV of numbers: a header row naming every column once, then numeric cells.

    Empty cells (and ``NaN``) are an error unless ``allow_gaps`` (then NaN); any other text is an
    InputError naming the column, the line and the value found.
    """
    text = decode_text(raw, source)
    sep = separator or sniff_separator(text, source)
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        raise InputError(f"the table cannot be parsed: {str(exc).strip()}.", source=source) from exc
    if table.shape[1] < 2 or len(table) < 2:
        raise InputError(f"expected a header row and at least 2 rows of 2 or more columns, found {len(table)} rows x {table.shape[1]} columns.", source=source)
    names = [str(c).strip() for c in table.columns]
    unnamed = [i + 1 for i, c in enumerate(names) if not c or c.startswith("Unnamed:")]
    if unnamed:
        raise InputError(f"column {unnamed[0]} has no name; expected a header row naming every column.", source=source, field=f"column {unnamed[0]}")
    dupes = sorted({c for c in names if names.count(c) > 1} | {c for c in table.columns if re.search(r"\.\d+$", str(c)) and str(c).rsplit(".", 1)[0] in names})
    if dupes:
        raise InputError(f"duplicate column names {dupes[:5]}; expected each column named once.", source=source, field=str(dupes[0]))
    table.columns = names
    out = {}
    for column in names:
        cells = table[column].str.strip()
        values = pd.to_numeric(cells, errors="coerce")
        bad = values.isna().to_numpy().copy()
        if allow_gaps:
            bad &= ~cells.str.lower().isin(["", "nan"]).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            found = cells.iloc[row]
            what = "an empty cell" if found == "" else repr(found[:40])
            raise InputError(
                f"non-numeric value in numeric column {column!r}, line {row + 2}: expected a number, found {what}.",
                source=source,
                field=column,
            )
        out[column] = values.to_numpy(dtype=np.float64)
    frame = pd.DataFrame(out)
    if np.isinf(frame.to_numpy()).any():
        column = frame.columns[np.isinf(frame.to_numpy()).any(axis=0)][0]
        raise InputError(f"column {column!r} holds infinite values; expected finite numbers.", source=source, field=column)
    return frame


def time_axis(frame: pd.DataFrame, source: str) -> tuple[str, np.ndarray, float]:
    """The time column of a numeric table: its name, times in s, and the sampling rate in Hz.

    Raises
    ------
    InputError
        No time column, time not strictly increasing, or unevenly sampled (> 1% jitter).
    """
    column = None
    for name in frame.columns:
        match = _TIME_NAME.match(name)
        if match:
            column = name
            break
    if column is None:
        raise InputError(
            f"no time column; expected a first column named 'time' (s) or 'time_ms', found {list(frame.columns)[:6]}.",
            source=source,
            field="time",
        )
    scale = 1e-3 if re.search(r"(^|[\s_\[(])ms\b|msec", column, re.I) else 1.0
    t = frame[column].to_numpy() * scale
    if not np.all(np.isfinite(t)):
        row = int(np.argmax(~np.isfinite(t))) + 2
        raise InputError(f"time is missing at line {row}; expected a time for every row.", source=source, field=column)
    step = np.diff(t)
    if step.size == 0 or np.any(step <= 0):
        row = int(np.argmax(step <= 0)) + 3 if step.size else 2
        raise InputError(f"time must increase from row to row; it does not at line {row}.", source=source, field=column)
    dt = float(np.median(step))
    if np.max(np.abs(step - dt)) > 0.01 * dt:
        raise InputError(
            f"time is not evenly sampled: steps range from {step.min() * 1e3:.4g} to {step.max() * 1e3:.4g} ms; "
            "expected a constant sampling interval (resample the recording first).",
            source=source,
            field=column,
        )
    # Decimal times carry rounding (0.01 s read back as 0.00999...): rounding the rate to 9
    # significant digits gives back the nominal rate, so frequency bins land where they should.
    fs = float(f"{(len(t) - 1) / (t[-1] - t[0]):.9g}")
    return column, t, fs


def read_emg_csv(source, name: str | None = None, *, unit: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> EMGSignals:
    """Read EMG from a CSV/TSV: a time column, then one column per channel.

    Parameters
    ----------
    unit : unit of channels whose header names none (``"uV"``, ``"mV"``, ``"V"``); default µV
        with a warning.

    Raises
    ------
    InputError
        Not text, unparseable, no time column, uneven sampling, non-numeric or empty cells.
    """
    label, raw = read_source(source, name, limits)
    return emg_csv_from_bytes(label, raw, unit=unit)


def emg_csv_from_bytes(label: str, raw: bytes, *, unit: str | None = None) -> EMGSignals:
    frame = numeric_table(raw, label)
    time_column, t, fs = time_axis(frame, label)
    if unit is not None and _to_uv_factor(unit) is None:
        raise InputError(f"unknown unit {unit!r}; expected uV, mV or V.", source=label, field="unit")
    channels, rates, units = {}, {}, {}
    assumed = []
    for column in frame.columns:
        if column == time_column:
            continue
        match = _UNIT_IN_NAME.match(column)
        if match and match.group("base").strip(" _-"):
            key, found_unit = match.group("base").strip(" _-"), match.group("unit")
        else:
            key, found_unit = column, ""
        if not found_unit and not (_TRIGGER_LABEL.search(column) or _VOLUNTARY_LABEL.search(column)):
            found_unit = unit or ""
            if not unit:
                assumed.append(column)
        if key in channels:
            raise InputError(f"two columns name channel {key!r}; expected each channel once.", source=label, field=column)
        factor = _to_uv_factor(found_unit) if found_unit else None
        values = frame[column].to_numpy()
        channels[key] = values * factor if factor else values
        rates[key] = fs
        units[key] = found_unit
    report = [ReportEntry.ok(label, f"CSV: {len(channels)} channels at {fs:g} Hz, {t[-1] - t[0] + 1 / fs:g} s.")]
    if assumed:
        report.append(ReportEntry.warning(label, f"no unit in the header of {assumed}; taken as µV.", field=assumed[0]))
    return EMGSignals(label, channels, rates, units, [], report)


def read_emg(source, name: str | None = None, *, unit: str | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> EMGSignals:
    """Read an EMG file by its type: EDF/BDF by magic bytes or extension, otherwise CSV/TSV."""
    label, raw = read_source(source, name, limits)
    return emg_from_bytes(label, raw, unit=unit, budget=Budget(limits))


def emg_from_bytes(label: str, raw: bytes, *, unit: str | None = None, budget: Budget | None = None) -> EMGSignals:
    """:func:`read_emg` on bytes already in memory; ``budget``: the upload's decompression budget.
    ``raw`` may also be the :class:`~core.io.safety.DeclaredBytes` of an EDF/BDF zip entry read
    header first with :func:`edf_declared_size`."""
    if isinstance(raw, DeclaredBytes):
        return edf_from_bytes(label, raw, budget=budget)
    if raw[:8] in (_EDF_MAGIC, _BDF_MAGIC) or label.lower().endswith((".edf", ".bdf", ".edf.gz", ".bdf.gz")):
        return edf_from_bytes(label, raw, budget=budget)
    return emg_csv_from_bytes(label, raw, unit=unit)


# ---------------------------------------------------------------- sweeps and features


def _find_channel(signals: EMGSignals, muscle: str, given: str | None) -> str:
    if given is not None:
        if given not in signals.channels:
            raise InputError(f"no channel {given!r} for {muscle.upper()}; channels are {signals.labels}.", source=signals.source, field=muscle)
        return given
    pattern = re.compile(rf"(?<![a-z]){muscle}(?![a-z])", re.I)
    hits = [label for label in signals.channels if pattern.search(label)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise InputError(
            f"no channel for muscle {muscle.upper()}: expected a label containing '{muscle.upper()}', found {signals.labels[:12]}. "
            f"Rename the channel or map it with muscles={{'{muscle}': '<label>'}}.",
            source=signals.source,
            field=muscle,
        )
    raise InputError(f"several channels could be {muscle.upper()}: {hits}; map one with muscles={{'{muscle}': '<label>'}}.", source=signals.source, field=muscle)


def _trigger_pulses(values: np.ndarray, fs: float) -> np.ndarray:
    lo, hi = float(np.min(values)), float(np.max(values))
    if not hi > lo:
        return np.empty(0)
    threshold = (lo + hi) / 2
    rising = np.flatnonzero((values[1:] >= threshold) & (values[:-1] < threshold)) + 1
    kept = []
    for index in rising:
        if not kept or (index - kept[-1]) / fs >= TRIGGER_REFRACTORY_S:
            kept.append(index)
    return np.asarray(kept, dtype=float) / fs


def _pulse_times(signals, pulse_times_s, trigger_channel, muscle_labels):
    if pulse_times_s is not None:
        try:
            times = np.asarray(pulse_times_s, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InputError(f"expected pulse times in s as numbers, found {pulse_times_s!r}.", source=signals.source, field="pulse_times_s") from None
        if not np.all(np.isfinite(times)):
            raise InputError("pulse times must be finite numbers of seconds.", source=signals.source, field="pulse_times_s")
        return np.sort(times), "caller"
    from_notes = sorted(onset for onset, _, text in signals.annotations if _PULSE_TEXT.search(text) and not _VOLUNTARY_TEXT.search(text))
    if from_notes:
        return np.asarray(from_notes, dtype=float), "annotations"
    if trigger_channel is not None:
        if trigger_channel not in signals.channels:
            raise InputError(f"no trigger channel {trigger_channel!r}; channels are {signals.labels}.", source=signals.source, field="trigger_channel")
        candidates = [trigger_channel]
    else:
        candidates = [c for c in signals.channels if _TRIGGER_LABEL.search(c) and c not in muscle_labels]
    for label in candidates:
        times = _trigger_pulses(signals.channels[label], signals.fs_hz[label])
        if times.size:
            return times, f"channel {label}"
    return np.empty(0), "none"


def _voluntary_window(signals, window, pulses, duration_s):
    """(start, stop) s of the voluntary contraction and how it was found, or (None, reason)."""
    if window is not None:
        try:
            start, stop = (float(v) for v in window)
        except (TypeError, ValueError):
            raise InputError(f"expected voluntary_window_s=(start, stop) in s, found {window!r}.", source=signals.source, field="voluntary_window_s") from None
        return (start, stop), "caller"
    for onset, duration, text in signals.annotations:
        if _VOLUNTARY_TEXT.search(text) and np.isfinite(duration) and duration > 0:
            return (onset, onset + duration), "annotation"
    for label, values in signals.channels.items():
        if _VOLUNTARY_LABEL.search(label):
            on = np.flatnonzero(values != 0)
            if on.size:
                # The first contiguous run of non-zero samples.
                breaks = np.flatnonzero(np.diff(on) > 1)
                last = on[breaks[0]] if breaks.size else on[-1]
                fs = signals.fs_hz[label]
                return (on[0] / fs, (last + 1) / fs), f"channel {label}"
    if pulses.size:
        start = pulses.max() + SWEEP_END_MS / 1000 + VOLUNTARY_GAP_S
        return (start, duration_s), "after the last sweep"
    return (0.0, duration_s), "whole recording"


def emg_recording(
    signals: EMGSignals,
    *,
    muscles: dict | None = None,
    pulse_times_s=None,
    trigger_channel: str | None = None,
    voluntary_window_s=None,
) -> EMGExtraction:
    """Cut MEP sweeps and the voluntary contraction out of an EMG file (see the module notes).

    Parameters
    ----------
    signals : from :func:`read_edf`, :func:`read_emg_csv` or :func:`read_emg`.
    muscles : optional ``{"fdi": label, "ecr": label}``; default: found by label.
    pulse_times_s : optional TMS pulse times in s from the start of the recording.
    trigger_channel : optional label of the channel carrying the TMS trigger.
    voluntary_window_s : optional (start, stop) in s of the voluntary contraction.

    Returns
    -------
    EMGExtraction

    Raises
    ------
    InputError
        A muscle channel missing or ambiguous, the muscle channels at different sampling rates,
        a rate below 1000 Hz, a muscle channel in a non-voltage unit, or bad caller arguments.
    """
    from core.data.raw import EMGRecording

    muscles = dict(muscles or {})
    unknown = set(muscles) - set(MUSCLES)
    if unknown:
        raise InputError(f"unknown muscle(s) {sorted(unknown)}; expected keys {list(MUSCLES)}.", field="muscles")
    labels = [_find_channel(signals, m, muscles.get(m)) for m in MUSCLES]
    rates = {label: signals.fs_hz[label] for label in labels}
    if len(set(rates.values())) > 1:
        (a, ra), (b, rb) = rates.items()
        raise InputError(
            f"channels {a!r} ({ra:g} Hz) and {b!r} ({rb:g} Hz) have different sampling rates; "
            "expected the EMG channels sampled together at one rate. Export them at a common rate.",
            source=signals.source,
            field=f"{a}, {b}",
        )
    fs = rates[labels[0]]
    if fs < MIN_MEP_RATE_HZ:
        raise InputError(f"EMG sampled at {fs:g} Hz; MEP onsets need at least {MIN_MEP_RATE_HZ:g} Hz.", source=signals.source, field=labels[0])
    report = []
    for label in labels:
        unit = signals.units.get(label, "")
        if unit and _to_uv_factor(unit) is None:
            raise InputError(f"channel {label!r} is in {unit!r}; expected a voltage (uV, mV or V).", source=signals.source, field=label)
        if not unit and signals.source.lower().endswith((".edf", ".bdf")):
            report.append(ReportEntry.warning(signals.source, f"channel {label!r} has no physical unit; taken as µV.", field=label))
    lengths = {len(signals.channels[label]) for label in labels}
    n = min(lengths)
    x = np.stack([signals.channels[label][:n] for label in labels])  # (2, n) µV

    pulses, pulse_source = _pulse_times(signals, pulse_times_s, trigger_channel, labels)
    n_pre = int(round(-SWEEP_START_MS / 1000 * fs))
    n_sweep = n_pre + int(round(SWEEP_END_MS / 1000 * fs))
    index = np.round(pulses * fs).astype(np.int64) - n_pre
    whole = (index >= 0) & (index + n_sweep <= n)
    if (~whole).any():
        report.append(ReportEntry.warning(signals.source, f"{int((~whole).sum())} pulse(s) too close to the recording's ends for a -20..80 ms sweep were dropped.", field="pulses"))
    index, pulses = index[whole], pulses[whole]
    sweeps = np.stack([x[:, i : i + n_sweep] for i in index], axis=1) if index.size else np.zeros((2, 0, n_sweep))
    if index.size:
        report.append(ReportEntry.ok(signals.source, f"{index.size} TMS pulses from {pulse_source}; sweeps -20..80 ms at {fs:g} Hz."))
    else:
        report.append(ReportEntry.warning(signals.source, "no TMS pulse times (no list, pulse annotations or trigger channel); MEP features are missing.", field="pulses"))

    (start, stop), how = _voluntary_window(signals, voluntary_window_s, pulses, n / fs)
    i0, i1 = max(int(round(start * fs)), 0), min(int(round(stop * fs)), n)
    window = None
    if (i1 - i0) / fs >= MIN_VOLUNTARY_S:
        voluntary = x[:, i0:i1]
        window = (i0 / fs, i1 / fs)
        entry = ReportEntry.ok if how in ("caller", "annotation") or how.startswith("channel") else ReportEntry.warning
        report.append(entry(signals.source, f"voluntary contraction {window[0]:g}-{window[1]:g} s ({how}).", field="voluntary"))
    else:
        voluntary = np.zeros((2, 0))
        report.append(ReportEntry.warning(signals.source, f"no voluntary contraction of at least {MIN_VOLUNTARY_S:g} s found ({how}); RMS and median frequency are missing.", field="voluntary"))
    recording = EMGRecording(fs, MUSCLES, sweeps, -1000.0 * n_pre / fs, voluntary)
    return EMGExtraction(recording, pulses, pulse_source, window, report)


def emg_feature_row(extraction: EMGExtraction, patient_id: str, *, source: str | None = None) -> pd.DataFrame:
    """The ``emg.*`` features of one recording as a one-row table (NaN for a missing part).

    Computed by :func:`core.features.emg_feature_table`, exactly as for synthetic patients.
    """
    from core.features.emg import emg_feature_table

    rec = extraction.recording
    sweeps = rec.mep_sweeps_uv
    voluntary = rec.voluntary_uv
    has_mep, has_voluntary = sweeps.shape[1] > 0, voluntary.shape[-1] > 0
    # A missing part is stood in for by zeros (valid input) and its features are blanked after.
    if not has_mep:
        sweeps = np.zeros((2, 1, sweeps.shape[-1]))
    if not has_voluntary:
        voluntary = np.zeros((2, int(np.ceil(MIN_VOLUNTARY_S * rec.fs_hz)) + 1))
    try:
        table = emg_feature_table(sweeps[None], voluntary[None], rec.fs_hz, rec.sweep_start_ms, rec.muscles, pd.Index([patient_id], name="patient_id"))
    except InputError as exc:
        raise attribute(exc, source or "EMG recording") from None
    mep_columns = [c for c in table.columns if c.startswith("emg.mep_")]
    if not has_mep:
        table[mep_columns] = np.nan
    if not has_voluntary:
        table[[c for c in table.columns if c not in mep_columns]] = np.nan
    return table
