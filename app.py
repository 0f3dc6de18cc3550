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

from mlp_demo.ui.pad import drawing_pad  # streamlit and the canvas only: no torch yet

st.set_page_config(page_title="Train an MLP on MNIST", page_icon="✏️", layout="wide")

# The first paint: the sidebar's title, the page's title and the pad go out before torch is
# imported (2.4 s on a cold server), so the first visitor can draw at once. The sidebar is
# in it so that the layout is final: drawn later, it would push the pad aside mid-stroke.
st.sidebar.title("Hyperparameters")
st.title("Train a neural network on handwritten digits")
st.caption("A multi-layer perceptron, h = relu(W₁x + b₁), y = W₂h + b₂, learns MNIST's "
           "60,000 digits. Draw below; tune and train on the left.")


def drawing_and_prediction() -> None:
    """The pad, what the network makes of it, and teaching it your handwriting. A fragment: a
    stroke, Clear, a label or a change of model reruns only this, not the whole page with its
    figures (measured in bench.load)."""
    pad_column, prediction_column = st.columns([1, 1], gap="large")
    with pad_column:
        drawing_pad()
    from mlp_demo.ui import prediction, server  # torch: 2.4 s on a cold server, after the pad
    from mlp_demo.ui.models import model_choices

    runs = server.session_runs()
    choices = model_choices(runs, server.model_store().listing())
    prediction.pad_and_prediction(pad_column, prediction_column, runs, choices)


def refresh_seconds() -> float | None:
    if "runs" not in st.session_state:  # the first paint, before torch
        return None
    from mlp_demo.ui import prediction, server
    return prediction.refresh_seconds(server.session_runs())


st.fragment(run_every=refresh_seconds())(drawing_and_prediction)()

import torch  # the heavy imports (already loaded by the pad's fragment on a first visit)

from mlp_demo.ui import server
from mlp_demo.ui.compare import compare_section
from mlp_demo.ui.inside import inside_section
from mlp_demo.ui.models import model_choices, models_section
from mlp_demo.ui.share import keep_link_current, link_notice, restore_from_link, share_section
from mlp_demo.ui.sidebar import config_problems, sidebar
from mlp_demo.ui.training import training_section

DEVICE_CHOICES = ["auto", "cpu"] + [d for d, ok in (("cuda", torch.cuda.is_available()),
                                                     ("mps", torch.backends.mps.is_available()))
                                    if ok]


def main() -> None:
    limits, runs = server.limits(), server.session_runs()
    server.heartbeat()
    st.fragment(run_every=server.heartbeat_seconds())(server.heartbeat)()  # while the tab stays open
    restore_from_link(limits, DEVICE_CHOICES)  # a shared link's settings, before the widgets
    link_notice()
    sidebar(limits, DEVICE_CHOICES)
    keep_link_current()
    config_error = config_problems(limits)

    listing = server.model_store().listing()  # after any save or upload callback has run
    choices = model_choices(runs, listing)
    st.divider()
    training_section(runs, config_error)
    st.divider()
    compare_section(runs)
    st.divider()
    inside_section(choices)
    st.divider()
    models_section(runs, listing)
    st.divider()
    share_section()


main()
