"""The model picker beside the pad, and what the chosen model makes of the drawing."""

from __future__ import annotations

import logging

import streamlit as st

from mlp_demo.checkpoints import CheckpointError
from mlp_demo.drawing import DrawingRefused, predict_image, read_drawing
from mlp_demo.plots import pixels, probability_figure

from . import server
from .server import SessionRuns
from .training import LIVE, REFRESH_S

log = logging.getLogger("mlp_demo.app")
BLANK = "Draw a digit on the black pad: the prediction appears as you lift the mouse."


def model_picker(choices: dict) -> None:
    st.selectbox("Model", list(choices), key="model_choice",
                 help="The shipped model, the one training right now, or one you or others saved.")


def prediction_area(runs: SessionRuns, choices: dict) -> None:
    live = choices.get(st.session_state.get("model_choice")) == LIVE
    refresh = REFRESH_S if live and runs.job and runs.job.running else None
    st.fragment(run_every=refresh)(prediction_panel)(runs, choices)


def prediction_panel(runs: SessionRuns, choices: dict) -> None:
    st.subheader("What the network sees")
    try:
        show_prediction(runs, choices)
    except Exception:  # one odd drawing or model must not cost the visitor the page
        log.exception("prediction failed")
        st.error("This drawing could not be read; clear the pad and draw again.")


def show_prediction(runs: SessionRuns, choices: dict) -> None:
    source = choices.get(st.session_state.get("model_choice"))
    try:
        image = read_drawing(st.session_state.get("drawing_url"))
    except DrawingRefused as e:
        st.info(f"This drawing was not read: {e}. Clear the pad and draw again.")
        return
    if image is None:
        st.info(BLANK)
        return
    if source == LIVE:  # offered only once this session has a job
        probs, field = runs.job.predict(image)
        if probs is None and runs.job.preview is None:
            st.info("The live model appears after its first training step.")
            return
    else:
        try:
            stat = source.path.stat()
            model = server.load_model(str(source.path), stat.st_mtime_ns, stat.st_size)
        except (CheckpointError, AttributeError, OSError) as e:
            st.error(f"This model cannot be loaded: {e}")
            return
        probs, field = predict_image(model, image)
    if probs is None:
        st.info("The pad looks blank: draw a digit (a bigger one, if you already did).")
        return
    digit = int(probs.argmax())
    st.markdown(f"## Prediction: {digit}")
    st.caption(f"confidence {probs[digit]:.1%}")
    chart, seen = st.columns([3, 1])
    chart.plotly_chart(probability_figure(probs), key="probabilities",
                       config={"displayModeBar": False})
    seen.image(pixels(field, 5), caption="28x28 input", clamp=True, output_format="PNG")  # crisp pixels
