"""The model picker beside the pad, and what the chosen model makes of the drawing."""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st
import torch
from PIL import Image

from mlp_demo.checkpoints import CheckpointError
from mlp_demo.data import normalize
from mlp_demo.drawing import DrawingRefused, preprocess_steps, read_drawing
from mlp_demo.insight import contributions, hidden_activations
from mlp_demo.jobs import TeachingJob
from mlp_demo.model import predict_proba
from mlp_demo.plots import activations_grid, diverging, pixels, probabilities_over_steps, probability_figure
from mlp_demo.runs import Run

from . import server
from .server import SessionRuns
from .teaching import label_buttons, teach_section
from .training import LIVE, LIVE_VIEWS_REFRESH_S, REFRESH_S

log = logging.getLogger("mlp_demo.app")
BLANK = "Draw a digit on the black pad: the prediction appears as you lift the mouse."


def model_picker(choices: dict) -> None:
    st.selectbox("Model", list(choices), key="model_choice",
                 help="The shipped model, the one training right now, or one you or others saved.")


def pad_and_prediction(pad_column, prediction_column, runs: SessionRuns, choices: dict) -> None:
    """The model picker under the pad; beside it the prediction, then teaching (inside app.py's
    fragment, so that a stroke, a label or a model change reruns only this part of the page).
    Teaching shares the column: below the pad it would push the page's Train button out of
    sight of a visitor who has not drawn yet."""
    with pad_column:
        model_picker(choices)
    with prediction_column:
        prediction_panel(runs, choices)
        teach_section(runs, choices)


def refresh_seconds(runs: SessionRuns) -> float | None:
    """How often the pad's fragment reruns by itself: every second while this tab is teaching
    (queued or running: a few seconds in all), every two while the live model trains."""
    job = runs.job
    if isinstance(job, TeachingJob) and job.active:
        return REFRESH_S
    live = st.session_state.get("model_choice") == LIVE
    return LIVE_VIEWS_REFRESH_S if live and job and job.running else None


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
    if isinstance(source, Run) and source.job.preview is None:
        st.info("The live model appears after its first training step.")
        return
    try:
        model = model_for(source)
    except (CheckpointError, AttributeError, OSError) as e:
        st.error(f"This model cannot be loaded: {e}")
        return
    steps = preprocess_steps(image)  # once: the prediction and Why this prediction share it
    if steps is None:
        st.info("The pad looks blank: draw a digit (a bigger one, if you already did).")
        return
    field = steps["centred"]
    probs = predict_proba(model, normalize(torch.from_numpy(field)[None]))[0].numpy()
    digit = int(probs.argmax())
    st.markdown(f"## Prediction: {digit}")
    st.caption(f"confidence {probs[digit]:.1%}")
    chart, seen = st.columns([3, 1])
    chart.plotly_chart(probability_figure(probs), key="probabilities",
                       config={"displayModeBar": False})
    seen.image(pixels(field, 5), caption="28x28 input", clamp=True, output_format="PNG")  # crisp pixels
    label_buttons(field)
    if isinstance(source, Run) and source.job.running:
        live_trace(source, image, probs)
    why_this_prediction(model, steps, digit)


def square(picture, size: int = 112):
    """A step's picture on a black square of `size` pixels, its aspect ratio kept: small ones
    enlarged into crisp blocks, large ones shrunk smoothly."""
    side = max(picture.shape)
    padded = np.zeros((side, side), np.float32)
    top, left = (side - picture.shape[0]) // 2, (side - picture.shape[1]) // 2
    padded[top:top + picture.shape[0], left:left + picture.shape[1]] = picture
    if side <= size:
        return pixels(padded, size // side)
    return np.asarray(Image.fromarray(pixels(padded, 1)).resize((size, size), Image.Resampling.LANCZOS))


def model_for(source):
    """The model behind a choice: a listed checkpoint (cached per file version), or a run's
    weights: copied while it trains (its thread writes them), as they are once it has ended."""
    if isinstance(source, Run):
        return source.job.model() if source.job.running else source.job.preview
    stat = source.path.stat()
    return server.load_model(str(source.path), stat.st_mtime_ns, stat.st_size)


def live_trace(run: Run, image, probs) -> None:
    """The live model's ten probabilities for this drawing, step by step from when it was drawn."""
    key = (run.number, hash(image.tobytes()))
    trace = st.session_state.get("live_trace")
    if not trace or trace["key"] != key:
        trace = st.session_state.live_trace = {"key": key, "steps": [], "probs": []}
    step = run.job.snapshot()["progress"]["step"]
    if not trace["steps"] or step > trace["steps"][-1]:
        trace["steps"].append(step)
        trace["probs"].append(probs.tolist())
    if len(trace["steps"]) > 1:
        st.caption("How the live model's answer for this drawing changes as it trains:")
        st.plotly_chart(probabilities_over_steps(trace["steps"], trace["probs"]), key="live_trace",
                        config={"displayModeBar": False})


def why_this_prediction(model, steps: dict, digit: int) -> None:
    st.subheader("Why this prediction")
    st.caption("① Your drawing → ② cropped to the ink → ③ fitted into 20x20 → ④ centred by mass "
               "in 28x28, as MNIST's digits were made. The network sees only ④.")
    cols = st.columns(4)
    for col, (name, picture) in zip(cols, steps.items()):
        col.image(square(picture), caption=f"{name} {picture.shape[1]}x{picture.shape[0]}",
                  output_format="PNG")
    x = normalize(torch.from_numpy(steps["centred"])[None])[0]
    blank = normalize(torch.zeros(1, 28, 28))[0]
    hidden = hidden_activations(model, x)
    active, push = st.columns(2)
    active.image(np.pad(activations_grid(hidden), ((2, 2), (2, 2), (0, 0)), constant_values=160),
                 output_format="PNG")  # framed, like the map beside it: silent units are white
    active.caption(f"The first hidden layer's {len(hidden)} values for this drawing, one square per "
                   f"unit ({(hidden > 0).sum()} above zero, in blue): each unit detects a stroke "
                   "pattern, and most stay silent.")
    framed = np.pad(diverging(contributions(model, x, blank, digit)), ((1, 1), (1, 1), (0, 0)),
                    constant_values=160)  # a grey frame: the map is white wherever there is no ink
    push.image(pixels(framed / 255.0, 7), output_format="PNG")
    push.caption(f"Which pixels pushed the answer toward **{digit}** (blue) and which away from it "
                 "(red), compared with a blank pad: only inked pixels can count, so the rest is "
                 f"white (integrated gradients: they add up to the change in the score for {digit}).")
