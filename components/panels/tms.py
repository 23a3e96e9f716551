"""Panels of the TMS threshold-maps page: coil controls, the cached map, the surface, slices,
histogram, the NEURON check, exports and the surrogate's report.

Thresholds do not depend on the intensity, so the map is computed once per coil placement
(:func:`compute_map`, cached on the placement's few numbers) and every intensity-dependent view
(|E|, activated fraction, counts) is derived from it on each rerun in microseconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import streamlit as st

from components import state
from components.figures import show_figure
from components.panels import jobs
from components.views import tms as views
from core.jobs import shipped_tms_dataset_config, tms_dataset_chunks, tms_dataset_job
from core.tms.cortex import PRESET_HANDLE_DEG, CoilSpec, load_cortex, placement_of
from core.tms.maps import MAX_INTENSITY_A_PER_US, check_against_neuron, threshold_map
from core.tms.surrogate import DEFAULT_SURROGATE_DIR

PRESET_LABELS = {"hand_knob_left": "Hand knob, left M1 (motor hotspot)", "hand_knob_right": "Hand knob, right M1 (motor hotspot)"}
WAVEFORMS = {"monophasic": "Monophasic", "biphasic": "Biphasic (no surrogate yet)"}
QUANTITY_LABELS = {"efield": "|E| (V/m)", "threshold": "Threshold (A/µs)", "fraction": "Activated fraction"}
SURFACES = {"soma": "Soma layer of the cell type", "pial": "Pial surface", "white": "White-matter surface"}
DEFAULT_INTENSITY = 150.0


@st.cache_resource(show_spinner="Loading the fsaverage5 cortex ...")
def cortex():
    return load_cortex()


@st.cache_resource(max_entries=8, show_spinner="Computing the threshold map (CNN surrogate, a few seconds) ...")
def compute_map(spec: CoilSpec, waveform: str):
    """The ThresholdMap of a coil spec (every cell type, the coil's hemisphere). Raises InputError."""
    return threshold_map(placement_of(cortex(), spec), cortex=cortex(), waveform=waveform)


@st.cache_data
def surrogate_report() -> dict | None:
    path = DEFAULT_SURROGATE_DIR / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


# --- controls ---------------------------------------------------------------------------------------


def coil_controls() -> tuple[CoilSpec, str, float]:
    """Coil position, waveform and intensity widgets -> (spec, waveform, intensity in A/us)."""
    c = st.columns([4, 2, 2, 2, 2])  # wide enough for the whole preset name
    preset = c[0].selectbox("Coil position", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key="tms-preset",
                            help="Preset over the hand knob of M1; move it with the offsets (free placement).")
    anterior = c[1].number_input("Anterior offset (mm)", -40.0, 40.0, 0.0, 5.0, key="tms-anterior",
                                 help="Move the coil target forwards (+) or backwards (-) from the hotspot.")
    lateral = c[2].number_input("Lateral offset (mm)", -30.0, 30.0, 0.0, 5.0, key="tms-lateral",
                                help="Move the coil target outwards (+) or towards the midline (-).")
    handle = c[3].number_input("Handle angle (°)", -180.0, 180.0, PRESET_HANDLE_DEG, 15.0, key="tms-handle",
                               help="Seen from above, from pointing straight back (0) towards lateral (90); 45 is the "
                                    "classic posterior-lateral handle (posterior-to-anterior current in M1).")
    tilt = c[4].number_input("Tilt (°)", -30.0, 30.0, 0.0, 5.0, key="tms-tilt",
                             help="Rotation of the coil about its handle axis.")
    c = st.columns([2, 5], vertical_alignment="bottom")
    waveform = c[0].radio("Waveform", list(WAVEFORMS), format_func=WAVEFORMS.get, key="tms-waveform", horizontal=True,
                          help="The shipped surrogate is trained on monophasic pulses only.")
    intensity = c[1].slider("Intensity dI/dt (A/µs)", 0.0, MAX_INTENSITY_A_PER_US, DEFAULT_INTENSITY, 5.0, key="tms-intensity",
                            help="Rate of change of the coil current. Thresholds do not depend on it; |E| and the "
                                 "activated fraction scale with it.")
    return CoilSpec(preset, float(anterior), float(lateral), float(handle), float(tilt)), waveform, float(intensity)


def view_controls(tmap) -> tuple[str, str, str]:
    """Cell type (and its layer), quantity and surface -> (cell_type, quantity, surface)."""
    c = st.columns([3, 4, 3])
    cell_type = c[0].selectbox("Cell type (layer)", list(tmap.cell_types), index=list(tmap.cell_types).index("L5_PC")
                               if "L5_PC" in tmap.cell_types else 0, key="tms-cell",
                               format_func=lambda ct: f"{views.CELL_LABELS.get(ct, ct)} ({tmap.layers[ct]})")
    quantity = c[1].radio("Map", list(QUANTITY_LABELS), format_func=QUANTITY_LABELS.get, key="tms-quantity", horizontal=True)
    surface = c[2].selectbox("Surface", list(SURFACES), format_func=SURFACES.get, key="tms-surface",
                             help="Values belong to the cell type's soma layer; other surfaces show them by vertex.")
    return cell_type, quantity, surface


# --- views ------------------------------------------------------------------------------------------


def summary_row(tmap, cell_type: str, intensity: float) -> None:
    s = tmap.summary(cell_type, intensity)
    c = st.columns(5)
    c[0].metric("Max |E| (V/m)", f"{s['max_e_v_per_m']:.1f}", help=f"At {intensity:g} A/µs on the {tmap.layers[cell_type]} soma layer.")
    c[1].metric("Vertices activated", f"{s['vertices_activated']:,}", help="Vertices where at least one of the cells "
                "(rotations x morphological variants) fires at this intensity.")
    c[2].metric("Mean activated fraction", f"{s['mean_fraction_activated']:.2f}", help="Over the activated vertices.")
    low = s["lowest_threshold_a_per_us"]
    c[3].metric("Lowest threshold (A/µs)", "—" if math.isnan(low) else f"{low:.1f}", help="Median over cells, lowest vertex.")
    med = s["median_threshold_a_per_us"]
    c[4].metric("Median threshold (A/µs)", "—" if math.isnan(med) else f"{med:.1f}",
                help=f"Over the {s['vertices_below_range']:,} vertices whose median is within "
                     f"{tmap.max_intensity_a_per_us:g} A/µs.")


def _positions(tmap, cell_type: str, surface: str) -> np.ndarray:
    if surface == "soma":
        return tmap.positions_mm[cell_type]
    c = cortex()
    return c.surface(surface)[0][c.hemisphere_slice(tmap.hemisphere)][tmap.vertices]


def surface_panel(tmap, cell_type: str, quantity: str, surface: str, intensity: float) -> None:
    values = views.map_values(tmap, cell_type, quantity, intensity)
    fig = views.surface_figure(_positions(tmap, cell_type, surface), tmap.faces, values, quantity, tmap.placement,
                               max_intensity_a_per_us=tmap.max_intensity_a_per_us,
                               title=f"{QUANTITY_LABELS[quantity]} · {cell_type} · {tmap.hemisphere} hemisphere · {intensity:g} A/µs")
    show_figure(fig, key="tms-surface", filename=f"tms_{quantity}_{cell_type}")
    st.caption("Grey: threshold above the stimulator range (or the site's field too weak to evaluate). Red dot: coil "
               "centre on the scalp; orange line: handle direction; blue letters: left, right, anterior, posterior (superior, "
               "inferior) as seen from the coil. Against the literature: these L5 cells' median threshold in a "
               "uniform field, about 330 V/m, lies in the 175-350 V/m published for such models, 2-5x the 50-70 V/m that "
               "whole-head models put at the motor threshold (Weise et al. 2025; table in the README).")


def histogram_panel(tmap, cell_type: str, intensity: float) -> None:
    fig, data = views.threshold_histogram(tmap.median_threshold_a_per_us(cell_type), intensity, tmap.max_intensity_a_per_us)
    st.markdown(f"**Thresholds of {cell_type}** ({len(data):,} vertices within {tmap.max_intensity_a_per_us:g} A/µs, "
                f"of {int(tmap.evaluated[cell_type].sum()):,} evaluated)")
    show_figure(fig, key="tms-hist", data=data, filename=f"tms_thresholds_{cell_type}")


def slices_panel(tmap, cell_type: str, quantity: str, intensity: float) -> None:
    values = views.map_values(tmap, cell_type, quantity, intensity)
    pos = tmap.positions_mm[cell_type]
    crosshair = pos[int(np.argmax(tmap.efield_magnitude_v_per_m(cell_type, 1.0)))]
    fig, data = views.cross_sections_figure(pos, values, quantity, crosshair, max_intensity_a_per_us=tmap.max_intensity_a_per_us)
    st.markdown(f"**Orthogonal cross-sections** through the {tmap.layers[cell_type]} vertex of strongest |E|")
    show_figure(fig, key="tms-slices", data=data, filename=f"tms_slices_{quantity}_{cell_type}")
    st.caption(f"Vertices of the soma layer within ±{views.SLICE_HALF_WIDTH_MM:g} mm of each plane, coloured by the map "
               "(surface cross-sections, not a volume resampling).")


def neuron_check_panel(tmap, cell_type: str) -> None:
    st.markdown(f"**Check against NEURON**: re-simulate random {cell_type} cells of this map with the compartmental "
                "model on exact E-field grids (about 0.3-1 s a cell).")
    c = st.columns([1, 2], vertical_alignment="bottom")
    n_sites = int(c[0].number_input("Cells (N)", 1, 20, 3, key="tms-neuron-n"))
    signature = (cell_type, repr(getattr(tmap, "placement", None)))  # a result belongs to one map and cell type
    if not c[1].button("Check against NEURON", key="tms-neuron", icon=":material/science:"):
        saved = state.session_store("tms", dict).get("neuron_result")
        if saved is not None and saved[0] == signature:  # keep the last check on screen across reruns
            _show_neuron_result(saved[1])
        return
    bar = st.progress(0.0, text="compiling the channel mechanisms and building the cells ...")
    live = st.empty()
    rows = []

    def progress(done, total, row):
        rows.append(row)
        bar.progress(done / total, text=f"cell {done} of {total} simulated")
        live.dataframe(_neuron_table(pd.DataFrame(rows)), hide_index=True)

    table = check_against_neuron(tmap, cell_type, n_sites, progress=progress)
    bar.empty()
    live.empty()
    state.session_store("tms", dict)["neuron_result"] = (signature, table)
    _show_neuron_result(table)


def _show_neuron_result(table: pd.DataFrame) -> None:
    st.dataframe(_neuron_table(table), hide_index=True)
    st.success(f"Median |error| of the surrogate against NEURON over {len(table)} cells: "
               f"{100 * np.median(np.abs(table['rel_error'])):.2f}%", icon=":material/check_circle:")


def _neuron_table(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"vertex": table["vertex"], "azimuth (°)": table["azimuth_deg"], "variant": table["variant"],
                         "surrogate (A/µs)": table["surrogate_a_per_us"].round(1), "NEURON (A/µs)": table["neuron_a_per_us"].round(1),
                         "error (%)": (100 * table["rel_error"]).round(2), "NEURON time (s)": table["seconds"].round(2)})


