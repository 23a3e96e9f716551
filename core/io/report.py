"""The validation report: one entry per finding about an uploaded file (ok / warning / error).

Every reader returns its data together with a list of :class:`ReportEntry`; the Upload page
shows them as a table (:func:`report_frame`). Bad input that stops a reader is an
:class:`~core.errors.InputError`; :meth:`ReportEntry.from_error` turns it into an ``error``
entry when a multi-patient upload carries on without that file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from core.errors import InputError

Status = Literal["ok", "warning", "error"]
STATUSES = ("ok", "warning", "error")  # in order of severity


@dataclass(frozen=True)
class ReportEntry:
    """One finding about one file.

    Attributes
    ----------
    source : file name (or path inside the upload) the finding is about.
    status : ``"ok"`` (read and checked), ``"warning"`` (usable, but look at it) or ``"error"``
        (not usable; the data it would have given are missing).
    message : what was found and, for warnings and errors, what to do about it.
    field : column, channel, header field or parameter concerned, if any.
    patient_id : patient the file belongs to (multi-patient uploads), if any.
    modality : ``"dti"``, ``"emg"``, ``"kin"`` or ``"clin"``, if the file feeds one.
    """

    source: str
    status: Status
    message: str
    field: str | None = None
    patient_id: str | None = None
    modality: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, found {self.status!r}")

    @classmethod
    def ok(cls, source: str, message: str, **kw) -> ReportEntry:
        return cls(source, "ok", message, **kw)

    @classmethod
    def warning(cls, source: str, message: str, **kw) -> ReportEntry:
        return cls(source, "warning", message, **kw)

    @classmethod
    def error(cls, source: str, message: str, **kw) -> ReportEntry:
        return cls(source, "error", message, **kw)

    @classmethod
    def from_error(cls, exc: InputError, source: str | None = None, **kw) -> ReportEntry:
        """An ``error`` entry from an InputError (its message without the ``source: [field]`` prefix)."""
        return cls(exc.source or source or "upload", "error", bare_message(exc), field=exc.field, **kw)

    def with_context(self, **kw) -> ReportEntry:
        """A copy with ``patient_id`` / ``modality`` / ``source`` filled in."""
        return ReportEntry(**{**asdict(self), **{k: v for k, v in kw.items() if v is not None}})


def bare_message(exc: InputError) -> str:
    """An InputError's message without the ``"<source>: [<field>]"`` prefix it formats."""
    text = str(exc)
    if exc.source and text.startswith(f"{exc.source}:"):
        text = text[len(exc.source) + 1 :].lstrip()
    if exc.field and text.startswith(f"[{exc.field}]"):
        text = text[len(exc.field) + 2 :].lstrip()
    return text


def attribute(exc: InputError, source: str, field: str | None = None) -> InputError:
    """The same InputError, naming ``source`` (and ``field``) when it did not name a file yet.

    Errors raised by the feature code (:mod:`core.features`) name a field but no
    file; the readers re-raise them through this so the message says which upload is at fault.
    """
    if exc.source:
        return exc
    new = InputError(bare_message(exc), source=source, field=exc.field or field)
    new.__cause__ = exc
    return new


def worst_status(entries) -> Status:
    """The most severe status among entries (``"ok"`` for none)."""
    worst = 0
    for entry in entries:
        worst = max(worst, STATUSES.index(entry.status))
    return STATUSES[worst]


def report_frame(entries) -> pd.DataFrame:
    """Entries as a table for display: source, patient_id, modality, status, field, message."""
    columns = ["source", "patient_id", "modality", "status", "field", "message"]
    return pd.DataFrame([asdict(e) for e in entries], columns=columns)
