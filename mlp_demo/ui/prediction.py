"""The model picker under the pad, what the chosen model makes of the drawing, and why."""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st
import torch

from mlp_demo.data import normalize
from mlp_demo.insight import contributions, hidden_activations
from mlp_demo.plots import activations_grid, diverging, pixels, probabilities_over_steps
from mlp_demo.server.session import Prediction, Session, SessionError, blank_input

from .server import LIVE_VIEWS_REFRESH_S, REFRESH_S, show_message, user_action

log = logging.getLogger("mlp_demo.app")


@user_action("prediction")
def choose_model(me: Session) -> None:
    me.choose(st.session_state.model_choice)


def model_picker(me: Session) -> None:
    choices, chosen = list(me.choices()), me.chosen_label()
    if st.session_state.get("model_choice") != chosen:  # the session chose (Live after Train)
        st.session_state.model_choice = chosen
    st.selectbox("Model", choices, key="model_choice", on_change=choose_model,
                 help="The shipped model, the one training right now, or one you or others saved.")


@user_action("prediction", "No test digit: ")
def pick_test_digit(me: Session) -> None:
    picked = st.session_state.get("test_digit")
    st.session_state.test_digit = None  # emptied, so that picking the same digit again is a change
    if picked is not None:
        me.pick_test_digit(picked)


def test_digit_picker(me: Session) -> None:
    """A way to give the network a digit without drawing: one of MNIST's test images (the pad's
    Photo… button is the other: a photo of one's own, read in the browser)."""
    st.selectbox("Or pick a test digit (no drawing needed)", list(range(10)), index=None,
                 key="test_digit", on_change=pick_test_digit, placeholder="a digit from MNIST's test set",
                 help="Shows one of MNIST's 10,000 test images of that digit on the pad, and the "
                      "network reads it like a drawing. Pick the same digit again for another.")


def refresh_seconds(me: Session) -> float | None:
    """How often the pad's fragment reruns by itself: every second while this tab is teaching
    (queued or running: a few seconds in all), every two while the live model trains."""
    job = me.job
    if job is not None and job.active and job.snapshot().kind == "teaching":
        return REFRESH_S
    return LIVE_VIEWS_REFRESH_S if me.is_live() else None


def prediction_panel(me: Session, drawing) -> Prediction | None:
    """The server's own reading of the field the browser sent when the pen lifted (the
    browser's probabilities are never taken): its message if refused; the Prediction, or None.
    The prediction itself, its bars and the 28x28 input are drawn by the pad, in the browser."""
    show_message(me, "prediction")
    try:
        prediction = me.predict_pad(drawing)
    except SessionError as e:
        (st.info if e.kind == "info" else st.error)(str(e))
        return None
    except Exception:  # one odd drawing or model must not cost the visitor the page
        log.exception("prediction failed")
        st.error("This drawing could not be read; clear the pad and draw again.")
        return None
    return prediction


def live_trace(me: Session) -> None:
    """The live model's ten probabilities for this drawing, step by step since it was drawn."""
    trace = me.trace
    if me.is_live() and trace is not None and len(trace.steps) > 1:
        st.caption("How the live model's answer for this drawing changes as it trains:")
        st.plotly_chart(probabilities_over_steps(trace.steps, trace.probs), key="live_trace",
                        config={"displayModeBar": False})


def why_this_prediction(prediction: Prediction) -> None:
    model, digit = prediction.model, prediction.digit
    st.subheader("Why this prediction")
    st.caption(f"The server's own reading of your drawing, by the same model: {digit} "
               f"({prediction.probs[digit]:.1%}). The pad cropped it to the ink, fitted it into "
               "20x20 and centred it by mass in 28x28, as MNIST's digits were made.")
    x = normalize(torch.from_numpy(prediction.field)[None])[0]
    hidden = hidden_activations(model, x)
    active, push = st.columns(2)
    active.image(np.pad(activations_grid(hidden), ((2, 2), (2, 2), (0, 0)), constant_values=160),
                 output_format="PNG",  # framed, like the map beside it: silent units are white
                 alt=f"The first hidden layer's {len(hidden)} values for this drawing, one square each")
    active.caption(f"The first hidden layer's {len(hidden)} values for this drawing, one square per "
                   f"unit ({(hidden > 0).sum()} above zero, in blue): each unit detects a stroke "
                   "pattern, and most stay silent.")
    framed = np.pad(diverging(contributions(model, x, blank_input(), digit)), ((1, 1), (1, 1), (0, 0)),
                    constant_values=160)  # a grey frame: the map is white wherever there is no ink
    push.image(pixels(framed / 255.0, 7), output_format="PNG",
               alt=f"The 28x28 image the network saw, each pixel coloured by how much it pushed the "
                   f"answer toward {digit} (blue) or away from it (red)")
    push.caption(f"Which pixels pushed the answer toward **{digit}** (blue) and which away from it "
                 "(red), compared with a blank pad: only inked pixels can count, so the rest is "
                 f"white (integrated gradients: they add up to the change in the score for {digit}).")