def export_panel(tmap, intensity: float) -> None:
    st.markdown("**Exports** of the maps at this intensity (every cell type)")
    c = st.columns(2)
    c[0].download_button("Maps (CSV)", tmap.to_frame(intensity).to_csv(index=False).encode(), file_name="tms_maps.csv",
                         mime="text/csv", key="tms-csv", icon=":material/download:")
    c[1].download_button("Surface and maps (GIFTI)", tmap.to_gifti(intensity).to_bytes(), file_name="tms_maps.func.gii",
                         mime="application/octet-stream", key="tms-gifti", icon=":material/download:",
                         help="fsaverage5 soma-layer surface (POINTSET, TRIANGLE) with |E|, threshold and fraction per cell type.")
    st.caption("Figures: use the camera button on each figure (PNG or SVG, chosen in the sidebar).")


def surrogate_expander() -> None:
    with st.expander("How good is the surrogate?", icon=":material/fact_check:"):
        report = surrogate_report()
        if report is None:
            st.warning("No validation report shipped with the surrogate (assets/tms/surrogate/report.json).")
            return
        st.dataframe(views.surrogate_report_table(report), hide_index=True)
        speed = report.get("speed", {})
        st.caption(f"Held-out set: coil placements and cortical regions never seen in training. Error of the threshold "
                   f"(A/µs) against NEURON. The CNN is about {speed.get('speedup', float('nan')):,.0f}x faster than NEURON "
                   f"per threshold. Retrain with `{report.get('command', 'python -m core tms-train')}`.")


