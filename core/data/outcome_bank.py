"""The outcome bank: clinical outcome measures with a text description and a structured
descriptor each (``assets/outcome_bank.yaml``), read and validated by :func:`load_outcome_bank`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from core.errors import InputError

BANK_PATH = Path(__file__).resolve().parents[2] / "assets" / "outcome_bank.yaml"
INDICATIONS = ("stroke", "parkinsons")
KINDS = ("performance", "clinician rating", "patient-reported", "treatment record")
DIRECTIONS = ("higher_better", "higher_worse")
CONSTRUCTS = ("impairment", "cst_damage", "distal", "frailty", "response", "burden", "tremor", "rigidity", "bradykinesia", "axial", "levodopa")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome measure of the bank (or one a user described).

    ``range`` is ``(low, high)`` in ``unit``; ``direction`` is ``"higher_better"`` or
    ``"higher_worse"``; ``generator`` holds the synthetic cohort's planting (intercept, noise_sd as a
    fraction of the range, decimals, weights per construct), empty for user-described outcomes.
    """

    key: str
    name: str
    family: str
    indication: str
    description: str
    construct: str
    body_region: str
    kind: str
    direction: str
    range: tuple
    unit: str
    time_point_weeks: float
    instrument: str
    generator: dict = field(default_factory=dict)

    @property
    def sign(self) -> float:
        """+1 when a higher value is better, -1 when worse."""
        return 1.0 if self.direction == "higher_better" else -1.0

    @property
    def title(self) -> str:
        """The name for a figure: with "…" when it is the first words of a longer description (a described measure)."""
        cut = self.description.strip() != self.name and " ".join(self.description.split()).startswith(self.name)
        return f"{self.name}…" if cut else self.name

    def descriptor_text(self) -> str:
        """The description with the structured descriptor spelled out: what the text model reads."""
        direction = "higher is better" if self.direction == "higher_better" else "higher is worse"
        return (f"{self.name}. {self.description} Construct: {self.construct}. Body region: {self.body_region}. "
                f"Kind: {self.kind}. {direction}. Time point: {self.time_point_weeks:g} weeks. Instrument: {self.instrument}.")


_REQUIRED = ("key", "name", "family", "indication", "description", "descriptor")
_DESCRIPTOR = ("construct", "body_region", "kind", "direction", "range", "unit", "time_point_weeks", "instrument")


def outcome_spec(entry: dict, source: str = "outcome bank", *, need_generator: bool = False) -> OutcomeSpec:
    """Validate one bank entry (a dict as in the YAML file) and return its :class:`OutcomeSpec`.

    Raises :class:`InputError` naming the entry and the field that is wrong.
    """
    if not isinstance(entry, dict):
        raise InputError(f"each outcome must be a mapping of fields, found {type(entry).__name__}.", source=source)
    label = str(entry.get("key", "?"))

    def fail(name, message):
        raise InputError(f"outcome {label!r}: {message}", source=source, field=name)

    for name in _REQUIRED:
        if entry.get(name) in (None, ""):
            fail(name, f"the field {name!r} is missing; every outcome needs {', '.join(_REQUIRED)}.")
    if not _KEY.match(str(entry["key"])):
        fail("key", f"expected lower-case letters, digits and underscores starting with a letter, found {entry['key']!r}.")
    if entry["indication"] not in INDICATIONS:
        fail("indication", f"expected one of {list(INDICATIONS)}, found {entry['indication']!r}.")
    descriptor = entry["descriptor"]
    if not isinstance(descriptor, dict):
        fail("descriptor", f"expected a mapping with {list(_DESCRIPTOR)}, found {descriptor!r}.")
    for name in _DESCRIPTOR:
        if descriptor.get(name) in (None, ""):
            fail(f"descriptor.{name}", "missing.")
    if descriptor["kind"] not in KINDS:
        fail("descriptor.kind", f"expected one of {list(KINDS)}, found {descriptor['kind']!r}.")
    if descriptor["direction"] not in DIRECTIONS:
        fail("descriptor.direction", f"expected one of {list(DIRECTIONS)}, found {descriptor['direction']!r}.")
    value_range = descriptor["range"]
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        fail("descriptor.range", f"expected [low, high] numbers, found {value_range!r}.")
    if not low < high:
        fail("descriptor.range", f"expected low < high, found [{low:g}, {high:g}].")
    try:
        weeks = float(descriptor["time_point_weeks"])
    except (TypeError, ValueError):
        fail("descriptor.time_point_weeks", f"expected a number of weeks, found {descriptor['time_point_weeks']!r}.")
    generator = entry.get("generator") or {}
    if need_generator or generator:
        if not isinstance(generator, dict) or not isinstance(generator.get("weights"), dict) or not generator["weights"]:
            fail("generator.weights", "expected a mapping of construct to weight.")
        unknown = sorted(set(generator["weights"]) - set(CONSTRUCTS))
        if unknown:
            fail("generator.weights", f"unknown construct(s) {unknown}; expected some of {list(CONSTRUCTS)}.")
        for name in ("intercept", "noise_sd", "decimals"):
            if not isinstance(generator.get(name), (int, float)):
                fail(f"generator.{name}", f"expected a number, found {generator.get(name)!r}.")
        if not 0 < generator["noise_sd"] < 1:
            fail("generator.noise_sd", f"expected a fraction of the range between 0 and 1, found {generator['noise_sd']!r}.")
    return OutcomeSpec(key=str(entry["key"]), name=str(entry["name"]), family=str(entry["family"]), indication=str(entry["indication"]),
                       description=" ".join(str(entry["description"]).split()), construct=str(descriptor["construct"]),
                       body_region=str(descriptor["body_region"]), kind=str(descriptor["kind"]), direction=str(descriptor["direction"]),
                       range=(low, high), unit=str(descriptor["unit"]), time_point_weeks=weeks, instrument=str(descriptor["instrument"]),
                       generator=dict(generator))


