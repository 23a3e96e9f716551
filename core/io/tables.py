"""Clinical tables (CSV, TSV, BIDS ``participants.tsv``, XLSX) and the column-mapping step.

Reading keeps every cell as text (:func:`read_table`), so that types are decided in one place:
:func:`infer_column_mapping` guesses which column is the patient id, the outcome, the site, the
indication and the affected hemisphere, and the type of every other column; the user confirms
or edits the :class:`ColumnMapping`; :func:`apply_column_mapping` then converts and checks the
table and raises :class:`~core.errors.InputError` on a non-numeric value in a numeric column or
a duplicate patient id.

Two checks guard the features against silent mistakes: a column holding mostly numbers is numeric
(its other cells are errors naming line, patient, column and value; a user who makes it binary or
categorical anyway gets a warning naming those cells), and a numeric column named after a known
clinical scale (:data:`SCALE_RANGES`: age 0-120, NIHSS 0-42, FM-UE 0-66, UPDRS-III 0-132, ARAT 0-57,
mRS 0-6, Barthel 0-100, MoCA 0-30, ...) gets a warning for each cell outside the scale's range.

Feature columns become ``clin.<name>`` (snake case) unless they already carry a modality
prefix (``clin.``, ``dti.``, ``emg.``, ``kin.``): a table of precomputed features is accepted as
is. Binary text columns become a 0/1 column named after one level (``sex`` M/F ->
``clin.sex_male``); categorical ones are one-hot encoded (``clin.<column>_<level>``).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.errors import InputError
from core.io.report import ReportEntry
from core.io.safety import DEFAULT_LIMITS, Budget, UploadLimits, read_source

__all__ = ["ClinicalTable", "ColumnMapping", "MappedTable", "read_table", "infer_column_mapping", "apply_column_mapping", "mapping_table", "known_scale", "SCALE_RANGES"]

MISSING_TOKENS = {"", "n/a", "na", "nan", "null", "none", "missing", ".", "-", "?"}
COLUMN_TYPES = ("numeric", "binary", "categorical", "text")
MAX_CATEGORIES = 12  # more distinct values than this is free text, not a category
MOSTLY_NUMBERS = 0.5  # a column with more than half of its cells numbers is numeric; its other values are errors to fix
MAX_CELLS_NAMED = 20  # cells named one by one in the report per column; the rest are counted

# Known clinical scales, recognised by column name (snake case, modality prefix removed): the range
# a value must lie in. Change scores and percentages (names with change, delta, pct ...) are skipped.
SCALE_RANGES = (
    # (scale, name pattern, low, high)
    ("age (years)", r"age(_(years?|yrs|y|at_[a-z_]+|baseline))?", 0, 120),
    ("NIHSS", r"(nihss|nih_?stroke_?scale)(_(score|total|baseline|admission|discharge|t\d|v\d))?", 0, 42),
    ("FM-UE (Fugl-Meyer upper extremity)", r"(fm_?ue|fma_?ue|fmue|fugl_?meyer_?(ue|upper(_extremity|_limb)?))(_(score|total|motor|baseline|t\d|v\d))?", 0, 66),
    ("MDS-UPDRS-III", r"(mds_?)?updrs_?(iii|3|part_?iii|part_?3)(_(score|total|off|on|baseline|med_off|med_on|t\d|v\d))?", 0, 132),
    ("ARAT", r"arat(_(score|total|baseline|t\d|v\d))?", 0, 57),
    ("mRS (modified Rankin)", r"(mrs|modified_?rankin(_scale)?)(_(score|baseline|premorbid|t\d|v\d|90d|day_?90))?", 0, 6),
    ("Barthel index", r"barthel(_index)?(_(score|total|baseline|t\d|v\d))?", 0, 100),
    ("MoCA", r"moca(_(score|total|baseline|t\d|v\d))?", 0, 30),
    ("MMSE", r"mmse(_(score|total|baseline|t\d|v\d))?", 0, 30),
    ("Hoehn & Yahr stage", r"hoehn_?(and_)?yahr(_(stage|score|off|on))?", 0, 5),
    ("SAFE score", r"safe(_score)?", 0, 10),
    ("BDI-II", r"bdi(_?ii|_?2)?(_(score|total))?", 0, 63),
    ("PDQ-39", r"pdq_?39(_(si|score|summary_index))?", 0, 100),
    ("modified Ashworth scale", r"(mas|modified_?ashworth|ashworth)(_(score|elbow|wrist|fingers))?", 0, 4),
    ("Box and Block test", r"(bbt|box_?(and_)?block(_test)?)(_(score|affected|paretic))?", 0, 150),
)
_NOT_A_SCALE_VALUE = re.compile(r"(^|_)(change|delta|diff|difference|improvement|pct|percent|z|zscore|log|ratio|slope|rank|residual)(_|$)")
MAX_CELLS = 5_000_000
_ROLE_PATTERNS = {
    "patient_id": r"^(participant_?id|patient_?id|subject_?id|subject|participant|patient|sub|id|record_?id|pid)$",
    "outcome": r"^(improvement(_?pct|_?percent|_?%)?|outcome|response(_?pct)?|improvement.*|.*improvement.*|delta.*pct)$",
    "responder": r"^(responder|response_?binary|responded|is_?responder)$",
    "site": r"^(site|centre|center|scanner|hospital|clinic|site_?id)$",
    "indication": r"^(indication|diagnosis|condition|disease|dx|treatment|therapy)$",
    "affected_hemisphere": r"^(affected_?hemisphere|affected_?side|lesion_?side|hemisphere|side|lesion_?hemisphere)$",
}
_TRUE = {"1", "yes", "y", "true", "t", "responder", "response", "r"}
_FALSE = {"0", "no", "n", "false", "f", "non-responder", "nonresponder", "non_responder", "no response", "nr"}
_HEMISPHERES = {"l": "left", "left": "left", "lh": "left", "links": "left", "r": "right", "right": "right", "rh": "right", "rechts": "right"}
_INDICATIONS = (
    (re.compile(r"stroke|cva|rtms|infarct", re.I), "stroke"),
    (re.compile(r"parkinson|^pd$|dbs|stn", re.I), "parkinsons"),
)
_MALE = {"m", "male", "man", "1"}


@dataclass
class ClinicalTable:
    """A table as read: every cell text (stripped), missing-value tokens as ``""``.

    Attributes
    ----------
    frame : DataFrame of str, original column names, rows in file order (row 0 = line 2).
    source : file name.
    sheet : XLSX sheet read, or None.
    report : findings.
    """

    frame: pd.DataFrame
    source: str
    sheet: str | None = None
    report: list = field(default_factory=list)


@dataclass
class ColumnMapping:
    """Which column plays which role, and the type of every column; confirmable by the user.

    Attributes
    ----------
    patient_id : column of patient ids (``sub-`` prefixes of BIDS ids are removed).
    outcome : column of the continuous improvement in %, or None.
    responder : column of the binary responder label, or None (then derived from ``outcome``).
    site : column of sites (for grouped cross-validation), or None.
    indication : column of indications (``stroke`` / ``parkinsons`` recognised), or None.
    affected_hemisphere : column of ``left`` / ``right`` (L/R, LH/RH), needed by the DTI features.
    features : column -> feature name (``clin.*``, or its own prefixed name).
    types : column -> ``"numeric"``, ``"binary"``, ``"categorical"`` or ``"text"``.
    responder_threshold_pct : improvement (%) from which a patient is a responder.
    measures : column -> the outcome measure it holds: the key of a measure of the outcome bank, or
        the fields of one the user describes (``description``, ``indication``, ``direction``, and
        optionally ``name``, ``kind``, ``body_region``, ``time_point_weeks``, ``range``, ``unit``).
    """

    patient_id: str
    outcome: str | None = None
    responder: str | None = None
    site: str | None = None
    indication: str | None = None
    affected_hemisphere: str | None = None
    features: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)
    responder_threshold_pct: float = 50.0
    measures: dict = field(default_factory=dict)

    ROLES = ("patient_id", "outcome", "responder", "site", "indication", "affected_hemisphere")

    def roles(self) -> dict:
        """role -> column for the roles that are set."""
        return {role: getattr(self, role) for role in self.ROLES if getattr(self, role)}

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (for provenance and for saving a confirmed mapping)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColumnMapping:
        known = {"patient_id", "outcome", "responder", "site", "indication", "affected_hemisphere", "features", "types", "responder_threshold_pct", "measures"}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown mapping field(s) {sorted(unknown)}; expected some of {sorted(known)}.", field="mapping")
        if "patient_id" not in data:
            raise InputError("a column mapping needs the patient id column.", field="patient_id")
        return cls(**data)


@dataclass
class MappedTable:
    """A clinical table after the mapping: what a :class:`~core.data.Cohort` is made of.

    Attributes
    ----------
    patients : DataFrame indexed by ``patient_id`` (str): ``indication`` (always; "unspecified"
        when not mapped), and ``site`` / ``affected_hemisphere`` when mapped.
    features : DataFrame, same index, float columns named ``<modality>.<name>``.
    outcomes : DataFrame, same index: ``improvement_pct`` (float, NaN if unknown) and
        ``responder`` (bool; float 0/1 with NaN when some outcomes are missing).
    report : findings.
    """

    patients: pd.DataFrame
    features: pd.DataFrame
    outcomes: pd.DataFrame
    report: list = field(default_factory=list)
    measures: dict = field(default_factory=dict)  # outcome column -> outcome-bank entry (the Cohort's provenance "measures")


# ---------------------------------------------------------------- reading


def read_table(source, name: str | None = None, *, sheet: str | int | None = None, limits: UploadLimits = DEFAULT_LIMITS) -> ClinicalTable:
    """Read a clinical table: CSV, TSV (BIDS ``participants.tsv``) or XLSX, every cell as text.

    Parameters
    ----------
    source : path, bytes or binary file object.
    name : file name for messages; its extension picks the format (``.xlsx`` / ``.tsv`` / else
        CSV with the separator sniffed among comma, semicolon and tab).
    sheet : XLSX sheet name or index (default: the first).

    Raises
    ------
    InputError
        Binary data where text is expected, a legacy ``.xls`` file, an XLSX that is damaged or
        decompresses past the cap, ragged rows, an empty table, unnamed or duplicate columns.
    """
    label, raw = read_source(source, name, limits)
    return table_from_bytes(label, raw, sheet=sheet, budget=Budget(limits))


def table_from_bytes(label: str, raw: bytes, *, sheet=None, budget: Budget | None = None) -> ClinicalTable:
    lower = label.lower()
    if raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise InputError("a legacy Excel (.xls) file; save it as .xlsx or CSV.", source=label)
    if lower.endswith((".xlsx", ".xlsm")) or raw[:4] == b"PK\x03\x04":
        frame, sheet_name = _read_xlsx(raw, label, sheet, budget or Budget(DEFAULT_LIMITS))
    else:
        frame, sheet_name = _read_delimited(raw, label), None
    frame = _clean(frame, label)
    report = [ReportEntry.ok(label, f"table of {len(frame)} rows x {frame.shape[1]} columns{f' (sheet {sheet_name!r})' if sheet_name else ''}.")]
    return ClinicalTable(frame, label, sheet_name, report)


def _read_delimited(raw: bytes, label: str) -> pd.DataFrame:
    from core.io.emg import decode_text, sniff_separator

    text = decode_text(raw, label)
    sep = "\t" if label.lower().endswith(".tsv") else sniff_separator(text, label)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=True, on_bad_lines="error")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeError) as exc:
        raise InputError(f"the table cannot be parsed: {str(exc).strip()}. Every row needs as many cells as the header.", source=label) from exc
    except Exception as exc:  # noqa: BLE001 - pandas' C parser raises a zoo of errors on hostile text
        raise InputError(f"the table cannot be parsed ({type(exc).__name__}: {exc}).", source=label) from exc


def _read_xlsx(raw: bytes, label: str, sheet, budget: Budget):
    # An XLSX is a zip: its declared and actual sizes are capped before openpyxl inflates it.
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise InputError(f"not a valid XLSX workbook (damaged zip container: {exc}).", source=label) from exc
    budget.spend(declared, label)
    try:
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        names = book.sheetnames
        if sheet is None:
            chosen = names[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise InputError(f"no sheet number {sheet}; the workbook has {len(names)} sheet(s): {names}.", source=label, field="sheet")
            chosen = names[sheet]
        else:
            if sheet not in names:
                raise InputError(f"no sheet {sheet!r}; sheets are {names}.", source=label, field="sheet")
            chosen = sheet
        rows = []
        for row in book[chosen].iter_rows(values_only=True):
            rows.append(["" if v is None else str(v) for v in row])
            if len(rows) * max(len(row), 1) > MAX_CELLS:
                raise InputError(f"the sheet holds more than {MAX_CELLS} cells.", source=label)
        book.close()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises KeyError, TypeError, lxml errors... on damaged workbooks
        raise InputError(f"the XLSX workbook cannot be read ({type(exc).__name__}: {str(exc)[:200]}).", source=label) from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"sheet {chosen!r} is empty.", source=label, field="sheet")
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    return pd.DataFrame(rows[1:], columns=rows[0], dtype=str), chosen


def _clean(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    names = [str(c).strip() for c in frame.columns]
    # Excel exports often end in empty columns: drop trailing unnamed columns without values.
    while names and (not names[-1] or names[-1].startswith("Unnamed:")) and frame.iloc[:, -1].astype(str).str.strip().eq("").all():
        frame = frame.iloc[:, :-1]
        names = names[:-1]
    for i, column in enumerate(names):
        if not column or column.startswith("Unnamed:"):
            raise InputError(f"column {i + 1} has no name; expected a header row naming every column.", source=label, field=f"column {i + 1}")
    seen = set()
    for column in names:
        base = re.sub(r"\.\d+$", "", column)
        if column in seen or (base != column and base in names):
            raise InputError(f"column {base!r} appears more than once; expected each column once.", source=label, field=base)
        seen.add(column)
    if frame.empty:
        raise InputError("the table has a header but no rows.", source=label)
    # Strip every cell and blank the missing-value tokens, on a plain array (pandas' per-column
    # string methods cost ~1 ms a column).
    cells = np.char.strip(frame.to_numpy(dtype=str))
    cells[np.isin(np.char.lower(cells), list(MISSING_TOKENS))] = ""
    return pd.DataFrame(cells.astype(object), columns=names, index=pd.RangeIndex(len(cells)))


# ---------------------------------------------------------------- inference


def _snake(name: str) -> str:
    text = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    return text or "column"


_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$")


def _numeric(values: pd.Series) -> pd.Series:
    """Numbers of a text column (a decimal comma is accepted), NaN where a cell is not a number."""
    out = np.full(len(values), np.nan)
    for i, text in enumerate(values.to_numpy()):
        if _NUMBER.match(text):
            out[i] = float(text.replace(",", "."))
    return pd.Series(out, index=values.index)


def infer_type(values: pd.Series) -> str:
    """Type of a text column from its non-missing cells: numeric, binary, categorical or text."""
    present = values[values != ""]
    if present.empty:
        return "text"
    numbers = _numeric(present).to_numpy()
    share = float(np.mean(~np.isnan(numbers)))
    distinct = len({text.lower() for text in present})
    if share == 1.0:
        return "binary" if set(np.unique(numbers)) <= {0.0, 1.0} and distinct == 2 else "numeric"
    if share > MOSTLY_NUMBERS:
        # Mostly numbers: never silently a binary or categorical feature. Its other cells are
        # typos to fix, named by apply_column_mapping (or the user sets the type on purpose).
        return "numeric"
    if distinct == 2:
        return "binary"
    if distinct <= MAX_CATEGORIES and distinct < len(present):
        return "categorical"
    return "text"


def _first_match(columns, role) -> str | None:
    pattern = re.compile(_ROLE_PATTERNS[role], re.I)
    for column in columns:
        if pattern.match(_snake(column)) or pattern.match(column.strip().lower()):
            return column
    return None


def infer_column_mapping(table: ClinicalTable | pd.DataFrame, source: str | None = None, *, responder_threshold_pct: float = 50.0) -> ColumnMapping:
    """Guess roles and types from column names and values (the user confirms them).

    The patient id is the first column named like ``participant_id``, ``patient_id``,
    ``subject`` or ``id`` (else the first column); other roles by name. A numeric column named as a
    measure of the outcome bank (its key, e.g. ``fmue_total_w12``, or its name) is that measure, never
    a feature: a follow-up score among the inputs would leak the outcome into the model. Every
    remaining column is a feature unless its type is ``text``.

    Raises
    ------
    InputError
        The table has no columns.
    """
    frame = table.frame if isinstance(table, ClinicalTable) else table
    source = source or (table.source if isinstance(table, ClinicalTable) else "table")
    columns = list(frame.columns)
    if not columns:
        raise InputError("the table has no columns.", source=source)
    roles = {}
    for role in ColumnMapping.ROLES:
        taken = set(roles.values())
        hit = _first_match([c for c in columns if c not in taken], role)
        if hit is not None:
            roles[role] = hit
    roles.setdefault("patient_id", columns[0])
    types = {c: infer_type(frame[c]) for c in columns}
    if "outcome" in roles and types[roles["outcome"]] != "numeric":
        roles.pop("outcome")
    bank = _bank_measure_names()
    measures = {c: bank[_snake(c)] for c in columns if c not in roles.values() and types[c] == "numeric" and _snake(c) in bank}
    features = {}
    for column in columns:
        if column in roles.values() or column in measures or types[column] == "text":
            continue
        features[column] = column if _has_prefix(column) else f"clin.{_snake(column)}"
    return ColumnMapping(**roles, features=features, types=types, responder_threshold_pct=responder_threshold_pct, measures=measures)


def _bank_measure_names() -> dict:
    """Column name (snake case) -> key, for every outcome-bank measure's key and name."""
    from core.data.outcome_bank import load_outcome_bank

    names = {}
    for spec in load_outcome_bank():
        names[_snake(spec.name)] = spec.key
        names[spec.key.lower()] = spec.key
    return names