def dataset_panel() -> None:
    """The surrogate's training dataset (NEURON thresholds, hours of CPU), generated resumably as a
    background job that runs ``python -m core tms-dataset``'s call, into this workspace."""
    with st.expander("Training dataset of the surrogate (NEURON simulations)", icon=":material/dataset:"):
        config = shipped_tms_dataset_config()
        key = config.digest()
        done, planned = tms_dataset_chunks(config, state.workspace_path())
        st.caption(f"Dataset `{key}` (assets/tms/dataset.yaml): " + (f"{done} of {planned} chunks computed in this workspace." if planned else "not started in this workspace.")
                   + " It runs in the background (closing the tab does not stop it); cancelled or interrupted, it resumes at the next chunk.")
        job = jobs.active("tms_dataset", key)
        if job is None:
            jobs.finished_notice(jobs.latest("tms_dataset", key))
            c = st.columns([1, 2], vertical_alignment="bottom")
            limit = int(c[0].number_input("Chunks this time (0: all)", 0, 100_000, 4, key="tms-dataset-limit",
                                          help="Each chunk is 40 thresholds of one cell variant (minutes on two cores); 0 computes every missing chunk."))
            if not c[1].button("Generate in the background", key="tms-dataset-run", icon=":material/play_arrow:"):
                return
            params, key = tms_dataset_job(config, n_jobs=2, limit=limit or None)
            job = jobs.submit("tms_dataset", params, key)
        jobs.progress_panel(job, "Generating the TMS threshold dataset", cancel_help="Stops at the next finished chunk; the finished ones are kept.")

