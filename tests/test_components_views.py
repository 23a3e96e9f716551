"""Views of brain volumes and raw recordings: the figures show the data they were given, where they say."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from components.views.recordings import mep_sweeps_figure, speed_profile_figure, trajectory_figure, voluntary_emg_figure
from components.views.slices import orthogonal_slices_figure

# A small grid with 2 mm voxels whose origin is off-centre, so that mm and voxel indices differ.
SHAPE = (9, 11, 7)
AFFINE = np.array([[2.0, 0, 0, -8], [0, 2.0, 0, -12], [0, 0, 2.0, -4], [0, 0, 0, 1]])


@pytest.fixture
def volumes():
    rng = np.random.default_rng(0)
    background = rng.random(SHAPE).astype(np.float32)
    overlay = rng.random(SHAPE).astype(np.float32)
    mask = np.zeros(SHAPE, bool)
    mask[5:7, 2:5, 1:3] = True
    return background, overlay, mask


def trace(fig, uid):
    (match,) = [t for t in fig.data if t.uid == uid]
    return match


def test_each_panel_shows_the_voxel_nearest_the_crosshair(volumes):
    background, overlay, mask = volumes
    # (3.2, -2.9, 5.1) mm lies at voxel (5.6, 4.55, 4.55): nearest (6, 5, 5), i.e. (4, -2, 6) mm.
    fig = orthogonal_slices_figure(background, AFFINE, overlay, mask, crosshair_mm=(3.2, -2.9, 5.1))
    i, j, k = 6, 5, 5
    np.testing.assert_array_equal(trace(fig, "background-sagittal").z, background[i, :, :].T)
    np.testing.assert_array_equal(trace(fig, "background-coronal").z, background[:, j, :].T)
    np.testing.assert_array_equal(trace(fig, "background-axial").z, background[:, :, k].T)
    np.testing.assert_array_equal(trace(fig, "overlay-axial").z, overlay[:, :, k].T)
    # Axes are in mm: sagittal shows y horizontally and z vertically.
    sagittal = trace(fig, "background-sagittal")
    np.testing.assert_allclose(sagittal.x, 2.0 * np.arange(SHAPE[1]) - 12)
    np.testing.assert_allclose(sagittal.y, 2.0 * np.arange(SHAPE[2]) - 4)
    titles = [a.text for a in fig.layout.annotations[:3]]
    assert titles[0].startswith("Sagittal x = 4 mm") and titles[1].startswith("Coronal y = -2 mm")
    assert titles[2].startswith("Axial z = 6 mm") and "L on left" in titles[2]
    # Titles sit on the panels' top edge: padding would draw the black background over them.
    assert fig.layout.margin.pad == 0
    # The crosshair is drawn through the slice actually shown, not the requested point.
    lines = {s.name: s for s in fig.layout.shapes}
    assert lines["crosshair-axial-x"].x0 == lines["crosshair-axial-x"].x1 == 4.0
    assert lines["crosshair-axial-y"].y0 == -2.0
    assert lines["crosshair-sagittal-z"].y0 == 6.0


def test_flipped_storage_is_shown_in_neurological_convention(volumes):
    background, _, mask = volumes
    # The same image stored L->R reversed (as FSL's LAS templates are): voxel i holds x = 8 - 2 i.
    las_affine = AFFINE @ np.array([[-1.0, 0, 0, SHAPE[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    ras = orthogonal_slices_figure(background, AFFINE, mask=mask, crosshair_mm=(2, -4, 4))
    las = orthogonal_slices_figure(background[::-1], las_affine, mask=mask[::-1], crosshair_mm=(2, -4, 4))
    for uid in ("background-coronal", "background-axial", "mask-axial"):
        np.testing.assert_array_equal(trace(las, uid).z, trace(ras, uid).z)
        np.testing.assert_allclose(trace(las, uid).x, trace(ras, uid).x)
    assert list(trace(las, "background-axial").x) == sorted(trace(las, "background-axial").x)  # L left


@pytest.mark.parametrize(
    ("crosshair", "ok"),
    [((8.9, 0, 0), True), ((9.1, 0, 0), False), ((0, -13.1, 0), False), ((0, 0, 100), False)],
)
def test_crosshair_off_the_grid_is_refused(volumes, crosshair, ok):
    background, _, _ = volumes
    # x voxel centres run from -8 to 8 mm; half a voxel (1 mm) beyond the last one is still that voxel.
    if ok:
        orthogonal_slices_figure(background, AFFINE, crosshair_mm=crosshair)
    else:
        with pytest.raises(ValueError, match="outside the image grid"):
            orthogonal_slices_figure(background, AFFINE, crosshair_mm=crosshair)


def test_mask_is_drawn_only_where_it_is_true(volumes):
    background, overlay, mask = volumes
    fig = orthogonal_slices_figure(background, AFFINE, overlay, mask, crosshair_mm=(4, -6, -2), mask_color="#D55E00")
    i, j, k = 6, 3, 1
    for uid, plane in (("mask-sagittal", mask[i, :, :]), ("mask-coronal", mask[:, j, :]), ("mask-axial", mask[:, :, k])):
        shown = trace(fig, uid)
        assert plane.any()
        np.testing.assert_array_equal(np.asarray(shown.z) == 1, plane.T)
        # Zero cells are fully transparent; ones get the mask colour.
        (zero, transparent), (one, colour) = shown.colorscale
        assert (zero, one, colour) == (0, 1, "#D55E00") and transparent.replace(" ", "").endswith(",0)")


def test_overlay_below_threshold_is_transparent_and_colour_range_starts_there(volumes):
    background, overlay, _ = volumes
    overlay[0, :, 2] = 0.4  # exactly at the threshold: still shown
    fig = orthogonal_slices_figure(background, AFFINE, overlay, crosshair_mm=(0, 0, 0), overlay_threshold=0.4)
    shown = np.asarray(trace(fig, "overlay-axial").z)
    expected = overlay[:, :, 2].T
    np.testing.assert_array_equal(np.isnan(shown), expected < 0.4)
    np.testing.assert_array_equal(shown[~np.isnan(shown)], expected[expected >= 0.4])
    assert fig.layout.coloraxis.cmin == pytest.approx(0.4)
    assert fig.layout.coloraxis.cmax == pytest.approx(overlay.max())


def test_volumes_off_the_grid_and_oblique_grids_are_refused(volumes):
    background, overlay, _ = volumes
    with pytest.raises(ValueError, match=r"overlay must be on the background's voxel grid.*\(9, 11, 6\)"):
        orthogonal_slices_figure(background, AFFINE, overlay[:, :, :-1])
    angle = np.deg2rad(20)
    oblique = AFFINE.copy()
    oblique[:2, :2] = 2.0 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    with pytest.raises(ValueError, match="oblique"):
        orthogonal_slices_figure(background, oblique)


def _two_viewers_page():
    import numpy as np

    from components.figures import brain_slice_viewer

    affine = np.array([[2.0, 0, 0, -8], [0, 2.0, 0, -12], [0, 0, 2.0, -4], [0, 0, 0, 1]])
    background = np.arange(9 * 11 * 7, dtype=float).reshape(9, 11, 7)
    mask = np.zeros((9, 11, 7), bool)
    mask[7, 9, 5] = True  # at (6, 6, 6) mm
    brain_slice_viewer(background, affine, mask=mask, key="a")
    brain_slice_viewer(background, affine, mask=mask, key="b")


def test_two_viewers_share_a_page_and_jump_to_the_mask_independently():
    at = AppTest.from_function(_two_viewers_page).run(timeout=30)
    assert not at.exception
    assert [s.key for s in at.slider] == ["a_x_mm", "a_y_mm", "a_z_mm", "b_x_mm", "b_y_mm", "b_z_mm"]
    assert [s.value for s in at.slider] == [0.0] * 6  # the origin lies on this grid: voxel (4, 6, 2)
    assert at.slider(key="a_y_mm").step == 2.0 and at.slider(key="a_x_mm").min == -8.0

    at.button(key="a_jump").click().run(timeout=30)
    assert [at.slider(key=f"a_{n}_mm").value for n in "xyz"] == [6.0, 6.0, 6.0]
    assert [at.slider(key=f"b_{n}_mm").value for n in "xyz"] == [0.0, 0.0, 0.0]
    values = [m.value for m in at.metric]
    assert values[:2] == [f"{np.ravel_multi_index((7, 9, 5), (9, 11, 7)):.3g}", "yes"]
    assert values[2:] == [f"{np.ravel_multi_index((4, 6, 2), (9, 11, 7)):.3g}", "no"]


# --- recordings -------------------------------------------------------------------------------------

FS = 2000.0
MUSCLES = ("fdi", "ecr")


@pytest.fixture
def sweeps():
    return np.random.default_rng(1).normal(0, 20, size=(2, 5, 200))


def test_mep_figure_has_one_mean_per_muscle_on_its_own_row(sweeps):
    fig = mep_sweeps_figure(sweeps, FS, -20.0, MUSCLES)
    means = [t for t in fig.data if t.name == "mean"]
    assert [(t.meta, t.yaxis) for t in means] == [("fdi", "y"), ("ecr", "y2")]
    for t, muscle_sweeps in zip(means, sweeps):
        np.testing.assert_allclose(t.y, muscle_sweeps.mean(axis=0))
        np.testing.assert_allclose(t.x, -20.0 + 0.5 * np.arange(200))  # ms, 0.5 ms per sample at 2 kHz
    trials = [t for t in fig.data if t.name.startswith("trials")]
    assert len(trials) == 2 and np.isnan(trials[0].y).sum() == 5  # 5 trials, NaN-separated
    assert fig.layout.xaxis2.title.text == "Time from TMS pulse (ms)"
    assert fig.layout.yaxis.title.text == "EMG (µV)"


def test_mep_figure_marks_pulse_window_latency_and_presence(sweeps):
    fig = mep_sweeps_figure(sweeps, FS, -20.0, MUSCLES, latency_ms=[21.5, np.nan], present=[True, False],
                            window_ms=(15, 50))
    shapes = fig.layout.shapes
    latency = [(s.x0, s.xref) for s in shapes if s.name == "onset latency"]
    assert latency == [(21.5, "x")]  # the NaN latency of the second muscle draws nothing
    assert [(s.x0, s.xref) for s in shapes if s.name == "TMS pulse"] == [(0.0, "x"), (0.0, "x2")]
    windows = [(s.x0, s.x1) for s in shapes if s.name == "MEP window 15–50 ms"]
    assert windows == [(15, 50), (15, 50)]
    only_second = mep_sweeps_figure(sweeps, FS, -20.0, MUSCLES, latency_ms=[np.nan, 30.0]).layout.shapes
    assert [(s.x0, s.xref, s.showlegend) for s in only_second if s.name == "onset latency"] == [(30.0, "x2", True)]
    titles = [a.text for a in fig.layout.annotations]
    assert "FDI — MEP present" in titles and "ECR — MEP absent" in titles
    with pytest.raises(ValueError, match="one value per muscle"):
        mep_sweeps_figure(sweeps, FS, -20.0, MUSCLES, latency_ms=[21.5])
    with pytest.raises(ValueError, match="one row per muscle"):
        mep_sweeps_figure(sweeps, FS, -20.0, ("fdi",))


def test_speed_figure_shades_exactly_the_given_segments():
    speed = np.abs(np.sin(np.arange(1000) / 50.0)) * 300
    fig = speed_profile_figure(speed, 100.0, [(50, 170), (400, 520)])
    shaded = [(s.x0, s.x1) for s in fig.layout.shapes if s.name == "movement"]
    assert shaded == [(0.5, 1.7), (4.0, 5.2)]
    assert sum(bool(s.showlegend) for s in fig.layout.shapes) == 1
    np.testing.assert_allclose(fig.data[0].x[[0, -1]], [0.0, 9.99])
    assert fig.layout.yaxis.title.text == "Speed (mm/s)"
    assert not speed_profile_figure(speed, 100.0).layout.shapes
    with pytest.raises(ValueError, match="Movement segment 0"):
        speed_profile_figure(speed, 100.0, [(900, 1001)])


def test_voluntary_emg_and_trajectory_use_time_in_seconds():
    emg = np.random.default_rng(2).normal(size=(2, 2000))
    fig = voluntary_emg_figure(emg, FS, MUSCLES)
    assert [t.yaxis for t in fig.data] == ["y", "y2"]
    np.testing.assert_allclose(fig.data[1].x[[0, -1]], [0.0, 1999 / FS])
    np.testing.assert_array_equal(fig.data[1].y, emg[1])

    position = np.cumsum(np.random.default_rng(3).normal(size=(300, 3)), axis=0)
    fig = trajectory_figure(position, 100.0)
    path = fig.data[0]
    np.testing.assert_allclose(path.line.color, np.arange(300) / 100.0)
    assert {t.name: (t.x[0], t.y[0], t.z[0]) for t in fig.data[1:]} == {
        "start": tuple(position[0]), "end": tuple(position[-1])
    }
    # Same mm per unit on every axis: aspect ratios follow the axis ranges.
    scene = fig.layout.scene
    spans = [np.diff(getattr(scene, f"{a}axis").range)[0] for a in "xyz"]
    ratios = [getattr(scene.aspectratio, a) for a in "xyz"]
    np.testing.assert_allclose(np.array(ratios) / ratios[0], np.array(spans) / spans[0])


def test_trajectory_short_axes_label_no_corner_of_the_box():
    """A straight reach along y: x and z are short, and their labels would meet at the box's corners."""
    t = np.linspace(0, 1, 200)
    position = np.c_[3 * np.sin(20 * t), 280 * t, 5 * np.cos(20 * t)]
    scene = trajectory_figure(position, 100.0).layout.scene
    assert scene.yaxis.tickvals is None  # the long axis keeps plotly's ticks
    for name in "xz":
        axis = getattr(scene, f"{name}axis")
        lo, hi = axis.range
        assert 1 <= len(axis.tickvals) <= 2
        assert all(lo + 0.2 * (hi - lo) <= v <= hi - 0.2 * (hi - lo) for v in axis.tickvals)
        assert all(v % 5 == 0 for v in axis.tickvals)  # round values: the range is 104 mm wide


