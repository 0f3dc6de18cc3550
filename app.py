"""mlp_demo in the browser: `streamlit run app.py`.

The page's outline, top to bottom in the order a visitor sees it. Each section's widgets live
in mlp_demo/ui/ (which only this file imports); everything shown is computed in mlp_demo.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning. The training thread shares the cores with the
# UI thread (and, on a laptop, the browser); spinning threads slowed training 3-4x (README).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from mlp_demo.ui.pad import compact_header_on_phones, drawing_pad, shipped_model  # no torch yet

st.set_page_config(page_title="Train an MLP on MNIST", page_icon="✏️", layout="wide")

if st.query_params.get("view") == "board":  # a class's board, for the projector: nothing else
    from mlp_demo.ui.board import board_page

    board_page()
    st.stop()

# The first paint: the sidebar's title, the page's title and the pad go out before torch is
# imported (2.4 s on a cold server), so the first visitor can draw at once. The sidebar is
# in it so that the layout is final: drawn later, it would push the pad aside mid-stroke.
st.sidebar.title("Hyperparameters")
compact_header_on_phones()
st.title("Train a neural network on handwritten digits")
st.caption("A multi-layer perceptron, h = relu(W₁x + b₁), y = W₂h + b₂, learns MNIST's "
           "60,000 digits. Draw below; tune the settings in the sidebar and press Train.")
train_slot = st.empty()  # Train and Stop, filled in once torch is loaded; held open until then,
with train_slot.container(), st.container(horizontal=True, vertical_alignment="center"):
    st.button("Train", type="primary", disabled=True, icon=":material/play_arrow:")  # in the
    st.button("Stop", disabled=True, icon=":material/stop:")  # shape train_controls gives them,
    st.caption("Starting…")  # so that nothing below moves when they come


def drawing_and_prediction() -> None:
    """The pad (which reads the drawing in the browser as it is drawn), the model it runs, and
    what only the server can add once the pen lifts: why, labels, teaching. A fragment: a pen
    lift, a label or a change of model reruns only this, not the whole page with its figures."""
    pad_column, server_column = st.columns([3, 2], gap="large")
    with pad_column:
        if "session" in st.session_state:  # torch is loaded: the chosen model
            from mlp_demo.ui import server
            drawing = drawing_pad(server.session().browser_model())
        else:  # the first paint: the shipped model, before torch (2.4 s on a cold server)
            drawing = drawing_pad(shipped_model())
    from mlp_demo.ui import prediction, server, teaching

    me = server.session()
    with pad_column:
        prediction.model_picker(me)
        prediction.test_digit_picker(me)
    with server_column:
        seen = prediction.prediction_panel(me, drawing)
        teaching.label_buttons(me, seen)
        if seen is not None:
            prediction.live_trace(me)
            prediction.why_this_prediction(seen)
        teaching.teach_section(me)
    if me.page_is_stale():  # Teach started, or a run ended, since the page was drawn
        st.rerun()  # last, after the fragment's elements (streamlit/streamlit#11266)


def refresh_seconds() -> float | None:
    if "session" not in st.session_state:  # the first paint, before torch
        return None
    from mlp_demo.ui import prediction, server
    return prediction.refresh_seconds(server.session())


if "session" in st.session_state:  # a whole-page run (fragments rerun only their function)
    st.session_state.session.mark_page_drawn()
st.fragment(run_every=refresh_seconds())(drawing_and_prediction)()

from mlp_demo.train import device_choices  # the heavy imports (already loaded by the pad's fragment)
from mlp_demo.ui import server
from mlp_demo.ui.classroom import class_section
from mlp_demo.ui.compare import compare_section
from mlp_demo.ui.inside import inside_section
from mlp_demo.ui.models import models_section
from mlp_demo.ui.share import share_section
from mlp_demo.ui.sidebar import (
    config_from_state,
    config_problems,
    keep_link_current,
    link_notice,
    restore_from_link,
    sidebar,
)
from mlp_demo.ui.training import train_controls, training_section


def main() -> None:
    limits, me, devices = server.limits(), server.session(), device_choices()
    server.stop_on_a_foreign_database()
    server.read_teacher_key(me)  # before the address bar is rewritten from the settings
    server.heartbeat()
    st.fragment(run_every=server.heartbeat_seconds())(server.heartbeat)()  # while the tab stays open
    restore_from_link(me, limits, devices)  # a shared link's settings, before the widgets
    link_notice(me)
    sidebar(me, limits, devices)
    keep_link_current()
    config_error = config_problems(limits)
    config = config_from_state()
    with train_slot.container():
        train_controls(me, config, config_error)

    st.divider()
    class_section(me)
    st.divider()
    training_section(me)
    st.divider()
    compare_section(me)
    st.divider()
    inside_section(me)
    st.divider()
    models_section(me)
    st.divider()
    share_section()


main()
