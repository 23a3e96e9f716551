"""Upload page: drop real patient data, check every file, preview it, map the table's columns, save a cohort."""

import streamlit as st

from components import state
from components.panels import upload as panels
from core.errors import InputError
from core.io import worst_status

state.require_entry_point("pages/upload.py")
st.title("Upload patient data")
state.show_flash()

try:
    limits = panels.upload_limits()
except InputError as exc:
    st.error(str(exc))
    st.stop()

panels.format_spec()
files = panels.drop_zone(limits)
options = panels.reading_options(files)
items = panels.load_uploads(files, limits, options)
up = panels.session()
for item in items:
    if not item.ok:
        st.error(item.error, icon=":material/error:")

scan_item = panels.choose_cohort_upload(items)
if scan_item is not None and all(scan_item is not i for i in items):
    c = st.columns([4, 1], vertical_alignment="center")
    c[0].info(f"Still using **{scan_item.name}**, loaded before: the files above did not replace it.", icon=":material/inventory_2:")
    if c[1].button("Forget it", key="upl-forget", icon=":material/delete:"):
        up.forget()
        st.rerun()

singles = [i for i in items if i.kind != "cohort" or not i.ok]  # every file but the cohort upload in use
if not items and scan_item is None:
    st.info("Drop a zip of a multi-patient folder (see 'How to lay out an upload'), or single files to check them. "
            "No data at hand? Download the example folder and drop it here.", icon=":material/upload_file:")
    panels.example_upload_button()
    st.stop()

if singles:
    st.subheader("Files checked")
    panels.show_report([e for i in singles for e in i.report], key="upl-files-report")
    previewable = [i for i in singles if i.ok and i.kind in ("volume", "diffusion", "emg", "kin")]
    if previewable:
        names = {i.digest: i for i in previewable}
        chosen = st.selectbox("Preview", list(names), format_func=lambda d: f"{names[d].name} ({names[d].kind})", key="upl-preview")
        panels.preview(names[chosen])

if scan_item is None:
    st.stop()

scan = scan_item.data
st.subheader(f"Cohort from {scan_item.name}")
st.caption(f"Clinical table `{scan.table_path}`: {len(scan.table.frame)} rows x {scan.table.frame.shape[1]} columns. "
           "Check the roles of its columns: what was guessed is preselected.")
mapping = panels.mapping_editor(scan, key=f"upl-map-{scan_item.digest[:12]}")
if not panels.mapping_summary(scan, mapping):
    st.stop()
try:
    panels.files_per_patient(scan, mapping)
except InputError as exc:
    st.error(str(exc))
    st.stop()

key = panels.build_key(scan_item, mapping, options)
built = up.built[1] if up.built and up.built[0] == key else None
stale = up.built is not None and built is None
if st.button("Read the files and build the cohort", type="primary", key="upl-build", icon=":material/build:"):
    built = panels.build(scan_item, mapping, options, limits)
elif stale:
    st.warning("The mapping or the options changed since the cohort was built: build it again.", icon=":material/sync_problem:")

st.subheader("Validation report")
entries = built.report if built is not None else scan.report
panels.show_report(entries, key="upl-report")
if built is None:
    st.stop()

cohort = built.cohort
status = worst_status(built.report)
st.caption(f"**{cohort.n_patients} patients** · {cohort.features.shape[1]} features · modalities: {', '.join(cohort.modalities)} · "
           f"{cohort.provenance['errors']} file(s) with errors · worst finding: {status}")
st.dataframe(cohort.summary(), width="stretch")

if st.toggle("Show a patient's files as read (FA over MNI152, MEPs, voluntary EMG, reaching)", key="upl-show-patient"):
    patient = st.selectbox("Patient", list(cohort.patients.index), key="upl-patient")
    panels.patient_preview(cohort, patient)

verdicts = panels.registrations_panel(built, key=f"upl-{key}")
if verdicts is None:
    st.stop()

st.subheader("Save to the workspace")
saved = panels.save_form(built, verdicts, panels.default_name(scan_item.name), state.workspace())
if saved:
    state.set_current_cohort(saved)
    state.flash(f"Saved {cohort.n_patients} uploaded patients as '{saved}'")
    st.rerun()  # redraw the sidebar, which ran before this page, with the new cohort
if up.saved and up.saved == state.current_cohort_name():
    st.success(f"**{up.saved}** is saved and is the current cohort.", icon=":material/check_circle:")
    links = st.columns(3)
    links[0].page_link("pages/prediction.py", label="Train a model on it", icon=":material/query_stats:")
    links[1].page_link("pages/ablation.py", label="See what each modality adds", icon=":material/layers:")
    links[2].page_link("pages/cohort.py", label="Explore it", icon=":material/groups:")
