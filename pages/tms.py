"""TMS threshold maps page: place the coil, see where and in which layer cortex fires."""

import streamlit as st

from components import state
from components.guard import guarded
from components.panels import tms as panels
from core.errors import InputError

state.require_entry_point("pages/tms.py")
st.title("TMS threshold maps")
state.show_flash()
st.caption("Coil threshold (A/µs of coil dI/dt) of cortical neurons at every vertex of an fsaverage5 hemisphere, from a "
           "3D-CNN surrogate of NEURON compartmental models (after Aberra et al. 2023).")
st.info("Thresholds depend on the simulator's settings: the cell models (procedurally built adult-human L2/3 and L5 "
        "pyramidal cells and L4 large basket cells after Aberra et al. 2018/2020, two variants each), their channel kinetics, a monophasic pulse only, a 70 mm "
        "figure-8 coil over a spherical head, and a resolved range of 0-300 A/µs. Read them as relative maps, not "
        "as a patient's motor threshold.", icon=":material/info:")

spec, waveform, intensity = panels.coil_controls()
try:
    tmap = panels.compute_map(spec, waveform)
except InputError as exc:
    st.error(str(exc))
    st.stop()
st.caption(f"{tmap.hemisphere.capitalize()} hemisphere · {tmap.n_vertices:,} vertices · coil centre "
           f"({', '.join(f'{v:.0f}' for v in tmap.placement.centre_mm)}) mm · map computed in {tmap.seconds['total']:.1f} s")

cell_type, quantity, surface = panels.view_controls(tmap)
guarded(panels.summary_row, tmap, cell_type, intensity)
guarded(panels.surface_panel, tmap, cell_type, quantity, surface, intensity)

left, right = st.columns(2)
with left:
    guarded(panels.histogram_panel, tmap, cell_type, intensity)
with right:
    guarded(panels.neuron_check_panel, tmap, cell_type)
    guarded(panels.export_panel, tmap, intensity)
guarded(panels.slices_panel, tmap, cell_type, quantity, intensity)
panels.surrogate_expander()
panels.dataset_panel()
