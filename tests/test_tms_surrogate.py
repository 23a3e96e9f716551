"""The TMS threshold surrogate: shipped weights on held-out rows, the uniform-field baseline, the
training split, determinism, persistence and bad input (core.tms.surrogate)."""

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.tms.dataset import fibonacci_directions
from core.tms.neurons import CELL_TYPES
from core.tms.surrogate import (
    DEFAULT_SURROGATE_DIR,
    SplitConfig,
    ThresholdSurrogate,
    UniformFieldBaseline,
    load_heldout_sample,
    load_surrogate,
    metrics,
)


def _uniform_grids(directions, n=9):
    d = np.asarray(directions, np.float32)
    return np.broadcast_to(d[:, None, None, None, :], (len(d), n, n, n, 3)).copy()


@pytest.fixture(scope="module")
def heldout():
    return load_heldout_sample()


# --- shipped weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_shipped_surrogate_predicts_held_out_thresholds(cell_type, heldout):
    """Rows held out on both counts (new coil placement, new cortical region): MAPE below 5 %."""
    rows, grids = heldout
    m = (rows["cell_type"] == cell_type).to_numpy()
    assert m.sum() >= 8
    model = load_surrogate(cell_type)
    pred = model.predict(grids[m], rows["variant"].to_numpy()[m])
    err = metrics(rows["threshold_e_v_per_m"].to_numpy()[m], pred)
    assert err["mape_pct"] < 5.0, err
    assert err["max_ape_pct"] < 20.0, err
    # the same rows as coil thresholds (A/us): the division by |E| at the soma per A/us
    e = rows["e_soma_v_per_m_per_a_per_us"].to_numpy()[m]
    a = metrics(rows["threshold_e_v_per_m"].to_numpy()[m] / e, pred / e)
    assert a["mape_pct"] == pytest.approx(err["mape_pct"])


def test_shipped_report_matches_the_weights():
    report = json.loads((DEFAULT_SURROGATE_DIR / "report.json").read_text())
    assert set(report["cell_types"]) == set(CELL_TYPES)
    assert report["dataset"]["waveform"] == "monophasic"
    for ct, r in report["cell_types"].items():
        meta = json.loads((DEFAULT_SURROGATE_DIR / f"{ct}.json").read_text())
        assert meta["n_train"] == r["n_train_rows"]
        for name in ("placement", "region", "both"):
            s = r["sets"][name]
            assert s["n"] > 0 and np.isfinite(s["cnn"]["mape_pct"]) and np.isfinite(s["baseline"]["mape_pct"])
    assert "python -m core tms-train" in report["command"]


def test_variants_share_the_trunk(heldout):
    rows, grids = heldout
    model = load_surrogate("L5_PC")
    both = model.predict_variants(grids[:6])
    for j, v in enumerate(model.variants):
        np.testing.assert_allclose(both[:, j], model.predict(grids[:6], v), rtol=1e-6)
    assert not np.allclose(both[:, 0], both[:, 1])  # the variants have different thresholds


# --- uniform-field baseline ----------------------------------------------------------------------


def test_baseline_equals_the_direction_map_at_sampled_directions():
    points = fibonacci_directions(128)
    rng = np.random.default_rng(0)
    thresholds = rng.uniform(100, 600, size=(2, 128))
    base = UniformFieldBaseline(points, thresholds, variants=(0, 1))
    for variant in (0, 1):
        got = base.predict(_uniform_grids(points), variant)
        np.testing.assert_allclose(got, thresholds[variant], rtol=1e-12)
    # a field 3x stronger along the same direction: normalised grids are the same; the coil
    # threshold scales as 1/|E|, which is the caller's division
    np.testing.assert_allclose(base.threshold_v_per_m(points * 3.0, 1), thresholds[1], rtol=1e-12)


def test_baseline_interpolates_within_the_corners():
    points = fibonacci_directions(128)
    thresholds = np.exp(np.random.default_rng(1).uniform(4, 6, size=(1, 128)))
    base = UniformFieldBaseline(points, thresholds, variants=(0,))
    d = np.random.default_rng(2).normal(size=(500, 3))
    corners, w = base.weights(d)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)
    value = base.threshold_v_per_m(d, 0)
    lo, hi = thresholds[0][corners].min(axis=1), thresholds[0][corners].max(axis=1)
    assert np.all(value >= lo * (1 - 1e-12)) and np.all(value <= hi * (1 + 1e-12))
    # continuity: a tiny turn of the direction changes the value a little
    d2 = d + 1e-6 * np.random.default_rng(3).normal(size=d.shape)
    np.testing.assert_allclose(base.threshold_v_per_m(d2, 0), value, rtol=1e-4)


