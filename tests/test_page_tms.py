"""The TMS threshold-maps page driven through AppTest: defaults, numbers shown, intensity, waveform,
moving the coil and the NEURON check.

Every test runs app.py (navigation + sidebar) and switches to pages/tms.py on an empty workspace
(the page needs no cohort). The numbers shown are checked against ``core.tms.maps`` computed here
for the same placement.
"""


import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from components.panels.tms import DEFAULT_INTENSITY
from core.store.workspace import DEFAULT_WORKSPACE_ENV
from core.tms.cortex import CoilSpec, coil_preset, load_cortex, placement_of
from core.tms.maps import threshold_map
from tests.app_support import APP, metric, no_exception

PAGE = "pages/tms.py"
CELL = "L5_PC"

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(tmp_path / "workspace"))


@pytest.fixture(scope="module")
def engine_map():
    """The map the page's defaults (left hand-knob preset) must show."""
    cortex = load_cortex()
    return threshold_map(coil_preset(cortex, "hand_knob_left"), cortex=cortex)


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300).switch_page(PAGE).run()
    no_exception(at)
    assert at.title[0].value == "TMS threshold maps"
    assert not at.error, [e.value for e in at.error]
    return at


def test_defaults_show_the_engines_numbers_and_intensity_moves_only_the_fraction(engine_map):
    at = open_page()
    assert at.selectbox(key="tms-cell").value == CELL
    assert at.slider(key="tms-intensity").value == DEFAULT_INTENSITY
    e = engine_map.efield_magnitude_v_per_m(CELL, DEFAULT_INTENSITY)
    frac = engine_map.fraction_activated(CELL, DEFAULT_INTENSITY)
    thr = engine_map.median_threshold_a_per_us(CELL)
    assert metric(at, "Max |E| (V/m)") == f"{e.max():.1f}"
    assert metric(at, "Vertices activated") == f"{int((frac > 0).sum()):,}"
    assert int((frac > 0).sum()) > 0
    assert metric(at, "Lowest threshold (A/µs)") == f"{np.nanmin(thr):.1f}"
    assert metric(at, "Median threshold (A/µs)") == f"{np.nanmedian(thr):.1f}"
    assert at.expander[0].label == "How good is the surrogate?"
    assert any("simulator's settings" in i.value for i in at.info)

    before = {label: metric(at, label) for label in ("Lowest threshold (A/µs)", "Median threshold (A/µs)")}
    activated = int(metric(at, "Vertices activated").replace(",", ""))
    at.slider(key="tms-intensity").set_value(250.0).run()
    no_exception(at)
    assert {label: metric(at, label) for label in before} == before
    higher = int(metric(at, "Vertices activated").replace(",", ""))
    assert higher >= activated
    assert higher == int((engine_map.fraction_activated(CELL, 250.0) > 0).sum())
    assert metric(at, "Max |E| (V/m)") == f"{engine_map.efield_magnitude_v_per_m(CELL, 250.0).max():.1f}"

    for quantity in ("threshold", "fraction"):  # every map renders
        at.radio(key="tms-quantity").set_value(quantity).run()
        no_exception(at)
    at.selectbox(key="tms-surface").set_value("pial").run()
    no_exception(at)


def test_biphasic_shows_the_engines_message():
    at = open_page()
    at.radio(key="tms-waveform").set_value("biphasic").run()
    no_exception(at)
    assert at.error and "monophasic" in at.error[0].value and "biphasic" in at.error[0].value
    at.radio(key="tms-waveform").set_value("monophasic").run()
    no_exception(at)
    assert not at.error


def test_turning_the_handle_recomputes_the_map():
    at = open_page()
    before = metric(at, "Max |E| (V/m)")
    at.number_input(key="tms-handle").set_value(-45.0).run()
    no_exception(at)
    cortex = load_cortex()
    tmap = threshold_map(placement_of(cortex, CoilSpec(handle_deg=-45.0)), cortex=cortex, cell_types=[CELL])
    shown = metric(at, "Max |E| (V/m)")
    assert shown == f"{tmap.efield_magnitude_v_per_m(CELL, DEFAULT_INTENSITY).max():.1f}"
    frac = tmap.fraction_activated(CELL, DEFAULT_INTENSITY)
    assert metric(at, "Vertices activated") == f"{int((frac > 0).sum()):,}"
    assert shown != before or metric(at, "Vertices activated") != f"{0:,}"


def test_check_against_neuron_shows_a_table():
    at = open_page()
    at.number_input(key="tms-neuron-n").set_value(2)
    at.button(key="tms-neuron").click().run()
    no_exception(at)
    tables = [d.value for d in at.dataframe if "NEURON (A/µs)" in d.value.columns]
    assert tables and len(tables[-1]) == 2
    assert np.all(np.abs(tables[-1]["error (%)"]) < 50)
    assert any("Median |error|" in s.value for s in at.success)
