"""TMS threshold maps (core.tms.maps): invariants in the intensity, the screen, the linearised
grids against exact ones, exports (CSV frame, GIFTI round trip) and bad input."""

import dataclasses

import numpy as np
import pytest

from core.errors import InputError
from core.tms.cortex import cell_frame, efield_grid, hand_knob_placement, load_cortex
from core.tms.maps import cell_frames, check_against_neuron, efield_jacobian, linearised_grids, threshold_map
from core.tms.neurons import CELL_TYPES
from core.tms.surrogate import load_surrogate

INTENSITIES = np.linspace(0.0, 300.0, 13)


@pytest.fixture(scope="module")
def cortex():
    return load_cortex()


@pytest.fixture(scope="module")
def placement(cortex):
    return hand_knob_placement(cortex)


@pytest.fixture(scope="module")
def hemisphere_map(cortex, placement):
    return threshold_map(placement, cortex=cortex)


@pytest.fixture(scope="module")
def near_target(cortex):
    """Left-hemisphere vertices within 25 mm of the hand knob (the activated area and its rim)."""
    sl = cortex.hemisphere_slice("left")
    target = cortex.nearest_vertex((-37.0, -21.0, 58.0), "left")
    d = np.linalg.norm(cortex.vertices_mm[sl] - cortex.vertices_mm[target], axis=1)
    return np.flatnonzero(d < 25.0)


def test_whole_hemisphere_map(hemisphere_map):
    tm = hemisphere_map
    assert tm.hemisphere == "left" and tm.n_vertices == 10242 and tm.faces.shape == (20480, 3)
    assert tm.cell_types == tuple(CELL_TYPES)
    for ct in CELL_TYPES:
        med = tm.median_threshold_a_per_us(ct)
        assert med.shape == (10242,)
        assert np.isfinite(med).sum() > 20, ct  # cells fire under the hotspot within 300 A/us
        assert np.nanmin(med) > 10.0
        assert np.all(np.isnan(med) | (med <= 300.0))
        # far from the coil nothing is computed: the screen skipped most of the hemisphere
        assert tm.evaluated[ct].mean() < 0.5
        assert not np.any(np.isfinite(tm.thresholds_a_per_us[ct][~tm.evaluated[ct]]))


