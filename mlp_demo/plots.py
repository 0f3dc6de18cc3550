"""Pure functions from plain numbers to Plotly figures: training curves, probability bars."""

from __future__ import annotations

import copy
import functools
import html

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


# One colour, one meaning, across the three panels: no two curves share one.
CURVE_COLORS = {"batch loss": GREY, "batch loss (smoothed)": BLUE, "train loss (epoch)": ORANGE,
                "validation loss": GREEN, "train accuracy": "#b279a2", "validation accuracy": "#2a7f7a",
                "test accuracy": RED, "learning rate": "#9d755d"}
WHY_TRAIN_BELOW_VALIDATION = (
    "Why can validation beat training? The training numbers are averaged over the epoch while the "
    "weights still change, on images made harder by dropout and augmentation, and label smoothing "
    "adds to the training loss; validation is measured once, at the epoch's end, in eval mode. "
    "Overfitting shows the other way: validation worse while training keeps improving.")


def training_figure(history: dict) -> go.Figure:
    """Loss, accuracy and learning rate against the run's x-axis: epochs for training (steps
    shown as fractions of an epoch), steps for teaching; each panel with its own legend. Before
    the first epoch ends the axes are fixed (0 to the run's length, accuracy 0-100%), not
    guessed from no data. Redrawn every second while a run trains: its traces go in unvalidated
    (see unvalidated_figure) onto a three-panel layout built once."""
    by_epoch = history.x_axis == "epoch"
    total = history.progress.total_steps
    steps_per_epoch = max(total / history.settings["epochs"], 1) if by_epoch else 1
    epochs = history.epochs
    at = [e["epoch"] if by_epoch else e["step"] for e in epochs]
    traces = []

    def line(col, x, y, name, **style):
        axis = "" if col == 1 else str(col)
        traces.append(dict(type="scatter", x=list(x), y=list(y), name=name,
                           mode="lines+markers" if x is at else "lines",
                           line=dict(color=CURVE_COLORS[name], **style), legendgroup=name,
                           legend="legend" + axis, xaxis=f"x{axis}", yaxis=f"y{axis}"))

    step_x = [s / steps_per_epoch for s in history.loss_steps]
    line(1, step_x, history.loss, "batch loss", width=1)
    line(1, step_x, smooth(history.loss), "batch loss (smoothed)", width=2)
    line(1, at, [e["train_loss"] for e in epochs], "train loss (epoch)")
    line(1, at, [e["val_loss"] for e in epochs], "validation loss")
    line(2, at, [e["train_acc"] for e in epochs], "train accuracy")
    line(2, at, [e["val_acc"] for e in epochs], "validation accuracy")
    line(2, at, [e["test_acc"] for e in epochs], "test accuracy")
    line(3, [s / steps_per_epoch for s in history.lr_steps], history.lr, "learning rate")
    layout = copy.deepcopy(_training_layout(history.x_axis))
    length = history.settings["epochs"] if by_epoch else total
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        layout[axis]["range"] = [0, max(length, 1)]
    if not epochs:
        layout["yaxis2"]["range"] = [0, 1]
    return go.Figure(data=traces, layout=layout, _validate=False)


@functools.cache
def _training_layout(x_axis: str) -> dict:
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("Loss", "Accuracy", "Learning rate"))
    fig.update_xaxes(title_text=x_axis)
    fig.update_yaxes(type="log", row=1, col=1, tickvals=LOSS_TICKS)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_yaxes(tickformat=".2~g", rangemode="tozero", row=1, col=3)
    below = dict(orientation="h", y=-0.3, yanchor="top", xanchor="left")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), uirevision="training",
                      template="plotly_white", legend=dict(below, x=0),
                      legend2=dict(below, x=0.36), legend3=dict(below, x=0.72))
    return fig.to_dict()["layout"]


def probability_figure(probs) -> go.Figure:
    """Ten bars, the predicted digit highlighted, its probability written above it."""
    best = max(range(10), key=lambda d: probs[d])
    return unvalidated_figure(
        [dict(type="bar", x=[str(d) for d in range(10)], y=[float(p) for p in probs],
              marker=dict(color=[RED if d == best else BLUE for d in range(10)]),
              text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs], textposition="outside",
              hovertemplate="digit %{x}: %{y:.2%}<extra></extra>")],
        dict(height=260, margin=dict(l=10, r=10, t=10, b=10),
             yaxis=dict(range=[0, 1.12], tickformat=".0%", title=dict(text="probability")),
             xaxis=dict(title=dict(text="digit"), type="category")))


