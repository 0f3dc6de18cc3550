"""The drawing pad. Drawn in the first paint, before torch is imported, so it imports neither
torch nor numpy: what the browser sent is kept as text and read by the strict reader later."""

from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas  # importable only inside a Streamlit runtime

PAD_SIZE = 280


def clear_pad() -> None:
    st.session_state.canvas_version = st.session_state.get("canvas_version", 0) + 1


def drawing_pad() -> None:
    """The pad; the PNG data URL the browser sent lands in st.session_state.drawing_url."""
    st.subheader("Draw a digit")
    brush = st.slider("Brush width", 6, 40, 20, key="brush")
    version = st.session_state.get("canvas_version", 0)
    result = st_canvas(stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
                       height=PAD_SIZE, width=PAD_SIZE, drawing_mode="freedraw",
                       return_image_data=True, key=f"canvas_{version}")
    # The raw data URL, not result.image_data: that property decodes whatever PNG the
    # browser sent, of any size, before anyone could look at it.
    st.session_state.drawing_url = getattr(result, "_image_data_url", None)
    st.button("Clear", icon=":material/ink_eraser:", on_click=clear_pad)
