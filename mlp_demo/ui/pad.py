"""The drawing pad. Drawn in the first paint, before torch is imported, so it imports neither
torch nor numpy (nor the Session, which does): what the browser sent is handed back as text
and read by the strict reader later."""

from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas  # importable only inside a Streamlit runtime

PAD_SIZE = 280


def clear_pad() -> None:
    from . import server  # torch: loaded by the time anyone presses Clear

    server.session().clear_pad()


def drawing_pad(version: int) -> str | None:
    """The pad (a new one for each version: Clear); returns the PNG data URL the browser sent."""
    st.subheader("Draw a digit")
    brush = st.slider("Brush width", 6, 40, 20, key="brush")
    result = st_canvas(stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
                       height=PAD_SIZE, width=PAD_SIZE, drawing_mode="freedraw",
                       return_image_data=True, key=f"canvas_{version}")
    st.button("Clear", icon=":material/ink_eraser:", on_click=clear_pad)
    # The raw data URL, not result.image_data: that property decodes whatever PNG the
    # browser sent, of any size, before anyone could look at it.
    return getattr(result, "_image_data_url", None)