def unvalidated_figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure built without Plotly's validation: 1 ms instead of 12 for the probability bars,
    which the pad redraws on every stroke of every visitor. Only for figures whose every key is
    written here (a typo would go unnoticed: test_plots checks these against validation)."""
    return go.Figure(data=data, layout={"template": _white_template(), **layout}, _validate=False)


@functools.cache
def _white_template() -> dict:
    import plotly.io as pio
    return pio.templates["plotly_white"].to_plotly_json()


def pixels(image, scale: int):
    """A [0, 1] greyscale (H, W) or colour (H, W, 3) image enlarged by an integer factor into
    crisp uint8 squares."""
    block = np.ones((scale, scale) if np.ndim(image) == 2 else (scale, scale, 1))
    return (np.kron(image, block) * 255).clip(0, 255).astype(np.uint8)


PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"]
X_AXES = {"epoch": "epoch", "samples": "images seen", "seconds": "seconds of training"}


def comparison_figure(runs: list[tuple[str, dict]], x: str = "epoch") -> go.Figure:
    """Several runs' curves overlaid: smoothed batch loss and validation (else test) accuracy,
    against epochs, images seen or seconds. runs: (name, history snapshot) pairs."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Loss (smoothed batch loss)", "Accuracy (validation, else test)"))
    for i, (name, h) in enumerate(runs):
        if x == "epoch" and h.x_axis != "epoch":
            continue  # a teaching run has steps, not epochs (the page says so)
        color = PALETTE[i % len(PALETTE)]
        total = max(h.progress.total_steps, 1)
        per_epoch = total / max(h.settings.get("epochs", 1), 1)
        batch = h.settings["batch_size"]
        step_x = {"epoch": lambda s: s / per_epoch, "samples": lambda s: s * batch,
                  "seconds": lambda s: s * h.progress.elapsed / max(h.progress.step, 1)}[x]
        fig.add_trace(go.Scatter(x=[step_x(s) for s in h.loss_steps], y=smooth(h.loss),
                                 name=name, legendgroup=name, line=dict(color=color)), 1, 1)
        epochs = h.epochs
        ex = {"epoch": [e["epoch"] for e in epochs],
              "samples": [e.get("samples_seen", e["step"] * batch) for e in epochs],
              "seconds": [e["elapsed"] for e in epochs]}[x]
        acc = [e["val_acc"] if e["val_acc"] is not None else e["test_acc"] for e in epochs]
        fig.add_trace(go.Scatter(x=ex, y=acc, name=name, legendgroup=name, showlegend=False,
                                 mode="lines+markers", line=dict(color=color)), 1, 2)
    fig.update_xaxes(title_text=X_AXES[x], rangemode="tozero")
    fig.update_yaxes(type="log", row=1, col=1, tickvals=LOSS_TICKS)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=30, b=10), uirevision="compare",
                      legend=dict(orientation="h", y=-0.25), template="plotly_white")
    return fig


def confusion_figure(counts: np.ndarray, class_accuracy: np.ndarray) -> go.Figure:
    """Counts of (true, predicted) as a heatmap; each row labelled with its accuracy."""
    shown = np.where(np.eye(len(counts), dtype=bool), np.nan, counts)  # colour the mistakes
    rows = [f"{d} ({a:.1%})" for d, a in enumerate(class_accuracy)]
    fig = go.Figure(go.Heatmap(
        z=shown, x=[str(d) for d in range(10)], y=rows, colorscale="Reds", showscale=False,
        text=counts, texttemplate="%{text}", hovertemplate="true %{y}, read as %{x}: %{text}<extra></extra>"))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10), template="plotly_white",
                      xaxis=dict(title="predicted digit", side="top", type="category"),
                      yaxis=dict(title="true digit (accuracy)", autorange="reversed", type="category"))
    return fig


