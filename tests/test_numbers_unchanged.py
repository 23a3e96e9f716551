"""The engine's numbers, pinned: digests of a cohort, a cross-validation run, an ablation and a TMS map.

``tests/reference_digests.json`` holds what the engine computed when it was recorded
(``python -m tests.test_numbers_unchanged --record``). A change anywhere that moves one of these
numbers by one bit fails here: features of the demo cohort, out-of-fold predictions, SHAP values
and interaction values of a 2 x 5 cross-validation, the per-fold scores of a modality ablation,
and the thresholds of the TMS map at the left hand-knob preset (to a relative 1e-5: torch's CPU
kernels round differently on different processors).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REFERENCE = Path(__file__).with_name("reference_digests.json")
ABLATION_STRUCTURE = ["subset", "repeat", "fold", "n_train", "n_test", "test_hash"]
# Metric scores are compared to 1e-12: a metric computed by another library may round its last bit differently.
METRIC_TOLERANCE = 1e-12


def digest(*parts) -> str:
    """sha256 of arrays (their exact bytes, as float64 where numeric), tables and strings."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update("|".join(map(str, part.columns)).encode())
            h.update("|".join(map(str, part.index)).encode())
            for column in part.columns:
                h.update(_column_bytes(part[column]))
        elif isinstance(part, pd.Series):
            h.update("|".join(map(str, part.index)).encode())
            h.update(_column_bytes(part))
        elif isinstance(part, np.ndarray):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        else:
            h.update(str(part).encode())
    return h.hexdigest()


def _column_bytes(values: pd.Series) -> bytes:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return np.ascontiguousarray(values.to_numpy(dtype=np.float64, na_value=np.nan)).tobytes()
    return "|".join(map(str, values)).encode()


def demo_cohort():
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    return generate_cohort(presets()["default"])


def cohort_digests(cohort) -> dict:
    measures = list(cohort.measure_specs())
    planted = cohort.outcomes.drop(columns=measures)
    return {"features": digest(cohort.features), "outcomes": digest(planted), "measures": digest(cohort.outcomes[measures]), "patients": digest(cohort.patients)}


def cv_digests(cohort) -> dict:
    from core.modelling.validation import CohortSplitter, cross_validate

    result = cross_validate(cohort, "responder", splitter=CohortSplitter(n_splits=5, n_repeats=2))
    return {
        "prediction_by_repeat": digest(result.prediction_by_repeat),
        "shap": digest(result.explanation.frame()),
        "shap_base": digest(pd.Series(result.explanation.base_values, index=result.explanation.index)),
        "interaction": digest(result.interaction),
        "folds": digest(*[np.concatenate([f.train, f.test]) for f in result.folds]),
    }


def ablation_scores(cohort) -> pd.DataFrame:
    from core.ablation.config import AblationConfig
    from core.ablation.run import run_ablation

    result = run_ablation(cohort, AblationConfig(n_splits=5, n_repeats=2, n_permutations=3))
    return pd.concat([result.scores.assign(kind="subset"), result.permutation_scores.assign(kind="permutation")], ignore_index=True)


def ablation_reference(scores: pd.DataFrame) -> dict:
    structure = [c for c in ["kind", "permutation", *ABLATION_STRUCTURE] if c in scores]
    metrics = sorted(c for c in scores.columns if c not in structure)
    return {"structure": digest(scores[structure]), "metric_columns": metrics, "metrics": scores[metrics].to_numpy(dtype=float).tolist()}


def _fingerprint(values: np.ndarray) -> list:
    """Finite count, sum, sum of squares and a fixed random projection of an array's finite values."""
    v = np.asarray(values, dtype=float).ravel()
    finite = np.isfinite(v)
    weights = np.random.default_rng(0).normal(size=v.size)
    return [float(finite.sum()), float(v[finite].sum()), float((v[finite] ** 2).sum()), float((weights[finite] * v[finite]).sum())]


def tms_map_digests() -> dict:
    """Per cell type: the vertices exactly, the thresholds and E-field as fingerprints.

    The thresholds come from torch's CPU kernels, whose last bits depend on the processor's
    instruction set, so they are compared to a relative 1e-5 rather than bit for bit.
    """
    from core.tms.cortex import coil_preset, load_cortex
    from core.tms.maps import threshold_map

    cortex = load_cortex()
    tmap = threshold_map(coil_preset(cortex, "hand_knob_left"), cortex=cortex)
    return {ct: {"vertices": digest(tmap.vertices), "thresholds": _fingerprint(tmap.thresholds_a_per_us[ct]),
                 "efield": _fingerprint(tmap.efield_per_a_per_us[ct]), "evaluated": int(np.sum(tmap.evaluated[ct]))} for ct in tmap.cell_types}


def compute_all(demo, small) -> dict:
    return {
        "demo_cohort": cohort_digests(demo),
        "cv_2x5_demo": cv_digests(demo),
        "ablation_small": ablation_reference(ablation_scores(small)),
        "tms_map_hand_knob_left": tms_map_digests(),
    }


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_demo_cohort_is_unchanged(default_cohort, reference):
    assert cohort_digests(default_cohort) == reference["demo_cohort"]


def test_cross_validation_predictions_and_shap_are_unchanged(default_cohort, reference):
    assert cv_digests(default_cohort) == reference["cv_2x5_demo"]


def test_ablation_fold_scores_are_unchanged(small_cohort, reference):
    got = ablation_reference(ablation_scores(small_cohort))
    want = reference["ablation_small"]
    assert got["structure"] == want["structure"]
    assert got["metric_columns"] == want["metric_columns"]
    np.testing.assert_allclose(np.array(got["metrics"]), np.array(want["metrics"]), rtol=0, atol=METRIC_TOLERANCE)


def test_tms_map_is_unchanged(reference):
    got, want = tms_map_digests(), reference["tms_map_hand_knob_left"]
    assert sorted(got) == sorted(want)
    for cell_type in want:
        assert got[cell_type]["vertices"] == want[cell_type]["vertices"]
        assert got[cell_type]["evaluated"] == want[cell_type]["evaluated"]
        for part in ("thresholds", "efield"):
            # The projection sums values of both signs, so its tolerance scales with the plain sum.
            np.testing.assert_allclose(got[cell_type][part], want[cell_type][part], rtol=1e-5, atol=1e-5 * abs(want[cell_type][part][1]), err_msg=f"{cell_type} {part}")


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit("usage: python -m tests.test_numbers_unchanged --record   (rewrites tests/reference_digests.json)")
    from core.synth.config import CohortConfig
    from core.synth.generator import generate_cohort

    small = generate_cohort(CohortConfig(name="small", n_patients=300, seed=7), n_jobs=1)
    REFERENCE.write_text(json.dumps(compute_all(demo_cohort(), small), indent=1) + "\n")
    print(f"wrote {REFERENCE}")
