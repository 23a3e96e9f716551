"""The bank's outcome measures in synthetic cohorts: latent constructs per patient, and each measure
as a documented function of them (``assets/outcome_bank.yaml``, field ``generator``).

Every construct is standardised within the indication (mean 0, SD 1 over that indication's
patients); a measure of the other indication is NaN. The expected value of a measure is
``low + (high - low) * sigmoid(intercept + sum(weight * construct))``; the recorded value adds
Gaussian noise of ``noise_sd * (high - low)``, is clipped to the range and rounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from core.data.outcome_bank import CONSTRUCTS, OutcomeSpec, load_outcome_bank


def _standardised(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values))
    part = values[members]
    out[members] = (part - part.mean()) / (part.std() or 1.0) if members.sum() > 1 else 0.0
    return out


def measure_constructs(latents: pd.DataFrame, eta: np.ndarray, seed: int) -> pd.DataFrame:
    """The latent constructs behind the bank's measures (patients x :data:`CONSTRUCTS`).

    From the cohort's latents: ``impairment`` (severity), ``cst_damage`` (1 - CST integrity),
    ``frailty`` (-reserve), ``response`` (the planted improvement's linear predictor ``eta``),
    ``tremor`` (log tremor amplitude), ``levodopa`` (levodopa response). Mixed with factors of their
    own (drawn from ``seed``): ``distal`` (hand deficit: CST damage and severity plus its own part),
    ``burden`` (illness experience: severity plus its own part), ``rigidity``, ``bradykinesia``
    (severity plus their own parts) and ``axial`` (severity, frailty and its own part).
    """
    rng = np.random.default_rng([seed, 11])
    n = len(latents)
    own = {name: rng.normal(0, 1, n) for name in ("distal", "burden", "rigidity", "bradykinesia", "axial")}
    stroke = (latents["indication"] == "stroke").to_numpy()
    table = {}
    for members in (stroke, ~stroke):
        if not members.any():
            continue
        z = lambda values: _standardised(np.nan_to_num(np.asarray(values, float)), members)  # noqa: E731
        impairment, frailty = z(latents["severity"]), z(-latents["reserve"])
        part = {
            "impairment": impairment,
            "cst_damage": z(1 - latents["cst_integrity"]) if members is stroke else np.zeros(n),
            "frailty": frailty,
            "response": z(eta),
            "burden": z(0.5 * impairment + 0.85 * own["burden"]),
            "tremor": z(np.log(latents["tremor_amplitude_mm"])),
            "levodopa": z(latents["levodopa_response_pct"]),
            "rigidity": z(0.7 * impairment + 0.7 * own["rigidity"]),
            "bradykinesia": z(0.8 * impairment + 0.6 * own["bradykinesia"]),
            "axial": z(0.5 * impairment + 0.4 * frailty + 0.7 * own["axial"]),
        }
        part["distal"] = z(0.6 * part["cst_damage"] + 0.5 * impairment + 0.6 * own["distal"]) if members is stroke else np.zeros(n)
        for name in CONSTRUCTS:
            table.setdefault(name, np.zeros(n))[members] = part[name][members]
    return pd.DataFrame({name: table[name] for name in CONSTRUCTS}, index=latents.index)


def expected_measure(spec: OutcomeSpec, constructs: pd.DataFrame, indication: np.ndarray) -> np.ndarray:
    """Noise-free value of one measure for every patient (NaN outside its indication)."""
    generator = spec.generator
    linear = generator["intercept"] + sum(w * constructs[c].to_numpy() for c, w in generator["weights"].items())
    low, high = spec.range
    return np.where(np.asarray(indication) == spec.indication, low + (high - low) * expit(linear), np.nan)


def bank_measures(latents: pd.DataFrame, eta: np.ndarray, seed: int, specs=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recorded values and expected (noise-free) values of every measure of the bank.

    Two DataFrames (patients x measure keys); each measure's noise comes from its own seeded stream,
    so adding a measure to the bank does not change the others.
    """
    specs = load_outcome_bank() if specs is None else specs
    constructs = measure_constructs(latents, eta, seed)
    indication = latents["indication"].to_numpy()
    recorded, expected = {}, {}
    for spec in specs:
        mean = expected_measure(spec, constructs, indication)
        low, high = spec.range
        noise = np.random.default_rng([seed, 12, *spec.key.encode()]).normal(0, spec.generator["noise_sd"] * (high - low), len(mean))
        recorded[spec.key] = np.round(np.clip(mean + noise, low, high), int(spec.generator["decimals"]))
        expected[spec.key] = mean
    return pd.DataFrame(recorded, index=latents.index), pd.DataFrame(expected, index=latents.index)
