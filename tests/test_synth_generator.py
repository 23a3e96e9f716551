import numpy as np
import pandas as pd
import pytest

from core.data.schema import modality_of
from core.errors import InputError
from core.modelling.prep2 import prep2_evaluation
from core.synth.config import CohortConfig, presets
from core.synth.generator import generate_cohort
from core.synth.outcome import term_shapley


def test_same_config_and_seed_give_identical_cohorts(small_config, small_cohort):
    again = generate_cohort(small_config, n_jobs=2)  # other worker count, same numbers
    pd.testing.assert_frame_equal(small_cohort.features, again.features)
    pd.testing.assert_frame_equal(small_cohort.outcomes, again.outcomes)
    other = generate_cohort(CohortConfig(name="small", n_patients=300, seed=8), n_jobs=1)
    assert not np.allclose(other.outcomes["improvement_pct"], small_cohort.outcomes["improvement_pct"])


def test_feature_names_carry_a_modality_and_all_four_are_present(small_cohort):
    assert small_cohort.modalities == ["dti", "emg", "kin", "clin"]
    assert all(modality_of(c) in ("dti", "emg", "kin", "clin") for c in small_cohort.features.columns)
    assert small_cohort.features.shape[1] == 28


def test_extracted_lesion_load_tracks_the_true_lesion_load(stroke_cohort):
    truth = stroke_cohort.ground_truth.latents["true_lesion_load_ml"]
    measured = stroke_cohort.features["dti.cst_lesion_load_ml"]
    ok = measured.notna()
    assert np.corrcoef(truth[ok], measured[ok])[0, 1] >= 0.8
    assert truth[ok].std() > 0.3  # the check means something only if loads vary


@pytest.mark.parametrize(
    "feature, latent, minimum",
    [
        ("emg.mep_amplitude_fdi_uv", "mep_amplitude_fdi_uv", 0.8),
        ("emg.mep_present", "mep_present", 0.8),
        ("kin.movement_time_s", "reach_duration_s", 0.8),
        ("dti.wm_fa_mean", "wm_scale", 0.8),
        ("emg.rms_fdi_uv", "voluntary_rms_fdi_uv", 0.8),
    ],
)
def test_extracted_features_track_their_latent_causes(stroke_cohort, feature, latent, minimum):
    measured = stroke_cohort.features[feature]
    truth = stroke_cohort.ground_truth.latents[latent].astype(float)
    ok = measured.notna()
    assert np.corrcoef(truth[ok], measured[ok])[0, 1] >= minimum


def test_tremor_power_is_recovered_in_parkinsons_patients():
    cohort = generate_cohort(CohortConfig(name="pd", n_patients=300, seed=5, indications={"parkinsons": 1.0}), n_jobs=1)
    measured = cohort.features["kin.tremor_band_power_mm2"]
    truth = cohort.ground_truth.latents["true_tremor_band_power_mm2"]
    ok = measured.notna()
    assert np.corrcoef(np.log(truth[ok]), np.log(measured[ok]))[0, 1] >= 0.9
    # Absolute scale too: a sinusoid of amplitude a carries a^2/2 of power.
    big = ok & (truth > 1.0)
    assert np.median(measured[big] / truth[big]) == pytest.approx(1.0, abs=0.15)


def test_prep2_on_synthetic_stroke_patients_scores_like_the_published_rule(stroke_cohort):
    result = prep2_evaluation(stroke_cohort)
    assert result["n_evaluated"] >= 800
    assert 0.65 <= result["accuracy"] <= 0.85


def test_missing_modalities_follow_the_configured_rates(stroke_cohort):
    available = stroke_cohort.modality_availability()
    assert 1 - available["dti"].mean() == pytest.approx(0.10, abs=0.03)
    assert available["clin"].all()


def test_true_probability_matches_the_observed_responder_rate(small_cohort):
    out = small_cohort.outcomes
    assert out["true_response_probability"].mean() == pytest.approx(out["responder"].mean(), abs=0.05)
    assert 0.3 <= out["responder"].mean() <= 0.7


def test_zero_effect_strength_plants_no_effect():
    cohort = generate_cohort(CohortConfig(name="nodti", n_patients=100, seed=1, effect_strength={"dti": 0.0}), n_jobs=1)
    effects = cohort.ground_truth.modality_effects()
    assert effects["dti"] == 0.0
    assert effects["clin"] > 0.3


def test_default_preset_ranks_modalities_with_a_clear_ordering():
    effects = generate_cohort(presets()["default"].__class__.from_dict({**presets()["default"].to_dict(), "n_patients": 400}), n_jobs=1).ground_truth.modality_effects()
    assert set(effects.index) == {"dti", "emg", "kin", "clin"}
    assert (effects > 0.05).all()


def test_bad_config_gets_a_message_naming_each_problem():
    with pytest.raises(InputError) as err:
        CohortConfig(n_patients=5, indications={"migraine": 1.0}, missing_rate={"dti": 1.5})
    message = str(err.value)
    assert message.startswith("cohort config:")
    assert "n_patients must be 10..100000, found 5" in message
    assert "unknown indication(s) ['migraine']" in message
    assert "missing_rate values must be within 0.0..0.9, found {'dti': 1.5}" in message


def test_yaml_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("n_patients: [1, 2\n")
    with pytest.raises(InputError, match=r"^broken.yaml: cannot read the cohort config"):
        CohortConfig.from_yaml(bad)
    unknown = tmp_path / "typo.yaml"
    unknown.write_text("n_patient: 100\n")
    with pytest.raises(InputError, match=r"^typo.yaml: unknown field\(s\) \['n_patient'\]"):
        CohortConfig.from_yaml(unknown)


