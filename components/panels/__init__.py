"""Streamlit panels, one module per page: widgets, cached calls into core, and views shown with
their exports."""
