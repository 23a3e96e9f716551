"""Reusable Streamlit/plotly views; may import core, never pages."""