def _has_prefix(column: str) -> bool:
    from core.data.schema import MODALITY_LABELS

    prefix, sep, rest = column.partition(".")
    return bool(sep and rest and prefix in MODALITY_LABELS)


def mapping_table(table: ClinicalTable, mapping: ColumnMapping) -> pd.DataFrame:
    """One row per column for the confirmation step: role, type, feature name, examples."""
    role_of = {column: role for role, column in mapping.roles().items()}
    rows = []
    for column in table.frame.columns:
        values = table.frame[column]
        examples = ", ".join(values[values != ""].unique()[:3].tolist())
        rows.append({
            "column": column,
            "role": role_of.get(column, "feature" if column in mapping.features else "measure" if column in mapping.measures else "ignored"),
            "type": mapping.types.get(column, infer_type(values)),
            "feature": mapping.features.get(column, ""),
            "missing": int((values == "").sum()),
            "examples": examples,
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- applying


def normalise_patient_id(value: str) -> str:
    """A patient id as used to match folders: stripped, BIDS ``sub-`` prefix removed."""
    text = str(value).strip()
    return text[4:] if text.lower().startswith("sub-") and len(text) > 4 else text


def _numeric_column(frame, column, source, ids) -> pd.Series:
    values = frame[column]
    numbers = _numeric(values)
    bad = numbers.isna() & (values != "")
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        examples = "; ".join(f"line {r + 2} (patient {ids[r]}): {values.iloc[r][:30]!r}" for r in rows[:MAX_CELLS_NAMED])
        raise InputError(
            f"non-numeric value(s) in numeric column {column!r}: {examples}"
            f"{f' and {len(rows) - MAX_CELLS_NAMED} more' if len(rows) > MAX_CELLS_NAMED else ''}. Expected numbers (blank or 'n/a' when missing); "
            "correct the cells or set the column's type to categorical or text.",
            source=source,
            field=column,
        )
    if np.isinf(numbers.to_numpy(dtype=float)).any():
        raise InputError(f"column {column!r} holds infinite values; expected finite numbers.", source=source, field=column)
    return numbers.astype(float)


def known_scale(column: str) -> tuple | None:
    """``(scale, low, high)`` of a column named after a known clinical scale (``NIHSS``,
    ``clin.fm_ue``, ``UPDRS-III``, ``age`` ...), or None (also for change scores and percentages)."""
    name = column.partition(".")[2] if _has_prefix(column) else column
    name = _snake(name)
    if _NOT_A_SCALE_VALUE.search(name):
        return None
    for scale, pattern, low, high in SCALE_RANGES:
        if re.fullmatch(pattern, name):
            return scale, low, high
    return None


def _range_warnings(numbers: np.ndarray, frame, column: str, source: str, ids) -> list:
    """One warning per cell of a known scale's column that lies outside the scale's range."""
    scale = known_scale(column)
    if scale is None:
        return []
    name, low, high = scale
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero((numbers < low) | (numbers > high))
    entries = [
        ReportEntry.warning(
            source,
            f"line {r + 2} (patient {ids[r]}), column {column!r}: {frame[column].iloc[r]} is outside the {name} range {low}-{high}; "
            "check the cell (a typo, another scale or another unit?).",
            field=column,
            patient_id=ids[r],
            modality="clin",
        )
        for r in outside[:MAX_CELLS_NAMED]
    ]
    if len(outside) > MAX_CELLS_NAMED:
        entries.append(ReportEntry.warning(source, f"column {column!r}: {len(outside) - MAX_CELLS_NAMED} more values outside the {name} range {low}-{high}.", field=column, modality="clin"))
    return entries


def _mostly_numbers_warnings(values: pd.Series, column: str, kind: str, source: str, ids) -> list:
    """A column of mostly numbers used as binary or categorical: name its non-numbers, so that
    the choice is never silent."""
    present = values != ""
    numbers = _numeric(values)
    if not present.any():
        return []
    share = float(numbers[present].notna().mean())
    if share <= MOSTLY_NUMBERS or share == 1.0:
        return []
    rows = np.flatnonzero((numbers.isna() & present).to_numpy())
    cells = "; ".join(f"line {r + 2} (patient {ids[r]}): {values.iloc[r][:30]!r}" for r in rows[:MAX_CELLS_NAMED])
    more = f" and {len(rows) - MAX_CELLS_NAMED} more" if len(rows) > MAX_CELLS_NAMED else ""
    return [ReportEntry.warning(
        source,
        f"column {column!r} holds mostly numbers ({100 * share:.0f}%) but is used as {kind}; its cells that are not numbers: {cells}{more}. "
        "Correct them and make the column numeric, unless the levels are meant.",
        field=column,
        modality="clin",
    )]


def _level_name(level: str) -> str:
    return _snake(level) or "level"


def apply_column_mapping(table: ClinicalTable, mapping: ColumnMapping) -> MappedTable:
    """Convert a clinical table with a confirmed mapping into patients, features and outcomes.

    Raises
    ------
    InputError
        A mapped column that does not exist, a missing or duplicate patient id, a non-numeric
        value in a numeric column (naming the line, the patient and the value), an outcome that
        is not numeric, a responder value that is not yes/no, an unknown hemisphere, or no outcome
        mapped at all.
    """
    frame, source = table.frame, table.source
    for role, column in mapping.roles().items():
        if column not in frame.columns:
            raise InputError(f"the {role} column {column!r} is not in the table; columns are {list(frame.columns)[:12]}.", source=source, field=role)
    for column in mapping.features:
        if column not in frame.columns:
            raise InputError(f"feature column {column!r} is not in the table.", source=source, field=column)
    bad_types = {c: t for c, t in mapping.types.items() if t not in COLUMN_TYPES}
    if bad_types:
        raise InputError(f"unknown column type(s) {bad_types}; expected one of {COLUMN_TYPES}.", source=source, field=next(iter(bad_types)))
    if mapping.outcome is None and mapping.responder is None:
        raise InputError("no outcome column mapped; choose the column holding the improvement (%) or the responder label.", source=source, field="outcome")

    ids = frame[mapping.patient_id].map(normalise_patient_id)
    blank = np.flatnonzero((ids == "").to_numpy())
    if blank.size:
        raise InputError(f"line {blank[0] + 2} has no patient id; every row needs one.", source=source, field=mapping.patient_id)
    duplicated = ids[ids.duplicated(keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        lines = [int(i) + 2 for i in np.flatnonzero((ids == first).to_numpy())]
        raise InputError(
            f"duplicate patient id {first!r} on lines {lines}"
            f"{f' (and {duplicated.nunique() - 1} more duplicated ids)' if duplicated.nunique() > 1 else ''}; "
            "each patient must appear once.",
            source=source,
            field=mapping.patient_id,
        )
    index = pd.Index(ids.to_list(), name="patient_id")
    id_list = ids.to_list()
    report = []

    patients = pd.DataFrame(index=index)
    if mapping.indication:
        patients["indication"] = [_indication(v) for v in frame[mapping.indication]]
    else:
        patients["indication"] = "unspecified"
    if mapping.site:
        patients["site"] = frame[mapping.site].replace("", "unknown").to_numpy()
    if mapping.affected_hemisphere:
        sides = []
        for line, value in enumerate(frame[mapping.affected_hemisphere], start=2):
            side = _HEMISPHERES.get(value.lower()) if value else None
            if value and side is None:
                raise InputError(
                    f"line {line}: affected hemisphere {value!r}; expected left or right (L/R, LH/RH).",
                    source=source,
                    field=mapping.affected_hemisphere,
                )
            sides.append(side)
        patients["affected_hemisphere"] = sides

    columns = {}
    role_columns = set(mapping.roles().values()) | set(mapping.measures)
    leaked = [c for c in mapping.features if c in role_columns]
    if leaked:
        # An outcome (or id, site...) among the features would leak the answer into the model.
        report.append(ReportEntry.warning(source, f"column(s) {leaked} have a role and are not used as features.", field=leaked[0]))
    for column, feature in mapping.features.items():
        if column in role_columns:
            continue
        kind = mapping.types.get(column) or infer_type(frame[column])
        if not _has_prefix(feature):
            raise InputError(f"feature name {feature!r} needs a modality prefix such as 'clin.'.", source=source, field=column)
        twin = next((c for c, f in mapping.features.items() if f == feature and c != column and c not in role_columns), None)
        if twin is not None:
            raise InputError(f"columns {column!r} and {twin!r} would both become feature {feature!r}; rename one of them.", source=source, field=column)
        if kind in ("binary", "categorical"):
            report.extend(_mostly_numbers_warnings(frame[column], column, kind, source, id_list))
        if kind == "numeric":
            columns[feature] = _numeric_column(frame, column, source, id_list).to_numpy()
            report.extend(_range_warnings(columns[feature], frame, column, source, id_list))
        elif kind == "binary":
            columns.update(_binary_feature(frame[column], feature, column))
        elif kind == "categorical":
            levels = sorted(v for v in frame[column].unique() if v != "")
            for level in levels:
                values = np.where(frame[column] == "", np.nan, (frame[column] == level).astype(float))
                columns[f"{feature}_{_level_name(level)}"] = values
        else:
            report.append(ReportEntry.warning(source, f"column {column!r} is text; not used as a feature.", field=column))
    if mapping.indication and "clin.indication_pd" not in columns and set(patients["indication"]) == {"stroke", "parkinsons"}:
        columns["clin.indication_pd"] = (patients["indication"] == "parkinsons").astype(float).to_numpy()
    features = pd.DataFrame(columns, index=index)

    improvement = _numeric_column(frame, mapping.outcome, source, id_list).to_numpy() if mapping.outcome else np.full(len(index), np.nan)
    if mapping.responder:
        responder = np.array([_yes_no(v, line, source, mapping.responder) for line, v in enumerate(frame[mapping.responder], start=2)], dtype=float)
    else:
        responder = np.where(np.isnan(improvement), np.nan, (improvement >= mapping.responder_threshold_pct).astype(float))
    missing = np.isnan(responder)
    outcomes = pd.DataFrame({"improvement_pct": improvement, "responder": responder.astype(bool) if not missing.any() else responder}, index=index)
    if missing.any():
        listed = ", ".join(index[missing][:10])
        report.append(ReportEntry.warning(source, f"{int(missing.sum())} patient(s) have no outcome: {listed}{' ...' if missing.sum() > 10 else ''}; kept, but models cannot train on them.", field=mapping.outcome or mapping.responder))
    measures = {}
    for column, measure in mapping.measures.items():
        entry = measure_entry(measure, source, column)
        if column not in frame.columns:
            raise InputError(f"the outcome-measure column {column!r} is not in the table.", source=source, field=column)
        if entry["key"] in outcomes.columns:
            raise InputError(f"two columns would both become the outcome measure {entry['key']!r}; map {column!r} to another measure.", source=source, field=column)
        outcomes[entry["key"]] = _numeric_column(frame, column, source, id_list).to_numpy()
        measures[entry["key"]] = entry
    report.append(ReportEntry.ok(source, f"{len(index)} patients, {features.shape[1]} clinical feature column(s), outcome from {mapping.outcome or mapping.responder!r}"
                                 + (f", {len(measures)} described outcome measure(s)." if measures else ".")))
    return MappedTable(patients, features, outcomes, report, measures)


def measure_entry(measure, source: str, column: str) -> dict:
    """The outcome-bank entry (a dict as in ``assets/outcome_bank.yaml``) of a mapped measure: a bank
    key, or the fields of a described measure; validated, InputError naming the column otherwise."""

    from core.data.outcome_bank import described_outcome, load_outcome_bank

    if isinstance(measure, str):
        bank = {s.key: s for s in load_outcome_bank()}
        if measure not in bank:
            raise InputError(f"column {column!r} is mapped to {measure!r}, which is not a measure of the outcome bank.", source=source, field=column)
        spec = bank[measure]
    elif isinstance(measure, dict) and {"description", "indication", "direction"} <= set(measure):
        extra = {k: measure[k] for k in ("name", "kind", "body_region", "construct", "time_point_weeks", "unit", "instrument") if k in measure}
        if "range" in measure:
            extra["value_range"] = tuple(measure["range"])
        spec = described_outcome(measure["description"], measure["indication"], measure["direction"], source=source, **extra)
    else:
        raise InputError(f"column {column!r}: expected a bank measure's key or a description with indication and direction, found {measure!r}.", source=source, field=column)
    fields = asdict(spec)
    descriptor = {k: fields.pop(k) for k in ("construct", "body_region", "kind", "direction", "range", "unit", "time_point_weeks", "instrument")}
    descriptor["range"] = list(descriptor["range"])
    fields.pop("generator")
    return {**fields, "descriptor": descriptor}


def _indication(value: str) -> str:
    for pattern, name in _INDICATIONS:
        if pattern.search(value or ""):
            return name
    return value.strip().lower() or "unspecified"


def _yes_no(value: str, line: int, source: str, column: str) -> float:
    key = value.strip().lower()
    if key == "":
        return np.nan
    if key in _TRUE:
        return 1.0
    if key in _FALSE:
        return 0.0
    raise InputError(f"line {line}: responder value {value!r}; expected yes/no, 1/0 or true/false.", source=source, field=column)


def _binary_feature(values: pd.Series, feature: str, column: str) -> dict:
    present = values[values != ""]
    numbers = _numeric(present)
    if numbers.notna().all() and set(numbers.unique()) <= {0.0, 1.0}:
        return {feature: _numeric(values).to_numpy(dtype=float)}
    levels = sorted(present.str.lower().unique())
    lowered = values.str.lower()
    if _snake(column) in ("sex", "gender") and set(levels) & _MALE:
        positive, name = next(iter(set(levels) & _MALE)), f"{feature}_male"
    else:
        positive = levels[-1]
        name = f"{feature}_{_level_name(positive)}"
    return {name: np.where(values == "", np.nan, (lowered == positive).astype(float))}
