"""core.evaluation.report: the TRIPOD+AI model report of a run, its CI table and the prediction export."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from core.evaluation.metrics import METRICS, binary_metrics_ci, calibration_curve, expected_calibration_error
from core.evaluation.performance import CLINICAL, MODEL, PREP2, binary_ci_tables, calibration_line, regression_ci_tables, repeat_spread, score_table
from core.evaluation.report import ci_table, model_report_html, prediction_table
from core.modelling.validation import CohortSplitter, cross_validate, run_digest
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort

SECTIONS = ("Data source", "Participants and outcome", "Predictors", "Missing data", "Model", "Validation", "Performance", "Calibration")
N_BOOT = 200


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(CohortConfig(name="report", n_patients=150, seed=4), n_jobs=1)


@pytest.fixture(scope="module")
def runs(cohort):
    """A 2 x 5-fold run of each outcome (100 trees at most) and its digest."""
    splitter, params = CohortSplitter(n_repeats=2), {"n_estimators": 100}
    return {outcome: (cross_validate(cohort, outcome, splitter=splitter, params=params, interactions=False, n_jobs=1),
                      run_digest(cohort, outcome, splitter, params, list(cohort.features.columns)))
            for outcome in ("responder", "improvement_pct")}


def cell(table: pd.DataFrame, metric: str, digits: int = 3) -> str:
    """A CI table's row as the report writes it: "estimate (low–high)"."""
    row = table.loc[metric]
    return f"{row['estimate']:.{digits}f} ({row['ci_low']:.{digits}f}–{row['ci_high']:.{digits}f})"


def test_binary_report_has_every_tripod_section_and_the_runs_auc_with_its_ci(cohort, runs):
    result, run = runs["responder"]
    report = model_report_html(cohort, result, run, n_boot=N_BOOT)
    assert report.startswith("<!DOCTYPE html>") and report.endswith("</html>")
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in report
    y, p = cohort.outcomes["responder"].to_numpy(), result.prediction.to_numpy()
    model = binary_metrics_ci(y, p, 0.5, n_boot=N_BOOT)
    assert cell(model, "auc") in report and cell(model, "sensitivity") in report
    scores = score_table(cohort, result)
    tables = binary_ci_tables(scores, 0.5, n_boot=N_BOOT)
    for name in (MODEL, CLINICAL, PREP2):  # the baselines sit beside the model, with their patient counts
        assert f"{name} (n={int(tables[name].loc['n', 'estimate'])})" in report
        assert cell(tables[name], "auc") in report
    assert f"<b>{expected_calibration_error(y, p):.4f}</b>" in report
    bins = calibration_curve(y, p)
    calibration = report.split("<h2>Calibration</h2>")[1]
    assert calibration.count("<tr>") == len(bins)  # one body row per bin (the header row carries a style)
    assert all(f"<td>{rate:.4g}</td>" in calibration for rate in bins["observed_rate"])
    _, spread = repeat_spread(result, scores["observed"])
    assert f"<td>{spread.loc['auc', 'mean']:.4g}</td>" in report
    assert f"<code>{run}</code>" in report and result.scheme in report and f"({N_BOOT} resamples" in report
    assert "Threshold-dependent figures at a predicted probability of 0.50." in report
    assert all(f"<code>{f}</code>" in report for f in cohort.features.columns)
    assert "<th>n_estimators</th><td>100</td>" in report  # the run's own setting, beside the defaults


def test_the_threshold_moves_the_threshold_dependent_rows_only(cohort, runs):
    result, run = runs["responder"]
    y, p = cohort.outcomes["responder"].to_numpy(), result.prediction.to_numpy()
    at_half, at_03 = binary_metrics_ci(y, p, 0.5, n_boot=N_BOOT), binary_metrics_ci(y, p, 0.3, n_boot=N_BOOT)
    report = model_report_html(cohort, result, run, threshold=0.3, n_boot=N_BOOT)
    assert cell(at_03, "sensitivity") in report and "at a predicted probability of 0.30" in report
    assert cell(at_half, "sensitivity") != cell(at_03, "sensitivity")
    assert cell(at_half, "sensitivity") not in report
    assert cell(at_half, "auc") == cell(at_03, "auc") and cell(at_03, "auc") in report


def test_continuous_report_gives_r2_with_its_ci_and_the_calibration_line(cohort, runs):
    result, run = runs["improvement_pct"]
    report = model_report_html(cohort, result, run, n_boot=N_BOOT)
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in report
    scores = score_table(cohort, result)
    tables = regression_ci_tables(scores, n_boot=N_BOOT)
    assert cell(tables[MODEL], "r2") in report and cell(tables[CLINICAL], "mae") in report
    slope, intercept = calibration_line(scores["observed"], scores["model"])
    assert f"<th>calibration slope</th>\n      <td>{slope:.4g}</td>" in report
    assert f"<th>calibration intercept (% points)</th>\n      <td>{intercept:.4g}</td>" in report
    assert "Expected calibration error" not in report and "PREP2" not in report
    assert "Continuous improvement in %" in report


def test_a_score_table_at_hand_gives_the_same_report(cohort, runs):
    result, run = runs["responder"]
    assert model_report_html(cohort, result, run, n_boot=N_BOOT, scores=score_table(cohort, result)) == model_report_html(cohort, result, run, n_boot=N_BOOT)


def test_the_report_escapes_what_comes_from_the_cohort(cohort, runs):
    result, run = runs["responder"]
    hostile = dataclasses.replace(cohort, name="<script>alert(1)</script>", provenance={"kind": "upload", "file": "<img src=x onerror=alert(1)>"})
    report = model_report_html(hostile, result, run, n_boot=N_BOOT)
    assert "<script>" not in report and "<img" not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report and "Source: upload." in report


def test_ci_table_writes_estimate_and_interval_per_model_and_drops_the_counts():
    model = pd.DataFrame({"estimate": [0.81234, 0.2, np.nan, 60, 0.4], "ci_low": [0.7, np.nan, np.nan, np.nan, np.nan],
                          "ci_high": [0.9, np.nan, np.nan, np.nan, np.nan], "n_valid": [1000, 0, 0, 0, 0]},
                         index=["auc", "brier", "ece", "n", "prevalence"])
    unnamed = model.drop(index="n")
    table = ci_table({"A": model, "B": unnamed}, digits=2)
    assert table.index.name == "metric (95% CI)"
    assert list(table.columns) == ["A (n=60)", "B"]
    assert list(table.index) == [METRICS[m].label for m in ("auc", "brier", "ece")]
    assert list(table["A (n=60)"]) == ["0.81 (0.70–0.90)", "0.20", "—"]


def test_prediction_table_is_the_score_table_with_each_repeats_prediction(cohort, runs):
    result, _ = runs["responder"]
    scores = score_table(cohort, result)
    table = prediction_table(result, scores)
    assert list(table.columns) == [*scores.columns, "repeat_0", "repeat_1"]
    pd.testing.assert_frame_equal(table[scores.columns], scores)
    np.testing.assert_array_equal(table[["repeat_0", "repeat_1"]].mean(axis=1), result.prediction)