def test_unvalidated_waterfall_is_a_valid_figure_whose_steps_add_up():
    """The waterfall skips plotly's validation for speed; a validated copy must accept it as is."""
    import pandas as pd
    import plotly.graph_objects as go

    from components.views.prediction import waterfall_figure
    from core.modelling.explanation import Explanation

    features = [f"clin.f{i}" for i in range(14)]
    shap = pd.Series(np.linspace(-0.7, 0.6, 14), index=features)
    fig, data = waterfall_figure(Explanation(shap.to_numpy(), 0.25, np.ones(14), features, "log-odds"), title="Edited")
    validated = go.Figure(fig.to_plotly_json())  # raises on any invalid property
    trace = validated.data[0]
    assert trace.type == "waterfall" and len(trace.x) == 10 + 3  # base, 10 largest, the rest, prediction
    # base + every step = the prediction's margin, which the title turns into a probability.
    assert np.isclose(sum(trace.x[:-1]), 0.25 + shap.sum()) and np.isclose(trace.x[-1], 0.25 + shap.sum())
    assert f"{1 / (1 + np.exp(-(0.25 + shap.sum()))):.3f}" in validated.layout.title.text
    assert validated.layout.template.layout.plot_bgcolor == "white"  # the house template still applies
    assert list(data["amount"]) == list(trace.x)


