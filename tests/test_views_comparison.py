"""Figures of a model comparison: one trace per model plus the references, and the numbers behind each figure."""

import importlib.util
import types

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from components.views.comparison import calibration_figure, decision_curves_figure, learning_curve_figure, metric_forest_figure, paired_difference_figure, pattern_figure, pattern_label
from core.errors import InputError
from core.evaluation.comparison import COMPARED_METRICS, DECISION_THRESHOLDS, PAIRED_METRICS, compare_models
from core.modelling.validation import CohortSplitter, CVResult

MODELS = ["xgboost", "deep fusion", "stacked"]
N = 300


def fake_cohort(with_oracle: bool):
    """A cohort-like object: two features per modality, DTI missing for 20% and EMG for 10% of patients."""
    rng = np.random.default_rng(0)
    index = pd.Index([f"P{i:04d}" for i in range(N)], name="patient_id")
    features = pd.DataFrame({f"{m}.f{k}": rng.normal(size=N) for m in ("dti", "emg", "kin", "clin") for k in range(2)}, index=index)
    features.loc[features.index[: N // 5], ["dti.f0", "dti.f1"]] = np.nan
    features.loc[features.index[N // 5: N // 5 + N // 10], ["emg.f0", "emg.f1"]] = np.nan
    truth = expit(1.5 * features["clin.f0"] + features["kin.f0"])
    outcomes = pd.DataFrame({"improvement_pct": 0.0, "responder": (rng.random(N) < truth).astype(int)}, index=index)
    if with_oracle:
        outcomes["true_response_probability"] = truth
    return types.SimpleNamespace(name="fake", features=features, outcomes=outcomes, n_patients=N)


def runs(cohort, models=MODELS):
    rng = np.random.default_rng(1)
    folds = CohortSplitter(n_splits=5, n_repeats=1).split(cohort.outcomes["responder"])
    signal = 1.5 * cohort.features["clin.f0"].to_numpy() + cohort.features["kin.f0"].to_numpy()
    out = {}
    for k, name in enumerate(models):
        p = expit((1.0 - 0.3 * k) * signal + rng.normal(0, 0.5 + 0.5 * k, N))[:, None]
        table = pd.DataFrame(p, index=cohort.features.index, columns=["repeat_0"])
        out[name] = CVResult(outcome="responder", features=[], prediction=table["repeat_0"].rename("prediction"), prediction_by_repeat=table, explanation=None,
                             interaction=None, folds=folds, fold_models=[], scheme="1 x 5-fold")
    return out


@pytest.fixture(scope="module", params=[True, False], ids=["oracle", "no-oracle"])
def comparison(request):
    cohort = fake_cohort(request.param)
    return compare_models(cohort, runs(cohort), n_boot=100, seed=0)


def legend_names(fig) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False]


def test_metric_forest_has_a_panel_per_metric_and_a_point_per_model(comparison):
    fig, data = metric_forest_figure(comparison)
    assert legend_names(fig) == MODELS
    assert len(fig.data) == len(COMPARED_METRICS) * len(MODELS)
    assert {t.name for t in fig.data} == set(MODELS)
    oracle = [] if comparison.oracle is None else ["oracle_auc"]
    assert list(data.columns) == ["model", "metric", "estimate", "ci_low", "ci_high", "label", *oracle] and len(data) == len(COMPARED_METRICS) * len(MODELS)
    titles = [a.text for a in fig.layout.annotations if a.text and "better" in a.text or a.text and "ideal" in a.text]
    assert "Brier score (lower is better)" in titles and any(t.startswith("ECE") and "lower is better" in t for t in titles)
    assert any("1 is ideal" in t for t in titles)
    # Each point carries its own interval.
    auc = next(t for t in fig.data if t.name == "xgboost")
    row = data[(data["model"] == "xgboost") & (data["metric"] == "auc")].iloc[0]
    assert auc.x[0] == pytest.approx(row["estimate"]) and auc.error_x.array[0] == pytest.approx(row["ci_high"] - row["estimate"])
    # The oracle's AUC, when the cohort has one, is a dotted line named in the AUC panel's title.
    auc_title = next(a.text for a in fig.layout.annotations if a.text.startswith("ROC AUC"))
    oracle_lines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    if comparison.oracle is None:
        assert "oracle" not in auc_title and not oracle_lines
    else:
        oracle_auc = comparison.oracle["oracle_auc"].iloc[0]
        assert f"oracle {oracle_auc:.3f}" in auc_title and len(oracle_lines) == 1 and oracle_lines[0].x0 == pytest.approx(oracle_auc)


def test_paired_differences_show_every_fold_and_the_mean(comparison):
    fig, data = paired_difference_figure(comparison)
    others = MODELS[1:]
    assert legend_names(fig) == others
    assert {t.name for t in fig.data} == set(others) and len(fig.data) == 2 * len(others) * len(PAIRED_METRICS)
    assert list(data.columns) == ["repeat", "fold", "model", "metric", "difference", "value", "reference_value", "mean", "ci_low", "ci_high", "p"]
    assert len(data) == 5 * len(others) * len(PAIRED_METRICS)
    dots = [t for t in fig.data if t.mode == "markers" and len(t.x) == 5]
    assert len(dots) == len(others) * len(PAIRED_METRICS)
    assert sum(1 for s in fig.layout.shapes if s.x0 == 0 and s.x1 == 0) == len(PAIRED_METRICS)  # a zero line per panel
    assert "xgboost" in fig.layout.title.text


def test_paired_differences_of_a_single_model_say_there_is_nothing_to_compare():
    cohort = fake_cohort(False)
    single = compare_models(cohort, runs(cohort, ["xgboost"]), n_boot=20)
    fig, data = paired_difference_figure(single)
    assert data.empty and "nothing to compare" in fig.layout.annotations[0].text


def test_decision_curves_have_a_curve_per_model_and_both_references(comparison):
    fig, data = decision_curves_figure(comparison)
    assert legend_names(fig) == [*MODELS, "treat all", "treat none"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == len(MODELS)
    assert list(data.columns) == ["threshold", "model", "net_benefit", "ci_low", "ci_high"] and len(data) == len(DECISION_THRESHOLDS) * (len(MODELS) + 2)
    assert "net benefit" in fig.layout.yaxis.title.text and "threshold" in fig.layout.xaxis.title.text


def test_calibration_has_a_curve_per_model_and_the_diagonal(comparison):
    fig, data = calibration_figure(comparison)
    names = legend_names(fig)
    assert names[0] == "perfect calibration" and len(names) == len(MODELS) + 1
    assert [n.split(" (slope")[0] for n in names[1:]] == MODELS
    assert list(data.columns) == ["model", "bin", "mean_predicted", "observed_rate", "n", "ci_low", "ci_high"]
    assert (data.groupby("model")["n"].sum() == N).all() and data.groupby("model").size().max() <= 10


def test_pattern_figure_has_a_point_per_model_and_pattern(comparison):
    fig, data = pattern_figure(comparison)
    assert legend_names(fig) == MODELS
    patterns = comparison.by_pattern["pattern"].unique()
    assert len(data) == len(patterns) * len(MODELS)
    assert {"pattern", "model", "n", "n_responders", "auc", "ci_low", "ci_high", "note", "pattern_label"} <= set(data.columns)
    ticks = list(fig.layout.yaxis.ticktext)
    assert len(ticks) == len(patterns) and all("n = " in t for t in ticks)
    assert ticks[0].startswith("all modalities<br>n = 210") and any(t.startswith("no DTI<br>n = 60") for t in ticks)
    assert pattern_label("emg+kin+clin", ["dti", "emg", "kin", "clin"]) == "no DTI"


def test_learning_curve_is_on_a_log_axis_with_the_oracle_dashed():
    sizes = [100, 250, 500, 1000, 2000]
    table = pd.DataFrame([
        {"n_patients": n, "model": m, "auc": a, "ci_low": a - 0.05, "ci_high": a + 0.04, "oracle_auc": 0.9}
        for n in sizes for m, a in (("xgboost", 0.7 + 0.03 * np.log10(n)), ("deep fusion", 0.6 + 0.06 * np.log10(n)))
    ])  # fmt: skip
    fig, data = learning_curve_figure(table)
    assert legend_names(fig) == ["xgboost", "deep fusion", "oracle (true response probability)"]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == sizes
    oracle = fig.data[-1]
    assert oracle.line.dash == "dash" and list(oracle.y) == [0.9] * 5
    assert len(data) == 10 and list(data.columns) == list(table.columns)
    fig, _ = learning_curve_figure(table.drop(columns="oracle_auc"))
    assert legend_names(fig) == ["xgboost", "deep fusion"]
    with pytest.raises(InputError, match="lacks column"):
        learning_curve_figure(table.drop(columns="ci_low"))


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is None, reason="kaleido is not installed: no static image export")
def test_figures_export_to_png(comparison, tmp_path):
    sizes = [100, 250, 500, 1000, 2000]
    table = pd.DataFrame([{"n_patients": n, "model": "xgboost", "auc": 0.8, "ci_low": 0.75, "ci_high": 0.85, "oracle_auc": 0.9} for n in sizes])
    figures = {
        "forest": metric_forest_figure(comparison), "paired": paired_difference_figure(comparison), "decision": decision_curves_figure(comparison),
        "calibration": calibration_figure(comparison), "pattern": pattern_figure(comparison), "learning": learning_curve_figure(table),
    }  # fmt: skip
    for name, (fig, _) in figures.items():
        path = tmp_path / f"{name}.png"
        fig.write_image(path, width=900)
        assert path.stat().st_size > 10_000