def test_shipped_baseline_is_the_dataset_direction_map():
    model = load_surrogate("L23_PC")
    base = model.baseline_
    assert base is not None and base.points.shape == (128, 3)
    np.testing.assert_allclose(base.predict(_uniform_grids(base.points[:10]), 0), base.thresholds_v_per_m[0, :10], rtol=1e-12)


# --- split -----------------------------------------------------------------------------------------


def test_split_holds_out_placements_and_regions_never_random_rows():
    rows = pd.DataFrame({"placement_id": np.repeat(np.arange(40), 8), "region": np.tile(np.arange(8), 40)})
    split = SplitConfig()
    m = split.masks(rows)
    assert not np.any(m["train"] & m["held_out"])
    assert np.array_equal(m["held_out"], m["placement"] | m["region"] | m["both"])
    assert not np.any(m["placement"] & m["region"])
    trained = rows[m["train"]]
    assert not trained["placement_id"].isin(split.test_placements).any()
    assert not trained["region"].isin(split.test_regions).any()
    assert 0 in split.test_placements  # the hand-knob preset itself is held out


# --- training: tiny model ------------------------------------------------------------------------


def _toy(n=96, seed=0):
    """Grids of a field along random directions with a gradient; threshold depends on both."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    g = _uniform_grids(d)
    ramp = np.linspace(-0.2, 0.2, 9, dtype=np.float32)
    k = rng.uniform(-1, 1, n).astype(np.float32)
    g = g + k[:, None, None, None, None] * ramp[None, None, None, :, None] * d[:, None, None, None, :].astype(np.float32)
    variants = np.arange(n) % 2
    y = 300 * np.exp(0.5 * d[:, 2] + 0.2 * k + 0.1 * variants)
    return g.astype(np.float32), variants, y


TINY = dict(cell_type="L5_PC", channels=(2, 4, 4, 8), hidden=8, epochs=4, batch_size=32, seed=3, baseline_input=False)


def test_fit_is_deterministic_and_round_trips(tmp_path):
    g, v, y = _toy()
    a = ThresholdSurrogate(**TINY).fit(g, v, y)
    b = ThresholdSurrogate(**TINY).fit(g, v, y)
    np.testing.assert_array_equal(a.predict(g, v), b.predict(g, v))
    assert a.history_[-1]["loss"] < a.history_[0]["loss"]
    path = a.save(tmp_path / "L5_PC.pt")
    c = ThresholdSurrogate.load(path)
    np.testing.assert_array_equal(c.predict(g, v), a.predict(g, v))
    assert load_surrogate("L5_PC", tmp_path).get_params() == c.get_params()


def test_fit_keeps_the_direction_maps_and_a_screening_floor(tmp_path):
    g, v, y = _toy()
    points = fibonacci_directions(32)
    base = UniformFieldBaseline(points, np.full((2, 32), 300.0), (0, 1))
    m = ThresholdSurrogate(**{**TINY, "baseline_input": True}).fit(g, v, y, baseline=base)
    assert m.module_.dense1.in_features == 8 + 2 + 1  # conv features, variant one-hot, baseline
    assert m.n_train_ == len(y)  # the direction-map rows are extra training rows, not counted here
    assert 0 < m.baseline_ratio_floor_ <= 0.85 * np.min(y / 300.0) + 1e-12
    assert m.threshold_floor_v_per_m_ == pytest.approx(0.8 * min(y.min(), 300.0))
    c = ThresholdSurrogate.load(m.save(tmp_path / "L5_PC.pt"))
    np.testing.assert_array_equal(c.baseline_.thresholds_v_per_m, base.thresholds_v_per_m)
    assert c.baseline_ratio_floor_ == pytest.approx(m.baseline_ratio_floor_)
    np.testing.assert_allclose(c.predict(g, v), m.predict(g, v), rtol=1e-12)
    with pytest.raises(InputError, match="direction maps"):
        ThresholdSurrogate(**{**TINY, "baseline_input": True}).fit(g, v, y)


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_input_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown cell type"):
        load_surrogate("L6_XYZ")
    with pytest.raises(InputError, match="no trained surrogate"):
        load_surrogate("L5_PC", tmp_path)
    model = load_surrogate("L5_PC")
    with pytest.raises(InputError, match="shape"):
        model.predict(np.zeros((2, 7, 7, 7, 3)), 0)
    with pytest.raises(InputError, match="variant"):
        model.predict(_uniform_grids([[0, 0, 1]]), 7)
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.full((1, 9, 9, 9, 3), np.nan), 0)
    g, v, y = _toy(8)
    with pytest.raises(InputError, match="positive"):
        ThresholdSurrogate(**TINY).fit(g, v, -y)
    (tmp_path / "L4_LBC.pt").write_bytes(b"not a torch file")
    (tmp_path / "L4_LBC.json").write_text("{}")
    with pytest.raises(InputError):
        load_surrogate("L4_LBC", tmp_path)
