"""Pure figure builders, one module per subject: they take core objects and numbers and return
plotly figures and the tables behind them. None imports Streamlit."""
