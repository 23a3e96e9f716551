"""Zero-shot heads from descriptions: planted measures recovered without their labels, directions
respected, meta-matching from K patients, and clear errors."""

from dataclasses import replace

import numpy as np
import pytest

from core.errors import InputError
from core.modelling.anyoutcome import AnyOutcomeModel, meta_matching, signed_r


@pytest.fixture(scope="module")
def split(small_cohort):
    specs = small_cohort.measure_specs()
    held = [s for s in specs.values() if s.family in ("grip_dynamometry", "nine_hole_peg")]
    seen = [s for s in specs.values() if s not in held]
    rng = np.random.default_rng(0)
    train = rng.random(small_cohort.n_patients) < 0.7
    indication = small_cohort.patients["indication"].to_numpy()
    model = AnyOutcomeModel().fit(small_cohort.features[train], small_cohort.outcomes[train], seen, indication[train])
    return model, held, train, indication


def _test_rows(cohort, train, indication, spec):
    return ~train & (indication == spec.indication)


def test_zero_shot_recovers_unseen_measures_with_their_sign(small_cohort, split):
    """Grip strength (higher = better) and the Nine-Hole Peg Test (seconds: higher = worse) were never
    seen; their synthesized heads still predict them, each with the right sign."""
    model, held, train, indication = split
    for spec in held:
        rows = _test_rows(small_cohort, train, indication, spec)
        r = signed_r(small_cohort.outcomes.loc[rows, spec.key], model.predict(small_cohort.features[rows], spec))
        assert r > 0.6, (spec.key, r)


def test_direction_flips_the_prediction(small_cohort, split):
    """The direction turns the head; only the text's "higher is better/worse" words differ besides."""
    model, held, train, indication = split
    spec = held[0]
    flipped = replace(spec, direction="higher_worse" if spec.direction == "higher_better" else "higher_better")
    rows = _test_rows(small_cohort, train, indication, spec)
    X = small_cohort.features[rows]
    assert signed_r(model.predict(X, spec), model.predict(X, flipped)) < -0.99
    # A wrong sign scores a negative r: nothing here takes |r|.
    assert signed_r(small_cohort.outcomes.loc[rows, spec.key], model.predict(X, flipped)) < -0.6


def test_episodes_pick_the_best_grid_point_and_seen_heads_fit(small_cohort, split):
    model, held, train, indication = split
    scores = model.episode_scores_
    assert len(scores) == len(model.penalties) * len(model.widths) * len(model.descriptor_weights)
    assert scores["episode_r"].iloc[0] == scores["episode_r"].max()
    assert (model.penalty_, model.width_, model.descriptor_weight_) == tuple(scores.iloc[0][["penalty", "width", "descriptor_weight"]])
    assert model.heads_.shape == (min(model.rank, len(model.specs_)), len(model.specs_))
    seen = model.seen_predictions(small_cohort.features[~train], "stroke")
    assert set(seen.columns) == {s.key for s in model.specs_ if s.indication == "stroke"}
    stroke = ~train & (indication == "stroke")
    assert signed_r(small_cohort.outcomes.loc[stroke, "fmue_total_w12"], seen.loc[small_cohort.patients.index[stroke], "fmue_total_w12"]) > 0.8


def test_baselines_and_similarity(small_cohort, split):
    model, held, *_ = split
    grip = next(s for s in held if s.key == "grip_kg_w12")
    similarity = model.similarities(grip)
    assert similarity.is_monotonic_decreasing and grip.key not in similarity.index
    heads = model.baseline_heads(grip)
    assert set(heads) == {"nearest", "similarity_weighted", "attribute_map"}
    nearest_stroke = next(k for k in similarity.index if model.seen_spec(k).indication == "stroke")
    np.testing.assert_allclose(heads["nearest"], model.heads_[:, [s.key for s in model.specs_].index(nearest_stroke)] * model.seen_spec(nearest_stroke).sign)


def test_meta_matching_picks_the_matching_head():
    rng = np.random.default_rng(1)
    import pandas as pd

    seen = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    y = -2.0 * seen["c"].to_numpy() + 0.1 * rng.normal(size=60)
    basic = meta_matching(seen.iloc[:20], y[:20], seen.iloc[20:], "basic")
    assert signed_r(y[20:], basic) > 0.95
    stacked = meta_matching(seen.iloc[:20], y[:20], seen.iloc[20:], "stacked")
    assert signed_r(y[20:], stacked) > 0.95
    with pytest.raises(InputError, match="at least 3 labelled patients, found 2"):
        meta_matching(seen.iloc[:2], y[:2], seen, "basic")
    with pytest.raises(InputError, match="'basic' or 'stacked', found 'mean'"):
        meta_matching(seen.iloc[:20], y[:20], seen, "mean")


def test_errors_name_what_is_wrong(small_cohort):
    specs = list(small_cohort.measure_specs().values())
    indication = small_cohort.patients["indication"].to_numpy()
    with pytest.raises(InputError, match="at least 3 seen outcome measures, found 2"):
        AnyOutcomeModel().fit(small_cohort.features, small_cohort.outcomes, specs[:2], indication)
    with pytest.raises(InputError, match=r"no values for the seen measure\(s\) \['fmue_total_w4'\]"):
        AnyOutcomeModel().fit(small_cohort.features, small_cohort.outcomes.drop(columns="fmue_total_w4"), specs, indication)


def test_stacking_penalty_is_chosen_by_leave_one_out():
    """Pure noise columns: leave-one-out picks the strongest penalty, which keeps predictions near the mean."""
    import pandas as pd

    from core.modelling.anyoutcome import STACKING_PENALTIES

    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.normal(size=(40, 8)))
    y = rng.normal(size=40)
    chosen = meta_matching(noise.iloc[:20], y[:20], noise.iloc[20:], "stacked")
    strongest = meta_matching(noise.iloc[:20], y[:20], noise.iloc[20:], "stacked", alpha=max(STACKING_PENALTIES))
    np.testing.assert_allclose(chosen, strongest)
