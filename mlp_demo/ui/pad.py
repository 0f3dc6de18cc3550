"""The drawing pad: our own component (mlp_demo/web/), drawn in the first paint, before torch is
imported, so it imports neither torch nor numpy (nor the Session, which does). The browser
reads the drawing itself as the pen moves; what it sends here when the pen lifts is the 28x28
field, handed on untouched: the Session's strict reader checks it."""

from __future__ import annotations

import streamlit as st

from mlp_demo import web
from mlp_demo.server import weights

PAD_KEY = "pad"  # one pad for the life of the tab: later runs only pass it new data

# Why our own pad, not streamlit-drawable-canvas: the page must read the drawing while it is
# drawn, which that component does not expose except through its private canvas; it had three
# breaking releases in one week; and its maintainer no longer checks mobile. This one is Pointer
# Events on a canvas (mouse, finger, pen), with a brush width, Undo and Clear, in the page itself
# (no shadow root), so that a screen reader, the page's text and the tests all reach it.
_pad = st.components.v2.component("mlp_demo.pad", html=web.text("pad.html"), css=web.text("pad.css"),
                                  js=web.module_js(), isolate_styles=False)


# On a phone the title and intro take no more than about a fifth of the first screen, so the pad
# and its bars fit in it too; Streamlit's own top padding (6rem) is most of what goes.
_PAGE_CSS = """<style>
@media (max-width: 640px) {
  .stMainBlockContainer { padding-top: 3.75rem; }
  .stMainBlockContainer h1 { font-size: 1.25rem; padding: 0; }
  .stMainBlockContainer .stCaption, .stMainBlockContainer [data-testid="stCaptionContainer"] {
    font-size: 0.75rem; line-height: 1.3; }
}
</style>"""


def compact_header_on_phones() -> None:
    st.html(_PAGE_CSS)


def shipped_model() -> dict:
    """The first paint's model, before a Session (and torch) exists."""
    return {"model": weights.publish_file(weights.SHIPPED)}


def drawing_pad(model: dict) -> object:
    """The pad, running `model` ({"model": URL} or {"note": text}) in the browser; returns what
    the browser sent when the pen last lifted (None for an empty pad). Untrusted."""
    result = _pad(key=PAD_KEY, data=model, default={"field": None}, on_field_change=_drawn)
    return result.get("field")


def _drawn() -> None:
    """A new field: the fragment that holds the pad reruns and reads it."""
