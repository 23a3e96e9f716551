"""The outcome bank: the shipped file validates, a malformed entry names itself and its field, the
text model embeds descriptions with networking disabled, and synthetic cohorts carry every measure."""

import socket

import numpy as np
import pytest
import yaml

from core.data.outcome_bank import BANK_PATH, load_outcome_bank, outcome_spec, parse_outcome_bank
from core.errors import InputError


def test_shipped_bank_has_forty_measures_across_families_and_indications():
    bank = load_outcome_bank()
    assert len(bank) >= 40
    assert {s.indication for s in bank} == {"stroke", "parkinsons"}
    assert len({s.family for s in bank}) >= 15
    assert len({s.key for s in bank}) == len(bank)
    fm = next(s for s in bank if s.key == "fmue_total_w12")
    assert (fm.range, fm.direction, fm.time_point_weeks, fm.family) == ((0.0, 66.0), "higher_better", 12.0, "fugl_meyer_ue")


def _entry(**changes):
    entry = yaml.safe_load(BANK_PATH.read_text())["outcomes"][0]
    for dotted, value in changes.items():
        target = entry
        *path, last = dotted.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return entry


@pytest.mark.parametrize("changes, field, message", [
    ({"descriptor.direction": "up"}, "descriptor.direction", "expected one of ['higher_better', 'higher_worse'], found 'up'"),
    ({"descriptor.range": [66, 0]}, "descriptor.range", "expected low < high, found [66, 0]"),
    ({"indication": "migraine"}, "indication", "expected one of ['stroke', 'parkinsons'], found 'migraine'"),
    ({"generator.weights": {"mood": 1.0}}, "generator.weights", "unknown construct(s) ['mood']"),
    ({"description": ""}, "description", "the field 'description' is missing"),
])
def test_malformed_entry_names_entry_and_field(changes, field, message):
    with pytest.raises(InputError) as error:
        outcome_spec(_entry(**changes), "bank.yaml", need_generator=True)
    assert error.value.field == field
    assert "outcome 'fmue_total_w4'" in str(error.value) and message in str(error.value)
    assert str(error.value).startswith("bank.yaml: [")


def test_repeated_keys_and_bad_yaml_are_refused():
    text = BANK_PATH.read_text()
    entries = yaml.safe_load(text)["outcomes"]
    with pytest.raises(InputError, match=r"repeated: \['fmue_total_w4'\]"):
        parse_outcome_bank(yaml.safe_dump({"outcomes": [entries[0], entries[0], entries[1]]}))
    with pytest.raises(InputError, match="non-empty list 'outcomes'"):
        parse_outcome_bank("measures: []")
    with pytest.raises(InputError, match="not valid YAML"):
        parse_outcome_bank("outcomes: [unclosed")


def test_descriptions_embed_with_networking_disabled(monkeypatch):
    from core.features import text

    def refuse(*args, **kwargs):
        raise AssertionError("the text model tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    text._model.cache_clear()
    text._CACHE.clear()
    vectors = text.embed_texts(["Grip strength of the affected hand in kilograms", "Timed Up and Go, seconds", "Grip strength of the affected hand in kilograms"])
    assert vectors.shape == (3, text.EMBEDDING_SIZE)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert vectors[0] @ vectors[1] < 0.99
    with pytest.raises(InputError, match="description is empty"):
        text.embed_texts(["  "])


def test_synthetic_cohort_carries_every_measure_in_range(small_cohort):
    specs = small_cohort.measure_specs()
    assert len(specs) == len(load_outcome_bank())
    stroke = (small_cohort.patients["indication"] == "stroke").to_numpy()
    for key, spec in specs.items():
        values = small_cohort.outcomes[key].to_numpy()
        mine = stroke if spec.indication == "stroke" else ~stroke
        assert np.isnan(values[~mine]).all() and not np.isnan(values[mine]).any(), key
        assert values[mine].min() >= spec.range[0] and values[mine].max() <= spec.range[1], key


def test_measures_follow_their_documented_direction(small_cohort):
    """Worse motor severity lowers a higher-is-better measure and raises a higher-is-worse one."""
    severity = small_cohort.ground_truth.latents["severity"]
    stroke = small_cohort.patients["indication"] == "stroke"
    outcomes = small_cohort.outcomes[stroke]
    assert np.corrcoef(severity[stroke], outcomes["fmue_total_w4"])[0, 1] < -0.6
    assert np.corrcoef(severity[stroke], outcomes["mrs_w4"])[0, 1] > 0.5
    # The 12-week measures carry more of the planted treatment response than the 4-week ones.
    improvement = small_cohort.outcomes.loc[stroke, "improvement_pct"]
    assert np.corrcoef(improvement, outcomes["fmue_total_w12"])[0, 1] > np.corrcoef(improvement, outcomes["fmue_total_w4"])[0, 1] + 0.05


def test_a_described_measure_is_titled_by_its_first_words_marked_as_cut_and_a_bank_measure_by_its_name():
    from core.data.outcome_bank import described_outcome

    wmft = described_outcome("Wolf Motor Function Test: seconds to complete 15 timed arm tasks", "stroke", "higher_worse")
    assert wmft.name == "Wolf Motor Function Test: seconds to" and wmft.title == "Wolf Motor Function Test: seconds to…"
    assert described_outcome("Grip strength, kg", "stroke", "higher_better").title == "Grip strength, kg"
    assert all(spec.title == spec.name for spec in load_outcome_bank())