def test_labels_of_points_piled_at_one_x_never_overlap():
    """The planted-vs-recovered scatter: many zero-effect proxies share x = 0 and similar y."""
    import pandas as pd

    from components.views.prediction import LABEL_FONT_PX, place_labels, planted_vs_recovered

    rng = np.random.default_rng(0)
    x_px = np.r_[np.full(8, 5.0), rng.uniform(100, 400, 6)]
    y_px = np.r_[rng.uniform(20, 40, 8), rng.uniform(80, 280, 6)]
    texts = [f"proxy_feature_{i}" for i in range(8)] + [f"planted_{i}" for i in range(6)]
    spots = place_labels(x_px, y_px, texts, width_px=460, height_px=310)
    boxes = []
    for (px, py), text, (ax, ay, anchor) in zip(zip(x_px, y_px), texts, spots):
        w, h = len(text) * 0.62 * LABEL_FONT_PX + 6, LABEL_FONT_PX + 6
        cx, cy = px + ax, py - ay
        x0 = cx if anchor == "left" else cx - w if anchor == "right" else cx - w / 2
        boxes.append((x0, cy - h / 2, x0 + w, cy + h / 2))
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 460 and 0 <= a[1] and a[3] <= 310  # inside the plot
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])  # no two labels overlap

    features = [f"clin.proxy{i}" for i in range(8)] + [f"dti.f{i}" for i in range(6)]
    data = pd.DataFrame({"planted_effect": np.r_[np.zeros(8), rng.uniform(0.1, 0.5, 6)], "mean_abs_shap": np.r_[rng.uniform(0.05, 0.08, 8), rng.uniform(0.1, 0.4, 6)],
                         "modality": [f.split(".")[0] for f in features]}, index=features)
    fig = planted_vs_recovered(data, 0.5, "log-odds of response", n_labels=14)
    labels = [a for a in fig.layout.annotations if a.showarrow]
    assert len(labels) == 14 and len({(a.x, a.y, a.ax, a.ay) for a in labels}) == 14
    assert "Spearman ρ = 0.50 (14 features)" in fig.layout.title.text


