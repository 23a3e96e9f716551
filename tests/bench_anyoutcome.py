"""Benchmark of any-outcome prediction (``python -m tests.bench_anyoutcome``): one JSON line per figure.
Not a test: nothing here asserts a time or a score.

On the 2,000-patient default cohort with the whole outcome bank (41 measures, 17 instrument families):

- ``any_outcome_evaluation_s``: the full held-out evaluation (5 patient folds x every held-out
  family, zero-shot, baselines, few-shot at K = 10..100, references). Baseline in the same run: one
  fit of the zero-shot model on all measures, times the 85 fits the evaluation makes.
- ``zero_shot_vs_<baseline>``: zero-shot signed r minus each description baseline's, averaged over
  held-out families, with the bootstrap 95% CI over families.
- ``few_shot_k<K>``: stacked meta-matching minus xgboost trained on the same K patients.
- ``zero_shot_by_similarity``: mean signed r of zero-shot and the nearest-seen baseline per
  similarity band (far / middle / near-twin).
"""

from __future__ import annotations

import json
import time


def emit(figure: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def main() -> None:
    from core.evaluation.anyoutcome import FEW_SHOT_K, evaluate_any_outcome
    from core.modelling.anyoutcome import fit_on_cohort
    from core.synth.config import presets
    from core.synth.generator import generate_cohort

    cohort = generate_cohort(presets()["default"])
    start = time.perf_counter()
    fit_on_cohort(cohort)
    one_fit = time.perf_counter() - start
    start = time.perf_counter()
    evaluation = evaluate_any_outcome(cohort)
    seconds = time.perf_counter() - start
    families = evaluation.similarity["family"].nunique()
    emit("any_outcome_evaluation_s", seconds, "s", bar=600.0, measures=len(evaluation.similarity), families=families, folds=evaluation.n_splits,
         baseline_zero_shot_fits_s=round(one_fit * evaluation.n_splits * families, 1), cores=2)
    summary = evaluation.summary().query("K == 0").set_index("method")
    for row in evaluation.paired().itertuples():
        emit(f"zero_shot_vs_{row.baseline}", row.mean_difference, "signed r difference", ci=[round(row.ci_low, 4), round(row.ci_high, 4)], p=round(row.p, 4),
             zero_shot_r=round(summary.at["zero_shot", "mean_r"], 4), baseline_r=round(summary.at[row.baseline, "mean_r"], 4), families=row.families)
    emit("any_outcome_references", summary.at["supervised", "mean_r"], "signed r", supervised_r=round(summary.at["supervised", "mean_r"], 4),
         ceiling_r=round(summary.at["ceiling", "mean_r"], 4), zero_shot_r=round(summary.at["zero_shot", "mean_r"], 4))
    for k in FEW_SHOT_K:
        paired = evaluation.paired("meta_matching_stacked", ("xgboost_k",), k=k)
        if len(paired):
            few = evaluation.summary().query("K == @k").set_index("method")["mean_r"]
            emit(f"few_shot_k{k}", paired["mean_difference"].iloc[0], "signed r difference", ci=[round(paired["ci_low"].iloc[0], 4), round(paired["ci_high"].iloc[0], 4)],
                 meta_matching_stacked_r=round(few["meta_matching_stacked"], 4), meta_matching_basic_r=round(few["meta_matching_basic"], 4), xgboost_k_r=round(few["xgboost_k"], 4))
    bands = evaluation.by_similarity()
    for band, row in bands.iterrows():
        emit("zero_shot_by_similarity", row["zero_shot"], "signed r", band=band, nearest_r=round(row["nearest"], 4), supervised_r=round(row["supervised"], 4), measures=int(row["measures"]))
    print(json.dumps({"sentence": evaluation.summary_sentence()}), flush=True)


if __name__ == "__main__":
    main()
