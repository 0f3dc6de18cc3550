"""Pure functions from plain numbers to Plotly figures: training curves, probability bars."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LOSS_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]
BLUE, ORANGE, GREEN, GREY, RED = "#4c78a8", "#f58518", "#54a24b", "#9aa5b1", "#e45756"


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, debiased at the start (as TensorBoard draws it)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def training_figure(history: dict) -> go.Figure:
    """Loss, accuracy and learning rate against epochs (steps shown as fractions of an epoch)."""
    steps_per_epoch = max(history["progress"]["total_steps"] / history["config"]["epochs"], 1)
    epochs = history["epochs"]
    at = [e["epoch"] for e in epochs]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("Loss", "Accuracy", "Learning rate"))

    def line(col, x, y, name, color, **style):
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers" if x is at else "lines",
                                 line=dict(color=color, **style), legendgroup=name), 1, col)

    step_x = [s / steps_per_epoch for s in history["loss_steps"]]
    line(1, step_x, history["loss"], "batch loss", GREY, width=1)
    line(1, step_x, smooth(history["loss"]), "batch loss (smoothed)", BLUE, width=2)
    line(1, at, [e["train_loss"] for e in epochs], "train loss (epoch)", ORANGE)
    line(1, at, [e["val_loss"] for e in epochs], "validation loss", GREEN)
    line(2, at, [e["train_acc"] for e in epochs], "train accuracy", ORANGE)
    line(2, at, [e["val_acc"] for e in epochs], "validation accuracy", GREEN)
    line(2, at, [e["test_acc"] for e in epochs], "test accuracy", RED)
    line(3, [s / steps_per_epoch for s in history["lr_steps"]], history["lr"], "learning rate", BLUE)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(type="log", row=1, col=1, tickvals=LOSS_TICKS)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_yaxes(tickformat=".2~g", rangemode="tozero", row=1, col=3)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=30, b=10), uirevision="training",
                      legend=dict(orientation="h", y=-0.25), template="plotly_white")
    return fig


def probability_figure(probs) -> go.Figure:
    """Ten bars, the predicted digit highlighted, its probability written above it."""
    best = max(range(10), key=lambda d: probs[d])
    fig = go.Figure(go.Bar(
        x=[str(d) for d in range(10)], y=list(probs),
        marker_color=[RED if d == best else BLUE for d in range(10)],
        text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs], textposition="outside",
        hovertemplate="digit %{x}: %{y:.2%}<extra></extra>"))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), template="plotly_white",
                      yaxis=dict(range=[0, 1.12], tickformat=".0%", title="probability"),
                      xaxis=dict(title="digit", type="category"))
    return fig


def pixels(image, scale: int):
    """A [0, 1] greyscale image enlarged by an integer factor into crisp uint8 squares."""
    return (np.kron(image, np.ones((scale, scale))) * 255).clip(0, 255).astype(np.uint8)