def test_thresholds_do_not_change_with_intensity_and_the_fraction_rises(hemisphere_map):
    tm = hemisphere_map
    for ct in CELL_TYPES:
        frames = [tm.to_frame(i, [ct]) for i in INTENSITIES]
        for f in frames[1:]:
            np.testing.assert_array_equal(f["threshold_a_per_us"].to_numpy(), frames[0]["threshold_a_per_us"].to_numpy())
        fractions = np.stack([f["fraction_activated"].to_numpy() for f in frames])
        assert np.all(fractions[0] == 0.0)
        assert np.all(np.diff(fractions, axis=0) >= 0.0)  # monotone in the intensity at every vertex
        assert fractions[-1].sum() > fractions[len(INTENSITIES) // 2].sum() >= 0 and fractions[-1].sum() > 0
        med = frames[0]["threshold_a_per_us"].to_numpy()
        for i, frac in zip(INTENSITIES, fractions):
            assert np.all(frac[med <= i] >= 0.5)
            assert np.all(med[frac > 0.5] <= i)
        e1, e2 = tm.efield_magnitude_v_per_m(ct, 100.0), tm.efield_magnitude_v_per_m(ct, 200.0)
        np.testing.assert_allclose(e2, 2 * e1)


@pytest.mark.parametrize("intensity_a_per_us", [0.0, 120.0, 250.0])
def test_summary_numbers_are_those_of_the_maps_arrays(hemisphere_map, intensity_a_per_us):
    tm = hemisphere_map
    for ct in CELL_TYPES:
        thresholds = tm.thresholds_a_per_us[ct].reshape(tm.n_vertices, -1).astype(float)
        fraction = (thresholds <= intensity_a_per_us).mean(axis=1)
        medians = np.median(thresholds, axis=1)
        within = medians[np.isfinite(medians)]
        summary = tm.summary(ct, intensity_a_per_us)
        assert summary["max_e_v_per_m"] == np.linalg.norm(tm.efield_per_a_per_us[ct], axis=1).max() * intensity_a_per_us
        assert summary["vertices_activated"] == int((fraction > 0).sum())
        assert summary["mean_fraction_activated"] == (fraction[fraction > 0].mean() if (fraction > 0).any() else 0.0)
        assert summary["lowest_threshold_a_per_us"] == within.min()
        assert summary["median_threshold_a_per_us"] == np.median(within)
        assert summary["vertices_below_range"] == len(within)
        assert summary["vertices_evaluated"] == int(tm.evaluated[ct].sum())
        assert all(type(v) in (int, float) for v in summary.values())
    assert tm.summary("L5_PC", 0.0)["vertices_activated"] == 0  # no cell fires without a pulse
    assert tm.summary("L5_PC", 250.0)["vertices_activated"] > tm.summary("L5_PC", 120.0)["vertices_activated"] > 0


def test_summary_of_a_map_where_nothing_fires(hemisphere_map):
    """Far from the coil no median is within range: the threshold numbers are NaN, the counts 0."""
    tm = hemisphere_map
    far = np.flatnonzero(~tm.evaluated["L5_PC"])[:50]
    thresholds = {ct: t[far] for ct, t in tm.thresholds_a_per_us.items()}
    quiet = dataclasses.replace(tm, vertices=tm.vertices[far], positions_mm={ct: p[far] for ct, p in tm.positions_mm.items()},
                                efield_per_a_per_us={ct: e[far] for ct, e in tm.efield_per_a_per_us.items()},
                                thresholds_a_per_us=thresholds, evaluated={ct: v[far] for ct, v in tm.evaluated.items()})
    summary = quiet.summary("L5_PC", 300.0)
    assert np.isnan(summary["lowest_threshold_a_per_us"]) and np.isnan(summary["median_threshold_a_per_us"])
    assert summary["vertices_activated"] == summary["vertices_below_range"] == summary["vertices_evaluated"] == 0
    assert summary["mean_fraction_activated"] == 0.0


def test_screen_changes_nothing(cortex, placement, near_target):
    kw = dict(cortex=cortex, vertices=near_target, n_rotations=4)
    fast = threshold_map(placement, **kw)
    full = threshold_map(placement, screen=False, **kw)
    for ct in CELL_TYPES:
        np.testing.assert_allclose(fast.thresholds_a_per_us[ct], full.thresholds_a_per_us[ct], rtol=1e-5)
        assert full.evaluated[ct].all() and fast.evaluated[ct].sum() < len(near_target)


def test_linearised_grids_match_exact_grids(cortex, placement, near_target):
    positions, normals = cortex.surface("L5")
    model = load_surrogate("L5_PC")
    picks = near_target[:: max(1, len(near_target) // 6)][:6]
    for v in picks:
        jac = efield_jacobian(positions[v][None], placement, cortex.sphere_centre_mm)
        for azimuth in (0.0, 125.0):
            exact = efield_grid(positions[v], normals[v], azimuth, placement, cortex.sphere_centre_mm)
            e0 = exact.rotation @ exact.e_field[4, 4, 4] * exact.e_soma_v_per_m
            lin = linearised_grids(e0[None], jac, exact.rotation[None])[0]
            assert np.abs(lin - exact.e_field).max() < 0.03
            t = model.predict_variants(np.stack([exact.e_field, lin]))
            np.testing.assert_allclose(t[1], t[0], rtol=5e-3)


def test_predict_linear_equals_the_cnn_on_linear_grids():
    rng = np.random.default_rng(4)
    e = rng.normal(size=(64, 3))
    jac = 0.05 * rng.normal(size=(64, 3, 3))
    frames = cell_frames(rng.normal(size=(64, 3)), [30.0])[:, 0]
    grids = linearised_grids(e, jac, frames)
    rt = frames.transpose(0, 2, 1)
    norm = np.linalg.norm(e, axis=1)
    a = np.einsum("nab,nb->na", rt, e) / norm[:, None]
    b = rt @ jac @ frames / norm[:, None, None]
    for ct in CELL_TYPES:
        model = load_surrogate(ct)
        np.testing.assert_allclose(model.predict_linear(a, b), model.predict_variants(grids), rtol=1e-4)


def test_jacobian_is_divergence_free_and_predicts_nearby_fields(cortex, placement):
    from core.tms.efield import FigureEightCoil, efield_v_per_m

    p = cortex.surface("L4")[0][cortex.nearest_vertex((-37.0, -21.0, 58.0), "left")]
    jac = efield_jacobian(p[None], placement, cortex.sphere_centre_mm)[0]
    assert abs(np.trace(jac)) < 1e-3 * np.abs(jac).max()
    d = np.array([0.7, -1.1, 1.5])
    e = efield_v_per_m(np.stack([p, p + d]), FigureEightCoil(), placement, cortex.sphere_centre_mm)
    np.testing.assert_allclose(e[0] + jac @ d, e[1], rtol=0, atol=0.01 * np.linalg.norm(e[0]))


def test_cell_frames_match_cell_frame(cortex):
    normals = cortex.layer_normals["L2/3"][::997]
    azimuths = [0.0, 45.0, 290.0]
    frames = cell_frames(normals, azimuths)
    for i, n in enumerate(normals):
        for j, a in enumerate(azimuths):
            np.testing.assert_allclose(frames[i, j], cell_frame(n, a), atol=1e-12)


def test_check_against_neuron(hemisphere_map, cortex):
    seen = []
    check = check_against_neuron(hemisphere_map, "L5_PC", 2, seed=1, cortex=cortex,
                                 progress=lambda done, total, row: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)] and len(check) == 2
    assert np.all(np.abs(check["rel_error"]) < 0.1), check
    np.testing.assert_allclose(check["surrogate_a_per_us"] / check["neuron_a_per_us"] - 1, check["rel_error"])


def test_frame_for_csv(hemisphere_map, tmp_path):
    import pandas as pd

    frame = hemisphere_map.to_frame(150.0)
    assert list(frame.columns) == ["hemisphere", "cell_type", "layer", "vertex", "x_mm", "y_mm", "z_mm", "e_v_per_m",
                                   "threshold_a_per_us", "fraction_activated", "evaluated"]
    assert len(frame) == 3 * 10242
    frame.to_csv(tmp_path / "map.csv", index=False)
    back = pd.read_csv(tmp_path / "map.csv")
    np.testing.assert_allclose(back["threshold_a_per_us"], frame["threshold_a_per_us"], rtol=1e-12)


def test_gifti_round_trip(hemisphere_map, tmp_path):
    import nibabel as nib

    tm = hemisphere_map
    path = tmp_path / "map.gii"
    tm.to_gifti(120.0, path)
    img = nib.load(str(path))
    coords, faces = img.agg_data("NIFTI_INTENT_POINTSET"), img.agg_data("NIFTI_INTENT_TRIANGLE")
    np.testing.assert_allclose(coords, tm.positions_mm["L23_PC"], atol=1e-4)
    np.testing.assert_array_equal(faces, tm.faces)
    arrays = {d.meta["Name"]: d.data for d in img.darrays if d.intent == nib.nifti1.intent_codes["NIFTI_INTENT_ESTIMATE"]}
    assert len(arrays) == 9
    for ct in CELL_TYPES:
        np.testing.assert_allclose(arrays[f"{ct}/threshold_a_per_us"], tm.median_threshold_a_per_us(ct), rtol=1e-6)
        np.testing.assert_allclose(arrays[f"{ct}/fraction_activated"], tm.fraction_activated(ct, 120.0))
        np.testing.assert_allclose(arrays[f"{ct}/e_v_per_m"], tm.efield_magnitude_v_per_m(ct, 120.0), rtol=1e-6)
    assert img.meta["IntensityAPerUs"] == "120"
    pial = tm.to_gifti(120.0, surface="pial")
    assert pial.darrays[0].data.shape == (10242, 3)


def test_bad_input_raises_input_error(hemisphere_map, cortex, placement):
    tm = hemisphere_map
    for bad in (-1.0, float("nan"), 301.0, "strong"):
        with pytest.raises(InputError):
            tm.fraction_activated("L5_PC", bad)
    with pytest.raises(InputError, match="unknown cell type"):
        tm.fraction_activated("L6_XYZ", 100.0)
    with pytest.raises(InputError, match="unknown cell type"):
        tm.summary("L6_XYZ", 100.0)
    with pytest.raises(InputError, match="above this map's range"):
        tm.summary("L5_PC", 301.0)
    with pytest.raises(InputError, match="unknown cell type"):
        threshold_map(placement, cortex=cortex, cell_types=["L6_XYZ"])
    with pytest.raises(InputError, match="monophasic"):
        threshold_map(placement, cortex=cortex, waveform="biphasic", vertices=[0])
    with pytest.raises(InputError, match="n_rotations"):
        threshold_map(placement, cortex=cortex, n_rotations=0, vertices=[0])
    with pytest.raises(InputError, match="vertices"):
        threshold_map(placement, cortex=cortex, vertices=[10242])
    with pytest.raises(InputError, match="CoilPlacement"):
        threshold_map((0.0, 0.0, 90.0), cortex=cortex)
    with pytest.raises(InputError, match="max_intensity"):
        threshold_map(placement, cortex=cortex, max_intensity_a_per_us=-5, vertices=[0])
