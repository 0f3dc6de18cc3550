"""The drawing pad. Drawn in the first paint, before torch is imported, so it imports neither
torch nor numpy (nor the Session, which does): what the browser sent is handed back as text
and read by the strict reader later."""

from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas  # importable only inside a Streamlit runtime

PAD_SIZE = 280
PAD_KEY = "canvas_pad"  # one pad for the life of the tab: it is never replaced

# Clear empties the pad in the browser, with the pad's own reset (the bin on its hover
# toolbar), and the pad then sends its empty drawing like any stroke. It used to mount a new
# pad from the server: on a cold server the page's first run held that back for seconds, a
# stroke drawn meanwhile landed on the pad about to go, and was lost (issue 23: 2 of 6 cold
# starts). Now nothing waits on the server, so a stroke after Clear always lands on the pad.
_CLEAR_JS = """
export default function ({ parentElement, data }) {
  parentElement.querySelector("button").onclick = () => {
    const pad = document.querySelector(".st-key-" + data.pad);
    const host = pad && [...pad.querySelectorAll("*")].find((e) => e.shadowRoot);
    const root = host ? host.shadowRoot : pad;
    root?.querySelector('button[aria-label="Reset canvas & history"]')?.click();
  };
}
"""
_CLEAR_CSS = """
button { font: inherit; font-family: var(--st-font); color: var(--st-text-color);
  background: var(--st-background-color); border: 1px solid var(--st-border-color);
  border-radius: var(--st-button-radius, 0.5rem); padding: 0.25rem 0.75rem; min-height: 2.5rem;
  cursor: pointer; }
button:hover { border-color: var(--st-primary-color); color: var(--st-primary-color); }
button:active { background: var(--st-primary-color); color: white; }
"""
_clear_button = st.components.v2.component(
    "mlp_demo.clear_pad", html='<button type="button">Clear</button>', css=_CLEAR_CSS,
    js=_CLEAR_JS)


def drawing_pad() -> str | None:
    """The pad and its Clear; returns the PNG data URL the browser sent."""
    st.subheader("Draw a digit")
    brush = st.slider("Brush width", 6, 40, 20, key="brush")
    result = st_canvas(stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
                       height=PAD_SIZE, width=PAD_SIZE, drawing_mode="freedraw",
                       return_image_data=True, key=PAD_KEY)
    _clear_button(key="clear_pad", data={"pad": PAD_KEY})
    drawn = result.json_data
    if not isinstance(drawn, dict) or not drawn.get("objects"):
        return None  # nothing drawn since the pad appeared or was cleared
    # The raw data URL, not result.image_data: that property decodes whatever PNG the
    # browser sent, of any size, before anyone could look at it.
    return getattr(result, "_image_data_url", None)