# --- the toolbar strip -------------------------------------------------------------------------------


def _container_px(y: float, height: float) -> float:
    """Pixels from the figure's top edge of a container y."""
    return (1 - y) * height


@pytest.mark.parametrize("subtitle", [None, "2000 resamples of patients"])
def test_titles_move_below_the_toolbar_and_the_plot_keeps_its_size(subtitle):
    import plotly.graph_objects as go

    from components.figures import MODEBAR_STRIP_PX, clear_modebar_strip

    title = {"text": "Calibration"} | ({"subtitle": {"text": subtitle}} if subtitle else {})
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1])).update_layout(height=400, margin=dict(t=40, b=10), title=title)
    clear_modebar_strip(fig)
    assert fig.layout.height == 400 + MODEBAR_STRIP_PX
    assert fig.layout.margin.t == 40 + MODEBAR_STRIP_PX  # so the plotting area is as tall as before
    assert fig.layout.title.yanchor == "top"
    assert _container_px(fig.layout.title.y, fig.layout.height) == pytest.approx(MODEBAR_STRIP_PX + 8)
    clear_modebar_strip(fig)  # shown twice: lowered once
    assert fig.layout.height == 400 + MODEBAR_STRIP_PX


def test_placed_titles_and_legends_move_down_by_the_strip_and_bare_figures_stay():
    import plotly.graph_objects as go

    from components.figures import MODEBAR_STRIP_PX, clear_modebar_strip

    fig = go.Figure().update_layout(height=500, margin_t=90, title=dict(text="Patterns", y=0.99, yanchor="top"),
                                    legend=dict(orientation="h", yref="container", y=0.95, yanchor="top"))
    clear_modebar_strip(fig)
    assert _container_px(fig.layout.title.y, 530) == pytest.approx(MODEBAR_STRIP_PX + 0.01 * 500)
    assert _container_px(fig.layout.legend.y, 530) == pytest.approx(MODEBAR_STRIP_PX + 0.05 * 500)

    bare = go.Figure(go.Scatter(x=[0, 1], y=[0, 1])).update_layout(height=300, margin_t=20)
    assert clear_modebar_strip(bare).layout.height == 300
    legend_above = go.Figure().update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    assert clear_modebar_strip(legend_above).layout.height == 450 + MODEBAR_STRIP_PX  # Plotly's default height, grown


def test_distribution_shows_each_groups_box_and_labels_the_threshold_beside_the_plot(small_cohort):
    from components.views.cohort import distribution_figure

    fig, table = distribution_figure(small_cohort, "improvement_pct", "responder")
    responders = int(small_cohort.outcomes["responder"].sum())
    assert [t.name for t in fig.data] == [f"non-responder (n={len(small_cohort.outcomes) - responders})", f"responder (n={responders})"]
    for violin in fig.data:
        assert violin.box.visible and violin.meanline.visible
        # Quartiles and mean drawn in a colour the fill does not hide.
        assert violin.box.line.color == violin.meanline.color != violin.line.color
        assert violin.fillcolor.startswith("rgba(")
    (label,) = fig.layout.annotations
    assert "50%" in label.text
    assert (label.xref, label.x, label.xanchor) == ("x domain", 1, "left")  # in the right margin, past every violin
    assert fig.layout.margin.r >= 80
    assert len(table) == len(small_cohort.outcomes)