def parse_outcome_bank(text: str, source: str = "outcome bank") -> tuple[OutcomeSpec, ...]:
    """Outcome specs from the YAML text of a bank; every entry validated, keys unique."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML ({error}).", source=source) from None
    if not isinstance(data, dict) or not isinstance(data.get("outcomes"), list) or not data["outcomes"]:
        raise InputError("expected a mapping with a non-empty list 'outcomes'.", source=source, field="outcomes")
    specs = tuple(outcome_spec(entry, source, need_generator=True) for entry in data["outcomes"])
    keys = pd.Series([s.key for s in specs])
    if keys.duplicated().any():
        raise InputError(f"outcome keys must be unique; repeated: {sorted(set(keys[keys.duplicated()]))}.", source=source, field="key")
    return specs


@lru_cache(maxsize=4)
def load_outcome_bank(path: str | Path = BANK_PATH) -> tuple[OutcomeSpec, ...]:
    """The shipped outcome bank (or another bank file), validated."""
    path = Path(path)
    return parse_outcome_bank(path.read_text(encoding="utf-8"), source=path.name)


def bank_table(specs) -> pd.DataFrame:
    """One row per outcome (index ``key``): name, family, indication, descriptor fields."""
    rows = [{"key": s.key, "name": s.name, "family": s.family, "indication": s.indication, "construct": s.construct, "body_region": s.body_region,
             "kind": s.kind, "direction": s.direction, "low": s.range[0], "high": s.range[1], "unit": s.unit, "time_point_weeks": s.time_point_weeks,
             "instrument": s.instrument, "description": s.description} for s in specs]
    return pd.DataFrame(rows).set_index("key")


def descriptor_vectors(specs, vocabulary: dict | None = None) -> tuple[np.ndarray, dict]:
    """Structured descriptors as numbers (outcomes x columns) and the vocabulary used.

    One-hot kind, indication and body region (of the ``vocabulary``, built from ``specs`` when
    None, so an unseen body region is all zeros), the direction as +1/-1 and the time point in
    units of 12 weeks. The construct is text, left to the text embedding.
    """
    if vocabulary is None:
        vocabulary = {"kind": list(KINDS), "indication": list(INDICATIONS), "body_region": sorted({s.body_region for s in specs})}
    rows = []
    for s in specs:
        row = [float(s.kind == k) for k in vocabulary["kind"]] + [float(s.indication == i) for i in vocabulary["indication"]]
        row += [float(s.body_region == b) for b in vocabulary["body_region"]] + [s.sign, s.time_point_weeks / 12.0]
        rows.append(row)
    return np.asarray(rows, float), vocabulary


def described_outcome(description: str, indication: str, direction: str, *, name: str | None = None, kind: str = "clinician rating",
                      body_region: str = "whole body", construct: str | None = None, time_point_weeks: float = 12.0, value_range=(0.0, 100.0),
                      unit: str = "points", instrument: str | None = None, source: str = "described outcome") -> OutcomeSpec:
    """An outcome measure a user describes (not in the bank), validated like a bank entry.

    Its family is its own (``user:<name>``), so it is never mistaken for a seen instrument.
    """
    name = name or " ".join(str(description).split()[:6])
    key = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "described"
    entry = {"key": key if key[0].isalpha() else f"m_{key}", "name": name, "family": f"user:{key}", "indication": indication, "description": description,
             "descriptor": {"construct": construct or name, "body_region": body_region, "kind": kind, "direction": direction,
                            "range": list(value_range), "unit": unit, "time_point_weeks": time_point_weeks, "instrument": instrument or name}}
    return outcome_spec(entry, source)