def weights_grid(images: np.ndarray, columns: int = 8, scale: int = 3) -> np.ndarray:
    """28x28 weight images tiled into one RGB picture, a diverging colour map centred on zero:
    blue where a pixel's ink raises the unit, red where it lowers it, white for no effect.
    Each image is scaled by its own largest magnitude."""
    n = len(images)
    rows = max(1, -(-n // columns))
    gap = 2
    out = np.full((rows * (28 + gap) - gap, columns * (28 + gap) - gap, 3), 255, np.uint8)
    for i, w in enumerate(images):
        out_r, out_c = divmod(i, columns)
        out[out_r * 30:out_r * 30 + 28, out_c * 30:out_c * 30 + 28] = diverging(w)
    return np.kron(out, np.ones((scale, scale, 1), np.uint8))


def diverging(values: np.ndarray) -> np.ndarray:
    """Values -> RGB uint8: red (negative) through white (zero) to blue (positive)."""
    v = values / max(float(np.abs(values).max()), 1e-12)
    neg, pos = np.array([202, 0, 32]), np.array([5, 113, 176])
    white = np.array([255, 255, 255])
    t = np.abs(v)[..., None]
    rgb = np.where(v[..., None] < 0, white + (neg - white) * t, white + (pos - white) * t)
    return rgb.round().astype(np.uint8)


def contact_sheet(images: list[np.ndarray], captions: list[str], colours: list[str] | None = None,
                  columns: int = 10, scale: int = 2) -> np.ndarray:
    """28x28 [0, 1] images in one RGB picture, rows of `columns`, each enlarged by `scale`
    with its (ASCII) caption under it, in its colour. One picture, not one element per image:
    the pad's fragment redraws it on every stroke, with up to 500 examples."""
    from PIL import Image, ImageDraw

    side, text_h, gap = 28 * scale, 14, 6
    cell_w, cell_h = side + gap, side + text_h + gap
    rows = max(1, -(-len(images) // columns))
    sheet = Image.new("RGB", (columns * cell_w - gap, rows * cell_h - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        r, c = divmod(i, columns)
        x, y = c * cell_w, r * cell_h
        sheet.paste(Image.fromarray(pixels(image, scale)), (x, y))
        draw.text((x + side / 2, y + side + 1), caption, anchor="ma",
                  fill=colours[i] if colours else "#444444")
    return np.asarray(sheet)


def activations_grid(h: np.ndarray, width: int = 224) -> np.ndarray:
    """A layer's values for one drawing as an RGB picture, one square per unit in a near-square
    grid (unit 0 top left, row by row), in the diverging colours; spare squares are grey.
    An image, not a chart: a bar chart of 1,024 bars cost the pad ~20 ms a stroke."""
    n = len(h)
    columns = max(1, int(np.ceil(np.sqrt(n))))
    rows = -(-n // columns)
    grid = np.full((rows * columns, 3), 200, np.uint8)
    grid[:n] = diverging(np.asarray(h, dtype=np.float32))
    scale = max(1, width // columns)
    return np.kron(grid.reshape(rows, columns, 3), np.ones((scale, scale, 1), np.uint8))


def probabilities_over_steps(steps: list[int], probs: list) -> go.Figure:
    """How the live model's ten probabilities for one drawing changed as it trained."""
    p = np.asarray(probs, dtype=float)
    return unvalidated_figure(
        [dict(type="scatter", x=list(steps), y=p[:, d].tolist(), name=str(d), mode="lines",
              line=dict(color=PALETTE[d % len(PALETTE)], dash="dot" if d >= 8 else "solid"))
         for d in range(10)],
        dict(height=220, margin=dict(l=10, r=10, t=10, b=10),
             xaxis=dict(title=dict(text="training step")),
             yaxis=dict(title=dict(text="probability"), range=[0, 1]),
             legend=dict(orientation="h", y=-0.35)))


BOARD_FONT = {"size": 20}  # read from the back of a lecture hall


def board_scatter(points: list[dict], x_name: str, colour_name: str, log_x: bool) -> go.Figure:
    """One point per run: a setting against test accuracy, coloured by a second setting.
    points: {"x", "y", "colour", "label"}; labels are students' names, escaped, so that
    Plotly's bits of HTML in hover text never render what a student typed. Redrawn every 3 s
    on the projector: built unvalidated (test_plots checks it against validation)."""
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(str(p["colour"]), []).append(p)
    numeric = all(isinstance(p["x"], (int, float)) and not isinstance(p["x"], bool) for p in points)
    log = log_x and numeric and all(p["x"] > 0 for p in points)
    traces = [{"type": "scatter", "mode": "markers", "x": [p["x"] for p in members],
               "y": [p["y"] for p in members], "name": html.escape(f"{colour_name} = {colour}"),
               "hovertext": [html.escape(p["label"]) for p in members], "hoverinfo": "text+x+y",
               "marker": {"size": 18, "color": PALETTE[i % len(PALETTE)],
                          "line": {"width": 1, "color": "white"}}}
              for i, (colour, members) in enumerate(sorted(groups.items()))]
    x_axis = {"title": {"text": x_name}, "categoryorder": "category ascending"}
    if log:
        x_axis.update(type="log", dtick=1)
    return unvalidated_figure(traces, {
        "xaxis": x_axis, "yaxis": _accuracy_axis("test accuracy", [p["y"] for p in points]),
        "height": 520, "margin": {"l": 10, "r": 10, "t": 20, "b": 10}, "font": BOARD_FONT,
        "legend": {"orientation": "h", "y": -0.2}, "uirevision": "board"})


def board_accuracies(points: list[dict]) -> go.Figure:
    """One point per run: MNIST's test accuracy against the class's handwriting, with the line
    where the two are equal. points: {"x", "y", "label", "n"}; labels escaped as above."""
    values = [p["x"] for p in points] + [p["y"] for p in points]
    low, high = max(0.0, min(values) - 0.02), min(1.0, max(values)) + 0.005
    traces = [{"type": "scatter", "mode": "lines", "x": [low, high], "y": [low, high],
               "name": "equal", "hoverinfo": "skip", "line": {"color": "#bbbbbb", "dash": "dot"}},
              {"type": "scatter", "mode": "markers", "x": [p["x"] for p in points],
               "y": [p["y"] for p in points], "name": "runs",
               "hovertext": [html.escape(f"{p['label']}, on {p['n']} drawings") for p in points],
               "hoverinfo": "text+x+y",
               "marker": {"size": 18, "color": PALETTE[0], "line": {"width": 1, "color": "white"}}}]
    axis = {"tickformat": ".1%", "range": [low, high]}
    return unvalidated_figure(traces, {
        "xaxis": {**axis, "title": {"text": "MNIST test accuracy"}},
        "yaxis": {**axis, "title": {"text": "class handwriting accuracy"}},
        "height": 480, "margin": {"l": 10, "r": 10, "t": 20, "b": 10}, "font": BOARD_FONT,
        "showlegend": False, "uirevision": "board-handwriting"})


def board_curves(curves: list[tuple[str, list[list[float]]]]) -> go.Figure:
    """Everyone's validation accuracy per epoch, overlaid: one trace, the runs apart by gaps
    (a class's 300 runs as 300 traces cost 400 ms a refresh; as one, a few ms)."""
    x, y, text = [], [], []
    for label, points in curves:
        x += [p[0] for p in points] + [None]
        y += [p[1] for p in points] + [None]
        text += [html.escape(label)] * len(points) + [""]
    trace = {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "hovertext": text,
             "hoverinfo": "text+x+y", "connectgaps": False, "showlegend": False,
             "line": {"color": PALETTE[0], "width": 2}, "opacity": 0.6}
    return unvalidated_figure([trace], {
        "xaxis": {"title": {"text": "epoch"}, "rangemode": "tozero"},
        "yaxis": _accuracy_axis("validation accuracy", [v for v in y if v is not None]),
        "height": 420, "margin": {"l": 10, "r": 10, "t": 20, "b": 10}, "font": BOARD_FONT,
        "uirevision": "board-curves"})


def _accuracy_axis(title: str, values: list[float]) -> dict:
    values = values or [0.0, 1.0]
    return {"title": {"text": title}, "tickformat": ".1%",
            "range": [max(0.0, min(values) - 0.02), min(1.0, max(values)) + 0.005]}
