"""The page's sections as Streamlit code. Only app.py imports this package; the core
modules (mlp_demo.*) never import streamlit."""