def test_shipped_presets_load():
    available = presets()
    assert {"default", "stroke_rtms", "parkinsons_dbs", "null_dti"} <= set(available)
    assert available["default"].n_patients == 2000
    assert available["null_dti"].strength("dti") == 0.0


def test_planted_effects_are_exact_shapley_values_of_the_terms():
    """Efficiency: within the indication, the Shapley values of a product term add up to the term
    minus its baseline; the other indication gets none; swapping the factors swaps the values."""
    rng = np.random.default_rng(0)
    applies = rng.random(500) < 0.5
    u, w = np.where(applies, rng.normal(1, 2, 500), 0), np.where(applies, rng.uniform(0, 1, 500), 0)
    phi_u, phi_w = term_shapley((u, w), applies)
    baseline = u[applies].mean() * w[applies].mean()
    np.testing.assert_allclose((phi_u + phi_w)[applies], (u * w)[applies] - baseline, atol=1e-12)
    assert not np.any(phi_u[~applies]) and not np.any(phi_w[~applies])
    swapped = term_shapley((w, u), applies)
    np.testing.assert_allclose(swapped[0], phi_w, atol=1e-12)
    # A factor that does not vary gets nothing.
    assert np.allclose(term_shapley((u, np.where(applies, 3.0, 0)), applies)[1], 0)


def test_the_outcome_formula_is_the_one_the_generator_applies(small_cohort, small_config):
    from scipy.special import expit

    from core.synth.outcome import IMPROVEMENT_RANGE_PCT, outcome_formula

    truth = small_cohort.ground_truth
    eta = truth.terms.sum(axis=1) + truth.latents["site_outcome_shift"]
    expected = 100 * expit(eta)
    # improvement = expected + noise, clipped: the residual is the outcome noise with the config's SD
    residual = small_cohort.outcomes["improvement_pct"] - expected
    inside = small_cohort.outcomes["improvement_pct"].between(*IMPROVEMENT_RANGE_PCT, inclusive="neither")
    assert residual[inside].std() == pytest.approx(small_config.outcome_noise_pct, rel=0.15)
    assert (small_cohort.outcomes["responder"] == (small_cohort.outcomes["improvement_pct"] >= small_config.responder_threshold_pct)).all()
    text = outcome_formula(small_config)
    assert f"SD {small_config.outcome_noise_pct:g} percentage points" in text and f">= {small_config.responder_threshold_pct:g}%" in text
    assert f"clipped to {IMPROVEMENT_RANGE_PCT[0]:g}..{IMPROVEMENT_RANGE_PCT[1]:g}" in text


def test_every_feature_has_a_documented_cause_and_each_term_reads_features_of_its_cause():
    from core.data.schema import FEATURE_DESCRIPTIONS
    from core.synth.outcome import CAUSES, FEATURE_CAUSES, OUTCOME_TERMS

    assert set(FEATURE_CAUSES) == set(FEATURE_DESCRIPTIONS)
    assert set(FEATURE_CAUSES.values()) <= set(CAUSES)
    planted_on = {f for term in OUTCOME_TERMS for f in term.features}
    assert all(FEATURE_CAUSES[f] != "none" for f in planted_on)


def test_the_raw_signal_preset_plants_an_effect_no_engineered_feature_measures():
    """Lesion position (front to back) drives the outcome, shows in the FA map, and no feature tracks it."""
    from scipy.stats import spearmanr

    from core.features.tensors import fa_crop_index
    from core.synth.fa_phantom import fa_batch, voxel_set
    from core.synth.latents import fa_parameters

    config = CohortConfig.from_dict({**presets()["raw_signal"].to_dict(), "n_patients": 400})
    cohort = generate_cohort(config, n_jobs=1)
    truth = cohort.ground_truth
    assert "lesion_position" in truth.terms.columns
    assert truth.feature_effects.set_index("feature").loc["dti.lesion_position", "effect"] > 0.8  # the largest planted effect
    y_mm = truth.latents["lesion_y_mm"]
    assert abs(spearmanr(y_mm, truth.terms["lesion_position"]).statistic) > 0.95
    for feature in cohort.features.columns:  # what the engineered features summarise misses it
        values = cohort.features[feature]
        if values.notna().sum() > 50 and values.nunique() > 2:
            assert abs(spearmanr(y_mm[values.notna()], values.dropna()).statistic) < 0.2, feature
    # ... but the FA map shows it: the front-to-back centre of the FA drop follows the lesion.
    patients = truth.latents.iloc[:60]
    crop = fa_crop_index()
    healthy = fa_batch([fa_parameters({**r, "indication": "parkinsons", "transection": 0.0}, config) for r in patients.to_dict("records")], voxel_set(crop))
    lesioned = fa_batch([fa_parameters(r, config) for r in patients.to_dict("records")], voxel_set(crop))
    drop = np.clip(healthy - lesioned, 0, None).reshape(60, 48, 22, 56).sum(axis=(1, 3))  # FA drop per 2 mm slice front to back
    centre_mm = -44 + 2 * (drop * np.arange(22)).sum(axis=1) / np.maximum(drop.sum(axis=1), 1e-9)
    assert spearmanr(centre_mm, patients["lesion_y_mm"]).statistic > 0.7


def test_the_default_outcome_has_no_raw_only_term(small_cohort):
    assert "lesion_position" not in small_cohort.ground_truth.terms.columns
    assert "dti.lesion_position" not in set(small_cohort.ground_truth.feature_effects["feature"])
