"""TMS surrogate dataset (core.tms.dataset): config, plan, generation, resumption, export.

A tiny config (one cell variant, a few thresholds) keeps this fast. The neuron-level physics
(threshold x |E| invariant under field scaling, direction dependence, L5 range of Aberra 2020)
is tested in test_tms_neurons.py and not repeated here; this file checks what the dataset adds:
the grid normalisation, the physical-threshold invariant, determinism and resumption.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.tms.dataset import (
    SOMA_LAYERS,
    DatasetConfig,
    coil_placements,
    dataset_folder,
    export_dataset,
    fibonacci_directions,
    generate_dataset,
    load_dataset,
    placement_of,
    plan_dataset,
)

TINY = dict(cell_types=["L4_LBC"], variants=[0], n_placements=2, sites_per_placement=2, rotations_per_site=1,
            n_directions=2, chunk_size=2, n_regions=3, seed=3)


@pytest.fixture(scope="module")
def cortex():
    from core.tms.cortex import load_cortex

    return load_cortex()


@pytest.fixture(scope="module")
def tiny():
    return DatasetConfig(**TINY)


@pytest.fixture(scope="module")
def tiny_plan(tiny, cortex):
    return plan_dataset(tiny, cortex)


@pytest.fixture(scope="module")
def one_shot(tiny, tiny_plan, tmp_path_factory):
    """The tiny dataset in one run on 2 worker processes."""
    workspace = tmp_path_factory.mktemp("one-shot")
    report = generate_dataset(tiny, workspace, n_jobs=2, plan=tiny_plan)
    return report, load_dataset(report.folder)


# --- config ------------------------------------------------------------------------------------


def test_config_round_trips_through_yaml_and_json_and_digest_follows_content(tmp_path):
    config = DatasetConfig(**TINY)
    config.to_yaml(tmp_path / "c.yaml")
    config.to_json(tmp_path / "c.json")
    assert DatasetConfig.from_yaml(tmp_path / "c.yaml") == config
    assert DatasetConfig.from_file(tmp_path / "c.json") == config
    assert DatasetConfig.from_dict(json.loads(config.to_json())).digest() == config.digest()
    assert DatasetConfig(**{**TINY, "seed": 4}).digest() != config.digest()
    assert DatasetConfig().n_grid_rows == 3 * 2 * 40 * 14 * 3
    shipped = DatasetConfig.from_yaml("assets/tms/dataset.yaml")
    assert shipped == DatasetConfig()  # the defaults are the shipped dataset


@pytest.mark.parametrize("bad", [
    {"cell_types": ["L6_PC"]},
    {"cell_types": []},
    {"variants": [0, 2]},
    {"variants": [True]},
    {"waveform": "triangle"},
    {"grid_points": 8},
    {"grid_spacing_mm": 0},
    {"n_placements": 0},
    {"sites_per_placement": 2.5},
    {"reach_fraction": 1.5},
    {"chunk_size": 0},
    {"hotspot": "vertex"},
    {"rel_tol": float("nan")},
    {"colour": "blue"},
])
def test_bad_config_fields_raise_input_error_naming_the_field(bad):
    with pytest.raises(InputError) as info:
        DatasetConfig.from_dict({**TINY, **bad})
    assert next(iter(bad)) in str(info.value)


def test_unreadable_or_malformed_config_files_raise_input_error(tmp_path):
    for text in ("[1, 2]", "a: [", "n_placements: -3"):
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(InputError) as info:
            DatasetConfig.from_yaml(tmp_path / "c.yaml")
        assert "c.yaml" in str(info.value)
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(InputError):
        DatasetConfig.from_file(tmp_path / "c.json")
    with pytest.raises(InputError):
        DatasetConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(InputError):
        load_dataset(tmp_path)  # no dataset here


# --- plan: placements, sites, regions, rotations -------------------------------------------


def test_placements_vary_position_within_20_mm_and_handle_over_360_degrees(cortex):
    from core.tms.cortex import hand_knob_placement

    table = coil_placements(DatasetConfig(), cortex)
    assert len(table) == 40 and table.index.name == "placement_id"
    hot = hand_knob_placement(cortex)
    first = placement_of(table.loc[0])
    np.testing.assert_allclose(first.centre_mm, hot.centre_mm, atol=1e-9)
    np.testing.assert_allclose(first.handle_direction, hot.handle_direction, atol=1e-9)
    centres = table[["coil_x_mm", "coil_y_mm", "coil_z_mm"]].to_numpy()
    assert np.linalg.norm(centres - hot.centre_mm, axis=1).max() <= 20.5
    assert table["offset_mm"].max() > 19.0
    radius = np.linalg.norm(centres - cortex.sphere_centre_mm, axis=1)
    np.testing.assert_allclose(radius, cortex.scalp_radius_mm, atol=1e-9)  # on the scalp
    normals = table[["normal_x", "normal_y", "normal_z"]].to_numpy()
    handles = table[["handle_x", "handle_y", "handle_z"]].to_numpy()
    np.testing.assert_allclose(np.einsum("ij,ij->i", normals, handles), 0.0, atol=1e-9)  # tangent handles
    # handle angles fill the circle: every 45-degree sector is used
    assert set((table["handle_angle_deg"] // 45).astype(int)) == set(range(8))
    assert (table["tilt_deg"] == 0).all()
    pd.testing.assert_frame_equal(table, coil_placements(DatasetConfig(), cortex))


def test_sites_are_within_reach_labelled_by_region_and_variants_share_them(cortex):
    from core.tms.cortex import layer_efield_v_per_m

    config = DatasetConfig(**{**TINY, "cell_types": ["L23_PC", "L5_PC"], "variants": [0, 1], "n_placements": 3,
                              "sites_per_placement": 5, "rotations_per_site": 3, "n_regions": 4})
    plan = plan_dataset(config, cortex)
    rows = plan.rows
    assert len(rows) == config.n_grid_rows and list(rows.index) == list(range(len(rows)))
    assert set(rows["placement_id"]) == {0, 1, 2}
    assert set(plan.regions) == set(range(4)) and rows["region"].between(0, 3).all()
    assert (rows["region"].to_numpy() == plan.regions.loc[rows["vertex"]].to_numpy()).all()
    for (cell_type, pid), part in rows[rows["variant"] == 0].groupby(["cell_type", "placement_id"]):
        layer = SOMA_LAYERS[cell_type]
        assert (part["layer"] == layer).all()
        e = np.linalg.norm(layer_efield_v_per_m(cortex, layer, placement_of(part.iloc[0])), axis=1)
        hemi = cortex.hemisphere_slice("left")
        assert (e[part["vertex"]] >= 0.5 * e[hemi].max() - 1e-12).all()  # within reach
        assert part["vertex"].nunique() == 5
        for _, site in part.groupby("vertex"):  # 3 azimuths, 120 degrees apart
            np.testing.assert_allclose(np.diff(np.sort(site["azimuth_deg"].to_numpy())), 120.0)
        other = rows[(rows["variant"] == 1) & (rows["cell_type"] == cell_type) & (rows["placement_id"] == pid)]
        np.testing.assert_array_equal(other[["vertex", "azimuth_deg"]].to_numpy(), part[["vertex", "azimuth_deg"]].to_numpy())
    # chunks never mix cell variants, and hold at most chunk_size rows
    assert rows.groupby("chunk")[["cell_type", "variant"]].nunique().max().max() == 1
    assert rows.groupby("chunk").size().max() <= config.chunk_size
    # deterministic; another seed draws other sites
    again = plan_dataset(config, cortex)
    pd.testing.assert_frame_equal(rows, again.rows)
    other_seed = plan_dataset(DatasetConfig(**{**config.to_dict(), "seed": 9}), cortex)
    assert not np.array_equal(other_seed.rows["vertex"].to_numpy(), rows["vertex"].to_numpy())


def test_fibonacci_directions_are_unit_and_cover_the_sphere():
    d = fibonacci_directions(128)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.linalg.norm(d.mean(axis=0)) < 0.02
    nearest = np.sort(d @ d.T, axis=1)[:, -2]
    assert np.degrees(np.arccos(nearest)).max() < 20  # no hole bigger than ~20 degrees


# --- generation ------------------------------------------------------------------------------


def test_rows_carry_normalised_grids_and_physical_thresholds(one_shot, tiny, tiny_plan, cortex):
    report, data = one_shot
    assert report.complete and report.thresholds_computed == 6 and data.complete
    assert len(data) == 4 and data.grids.shape == (4, 9, 9, 9, 3) and data.grids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data.grids[:, 4, 4, 4], axis=1), 1.0, rtol=1e-6)
    rows = data.rows
    assert np.isfinite(rows["threshold_a_per_us"]).all() and (rows["n_simulations"] > 0).all()
    # physics invariant: threshold |E| at the soma = coil threshold x |E| per A/us there
    np.testing.assert_allclose(rows["threshold_e_v_per_m"], rows["threshold_a_per_us"] * rows["e_soma_v_per_m_per_a_per_us"],
                               rtol=1e-12)
    assert rows["threshold_e_v_per_m"].between(50, 3000).all()  # V/m, the range of cortical thresholds
    assert rows["threshold_a_per_us"].between(20, 3000).all()  # A/us: within what stimulators deliver x a few
    assert rows["ap_site"].isin(["soma", "hillock", "ais", "node", "unmyelinated", "terminal"]).all()
    assert {"placement_id", "region", "vertex", "layer", "azimuth_deg", "offset_mm", "handle_angle_deg"} <= set(rows.columns)
    pd.testing.assert_frame_equal(rows[tiny_plan.rows.columns.drop("chunk")], tiny_plan.rows.drop(columns="chunk"))
    # the stored grid is the E-field of the row's geometry
    from core.tms.cortex import vertex_efield_grid

    r = rows.iloc[3]
    grid = vertex_efield_grid(cortex, r["layer"], int(r["vertex"]), r["azimuth_deg"], placement_of(r))
    np.testing.assert_allclose(data.grids[3], grid.e_field, atol=1e-6)
    assert r["e_soma_v_per_m_per_a_per_us"] == pytest.approx(grid.e_soma_v_per_m, rel=1e-12)
    # direction map: a uniform field of 1 V/m per A/us, so A/us = V/m
    assert len(data.directions) == 2 and np.isfinite(data.directions["threshold_v_per_m"]).all()
    np.testing.assert_allclose(data.directions[["dir_x", "dir_y", "dir_z"]].to_numpy(), fibonacci_directions(2))


def test_a_killed_run_resumes_with_only_the_missing_chunks_and_equals_a_one_shot_run(one_shot, tiny, tiny_plan, tmp_path):
    _, reference = one_shot
    seen = []
    first = generate_dataset(tiny, tmp_path, n_jobs=1, limit=1, plan=tiny_plan, progress=lambda d, t: seen.append((d, t)))
    assert first.chunks_computed == 1 and not first.complete
    folder = dataset_folder(tiny, tmp_path)
    assert folder == tmp_path / "tms" / tiny.digest()
    assert not load_dataset(folder).complete
    assert not list(folder.glob(".*tmp"))  # no partial files left
    second = generate_dataset(tiny, tmp_path, n_jobs=1, plan=tiny_plan, progress=lambda d, t: seen.append((d, t)))
    assert second.chunks_before == 1 and second.chunks_computed == second.chunks_total - 1 and second.complete
    assert first.thresholds_computed + second.thresholds_computed == 6
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    third = generate_dataset(tiny, tmp_path, n_jobs=1, plan=tiny_plan)
    assert third.chunks_computed == 0 and third.thresholds_computed == 0
    resumed = load_dataset(folder)
    # bit-identical to the one-shot run on 2 processes: rows do not depend on scheduling
    pd.testing.assert_frame_equal(resumed.rows, reference.rows)
    np.testing.assert_array_equal(resumed.grids, reference.grids)
    pd.testing.assert_frame_equal(resumed.directions, reference.directions)
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert [r["chunks"] for r in runs] == [1, 2]


def test_export_ships_float16_grids_with_negligible_threshold_error(one_shot, tmp_path):
    report, data = one_shot
    manifest = export_dataset(report.folder, tmp_path, verify_rows=2)
    shipped = load_dataset(tmp_path)
    pd.testing.assert_frame_equal(shipped.rows, data.rows)
    pd.testing.assert_frame_equal(shipped.directions, data.directions)
    np.testing.assert_allclose(shipped.grids, data.grids, atol=1e-3, rtol=1e-3)
    check = manifest["float16_check"]
    assert check["rows_checked"] == 2 and check["max_rel_threshold_change"] < 0.002
    assert json.loads((tmp_path / "manifest.json").read_text())["grid_rows"] == 4
    assert DatasetConfig.from_yaml(tmp_path / "dataset.yaml") == data.config


def test_export_refuses_an_incomplete_dataset_and_cli_reports_input_errors(tiny, tiny_plan, tmp_path, capsys):
    generate_dataset(tiny, tmp_path, n_jobs=1, limit=0, plan=tiny_plan)
    with pytest.raises(InputError):
        export_dataset(dataset_folder(tiny, tmp_path), tmp_path / "out")
    from core.cli import main

    (tmp_path / "bad.yaml").write_text("n_placements: 0\n")
    assert main(["tms-dataset", "--workspace", str(tmp_path), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "n_placements" in capsys.readouterr().err


def test_shipped_l5_median_thresholds_lie_in_the_published_band_and_are_the_lowest():
    """Side by side with the literature (see README, "TMS thresholds against the literature").

    Median over 128 uniform-field directions, monophasic pulse, per cell variant: L5 PCs inside
    the 175-350 V/m band of simulated cortical thresholds (Weise et al. 2025), and the lowest of
    the three types, as Aberra et al. 2020 report.
    """
    from tests.test_tms_neurons import L5_LITERATURE_V_PER_M

    directions = load_dataset(Path(__file__).resolve().parent.parent / "assets" / "tms").directions
    median = directions.groupby(["cell_type", "variant"])["threshold_v_per_m"].median()
    lo, hi = L5_LITERATURE_V_PER_M
    assert median.loc["L5_PC"].between(lo, hi).all(), median.loc["L5_PC"].to_dict()
    by_type = median.groupby(level="cell_type").mean()
    assert by_type.idxmin() == "L5_PC", by_type.to_dict()
