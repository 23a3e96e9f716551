"""core.evaluation.learning: learning curves on nested, stratified subsets of one cohort."""

import pytest

from core.errors import InputError
from core.evaluation.learning import disjoint_subsamples, learning_curve, subsample
from core.evaluation.metrics import roc_auc
from core.modelling.validation import CVSettings
from core.store.workspace import Workspace


def test_subsamples_are_nested_and_keep_the_responder_share(small_cohort):
    sizes = [50, 100, 200]
    parts = [subsample(small_cohort, n) for n in sizes]
    share = small_cohort.outcomes["responder"].mean()
    for n, part in zip(sizes, parts):
        assert part.n_patients == n
        assert abs(part.outcomes["responder"].mean() - share) <= 1.0 / n + 1e-12  # stratified: off by at most one patient
        assert part.ground_truth.latents.index.equals(part.patients.index)
    assert set(parts[0].patients.index) < set(parts[1].patients.index) < set(parts[2].patients.index)
    assert not parts[0].patients.index.equals(subsample(small_cohort, 50, seed=1).patients.index)
    with pytest.raises(InputError, match=f"1 to {small_cohort.n_patients} patients"):
        subsample(small_cohort, small_cohort.n_patients + 1)


def test_disjoint_subsamples_share_no_patient_and_keep_the_responder_share(small_cohort):
    parts = disjoint_subsamples(small_cohort, 90, 3)
    share = small_cohort.outcomes["responder"].mean()
    ids = [set(p.patients.index) for p in parts]
    assert [len(i) for i in ids] == [90, 90, 90] and len(set.union(*ids)) == 270  # no patient in two
    for part in parts:
        assert abs(part.outcomes["responder"].mean() - share) <= 1.0 / 90 + 1e-12
    assert parts[0].patients.index.equals(subsample(small_cohort, 90).patients.index)  # the first is the seed's subsample
    with pytest.raises(InputError) as caught:
        disjoint_subsamples(small_cohort, 200, 2)
    assert str(caught.value) == "[n_patients] 2 disjoint subsamples of 200 patients need 400 patients; the cohort has 300."


def test_learning_curve_scores_each_size_and_reuses_a_full_size_run(small_cohort, tmp_path):
    inputs = Workspace(tmp_path).fusion_inputs(small_cohort)
    settings = CVSettings(n_splits=3, n_repeats=1)
    full = settings.cross_validate(small_cohort)
    table = learning_curve(small_cohort, inputs, settings, models=("xgboost",), sizes=(100, small_cohort.n_patients, 10_000), runs={"xgboost": full}, n_boot=200)
    assert table["n_patients"].tolist() == [100, small_cohort.n_patients]  # sizes above the cohort are skipped
    y = small_cohort.outcomes["responder"]
    last = table.iloc[-1]
    assert last["auc"] == pytest.approx(roc_auc(y, full.prediction))  # the full-size run is reused, not retrained
    assert last["oracle_auc"] == pytest.approx(roc_auc(y, small_cohort.outcomes["true_response_probability"]))
    assert (table["ci_low"] <= table["auc"]).all() and (table["auc"] <= table["ci_high"]).all()
    part = subsample(small_cohort, 100)
    again = settings.cross_validate(part)
    assert table.iloc[0]["auc"] == pytest.approx(roc_auc(part.outcomes["responder"], again.prediction))
