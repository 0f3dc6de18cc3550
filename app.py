"""mlp_demo in the browser: `streamlit run app.py`.

The only file that imports streamlit. It lays out the page, reads the sidebar into a
TrainConfig, starts and stops jobs and draws; everything it shows is computed in mlp_demo.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning. The training thread shares the cores with the
# UI thread (and, on a laptop, the browser); spinning threads slowed training 3-4x (README).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st
from streamlit_drawable_canvas import st_canvas  # importable only inside a Streamlit runtime

from mlp_demo.config import MAX_HIDDEN_LAYERS, PRESETS, TrainConfig, field_meta  # stdlib only

st.set_page_config(page_title="Train an MLP on MNIST", page_icon="✏️", layout="wide")

WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
SHIPPED, LIVE = "Shipped model", "Live: the model you train here"
REFRESH_S = 1.0
PRESET_LABELS = {"default": "Default", "fast": "Fast: 98% in seconds",
                 "best": "Best accuracy: 99% in minutes"}
LEARNING_RATES = sorted({float(f"{m}e{e}") for e in range(-5, 1) for m in (1, 2, 3, 5)} | {10.0})


# ---------------------------------------------------------------- first paint

def clear_pad() -> None:
    st.session_state.canvas_version = st.session_state.get("canvas_version", 0) + 1


def drawing_pad() -> None:
    """The pad; what is drawn lands in st.session_state.drawing (an RGBA array, or None)."""
    st.subheader("Draw a digit")
    brush = st.slider("Brush width", 6, 40, 20, key="brush")
    version = st.session_state.get("canvas_version", 0)
    result = st_canvas(stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
                       height=280, width=280, drawing_mode="freedraw", return_image_data=True,
                       key=f"canvas_{version}")
    st.session_state.drawing = result.image_data
    st.button("Clear", icon=":material/ink_eraser:", on_click=clear_pad)


# The title and the pad go out before torch is imported: torch takes 2.4 s to import on a cold
# server, and the first visitor should be drawing by then.
st.title("Train a neural network on handwritten digits")
st.caption("A multi-layer perceptron, h = relu(W₁x + b₁), y = W₂h + b₂, learns MNIST's "
           "60,000 digits. Draw below; tune and train on the left.")
PAD, PREDICTION = st.columns([1, 1], gap="large")
with PAD:
    drawing_pad()

import torch  # noqa: E402  (the heavy imports, after the first paint)

from mlp_demo import checkpoints  # noqa: E402
from mlp_demo.data import DataMissing, load_mnist, mnist_root, split_mnist  # noqa: E402
from mlp_demo.drawing import predict_image  # noqa: E402
from mlp_demo.jobs import MAX_CONCURRENT_JOBS, SLOTS, Busy, TrainingJob  # noqa: E402
from mlp_demo.plots import pixels, probability_figure, training_figure  # noqa: E402

DEVICE_CHOICES = ["auto", "cpu"] + [d for d, ok in (("cuda", torch.cuda.is_available()),
                                                     ("mps", torch.backends.mps.is_available()))
                                    if ok]


# ---------------------------------------------------------------- cached resources

@st.cache_resource(show_spinner="Loading MNIST (downloading it on first use)...")
def mnist(root: str):
    """The raw MNIST tensors, shared read-only by every session."""
    return load_mnist(root)


@st.cache_resource(show_spinner=False, max_entries=16)
def load_checkpoint(path: str, mtime: float):
    """A checkpoint's model, reloaded when its file changes."""
    return checkpoints.load(path)


class SessionRuns:
    """This browser session's training job; released (and stopped) when the tab closes."""

    def __init__(self):
        self.job: TrainingJob | None = None

    def stop(self):
        if self.job:
            self.job.stop()


@st.cache_resource(scope="session", on_release=SessionRuns.stop, show_spinner=False)
def session_runs() -> SessionRuns:
    return SessionRuns()


# ---------------------------------------------------------------- sidebar -> TrainConfig

def hp(name: str) -> str:
    return f"hp_{name}"


def apply_config(config: TrainConfig) -> None:
    """Put a config's values into the sidebar widgets (a preset, or Reset)."""
    for name, value in config.to_dict().items():
        if name == "hidden":
            st.session_state[hp("layers")] = len(value)
            for i, width in enumerate(value):
                st.session_state[hp(f"width_{i}")] = width
        else:
            st.session_state[hp(name)] = value


def on_preset() -> None:
    apply_config(PRESETS[st.session_state.preset])


def widget(kind, name: str, label: str, **kwargs):
    return kind(label, key=hp(name), help=field_meta(name)["help"], **kwargs)


def sidebar() -> None:
    """Every hyperparameter, grouped; the values live in session state under hp(name)."""
    bar = st.sidebar
    bar.title("Hyperparameters")
    bar.selectbox("Preset", list(PRESETS), key="preset", on_change=on_preset,
                  format_func=PRESET_LABELS.get, help="Starting points; change anything after.")
    bar.button("Reset to defaults", on_click=lambda: (
        st.session_state.update(preset="default"), apply_config(PRESETS["default"])))

    with bar.expander("Model", expanded=True):
        layers = st.slider("Hidden layers", 0, MAX_HIDDEN_LAYERS, key=hp("layers"),
                           help="How many hidden layers; 0 gives a linear classifier.")
        for i in range(layers):
            st.session_state.setdefault(hp(f"width_{i}"), 128)
            st.select_slider(f"Neurons in layer {i + 1}", WIDTHS, key=hp(f"width_{i}"))
        widget(st.selectbox, "activation", "Activation", options=field_meta("activation")["choices"])
        widget(st.slider, "dropout", "Dropout", min_value=0.0, max_value=0.9, step=0.05)
    with bar.expander("Data", expanded=True):
        widget(st.toggle, "augment", "Augmentation")
        widget(st.number_input, "val_size", "Validation images", min_value=0, max_value=30000, step=1000)
    with bar.expander("Optimization", expanded=True):
        widget(st.selectbox, "optimizer", "Optimizer", options=field_meta("optimizer")["choices"])
        widget(st.select_slider, "lr", "Learning rate (log scale)", options=LEARNING_RATES,
               format_func=lambda v: f"{v:g}")
        widget(st.slider, "momentum", "Momentum", min_value=0.0, max_value=0.99, step=0.01)
        widget(st.toggle, "nesterov", "Nesterov (SGD)")
        widget(st.select_slider, "weight_decay", "Weight decay",
               options=[0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 5e-2, 0.1], format_func=lambda v: f"{v:g}")
        widget(st.select_slider, "batch_size", "Batch size",
               options=[1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
        widget(st.slider, "epochs", "Epochs", min_value=1, max_value=100)
        widget(st.selectbox, "scheduler", "LR scheduler", options=field_meta("scheduler")["choices"])
        widget(st.slider, "label_smoothing", "Label smoothing", min_value=0.0, max_value=0.5, step=0.05)
        widget(st.number_input, "seed", "Seed", min_value=0, step=1)
    with bar.expander("Device", expanded=True):
        widget(st.radio, "device", "Train on", options=DEVICE_CHOICES, horizontal=True)


def config_from_state() -> TrainConfig:
    """The sidebar's values as a TrainConfig (not yet validated)."""
    values = {name: st.session_state[hp(name)] for name in TrainConfig().to_dict()
              if name != "hidden"}
    layers = st.session_state[hp("layers")]
    values["hidden"] = tuple(st.session_state[hp(f"width_{i}")] for i in range(layers))
    return TrainConfig(**values)


# ---------------------------------------------------------------- drawing pad

def model_choices(runs: SessionRuns, infos: list) -> dict:
    """Label -> checkpoint path (or LIVE) for every model the pad can use."""
    choices = {}
    for info in infos:
        acc = info.metrics.get("test_acc")
        label = SHIPPED if info.path == checkpoints.DEFAULT_CHECKPOINT else f"Saved: {info.name}"
        choices[label + (f" ({acc:.2%} test)" if acc else "")] = info.path
    if runs.job:
        choices[LIVE] = LIVE
    return choices


def model_picker_and_prediction(runs: SessionRuns, infos: list) -> None:
    with PAD:
        choices = model_choices(runs, infos)
        st.selectbox("Model", list(choices), key="model_choice",
                     help="The shipped model, the one training right now, or one you saved.")
    with PREDICTION:
        live = choices.get(st.session_state.model_choice) == LIVE
        refresh = REFRESH_S if live and runs.job and runs.job.running else None
        st.fragment(run_every=refresh)(prediction_panel)(runs, choices)


def prediction_panel(runs: SessionRuns, choices: dict) -> None:
    st.subheader("What the network sees")
    image = st.session_state.get("drawing")
    source = choices.get(st.session_state.get("model_choice"))
    if image is None:
        st.info("Draw a digit on the black pad: the prediction appears as you lift the mouse.")
        return
    if source == LIVE:  # offered only once this session has a job
        if runs.job.preview is None:
            st.info("The live model appears after its first training step.")
            return
        probs, field = runs.job.predict(image)
    else:
        try:
            model, _ = load_checkpoint(str(source), source.stat().st_mtime)
        except (checkpoints.CheckpointError, AttributeError, OSError) as e:
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


# ---------------------------------------------------------------- training

def start_training(runs: SessionRuns) -> None:
    """Train's on_click: runs before the widgets are drawn, so it may set model_choice."""
    config = config_from_state()
    if runs.job and runs.job.running:
        st.session_state.train_error = "A run is already training in this tab: stop it first."
        return
    try:
        raw = mnist(mnist_root())
        job = TrainingJob(config, lambda: split_mnist(*raw, config.val_size, config.seed))
        runs.job = job.start()
        st.session_state.model_choice = LIVE
        st.session_state.train_error = None
    except DataMissing as e:
        st.session_state.train_error = f"{e} Drawing still works, with the shipped model."
    except (Busy, ValueError) as e:
        st.session_state.train_error = str(e)


def stop_training(job: TrainingJob) -> None:
    job.stop()
    job.join(timeout=5)  # a stop takes effect before the next batch: milliseconds


def training_section(runs: SessionRuns, config_error: str | None) -> None:
    st.subheader("Train")
    job = runs.job
    running = bool(job and job.running)
    go, stop, _ = st.columns([1, 1, 4])
    go.button("Train", type="primary", disabled=running or bool(config_error),
              icon=":material/play_arrow:", on_click=start_training, args=(runs,))
    stop.button("Stop", disabled=not running, icon=":material/stop:", on_click=stop_training,
                args=(job,))
    if config_error:
        st.error(f"Invalid settings: {config_error}")
    if st.session_state.get("train_error"):
        st.error(st.session_state.train_error)
    if job:
        st.fragment(run_every=REFRESH_S if running else None)(training_progress)(job, running)
    else:
        st.caption("Press Train to watch the loss fall and the accuracy climb, live.")
    st.caption(f"Runs training on this server: {SLOTS.running} of at most {MAX_CONCURRENT_JOBS}.")


def training_progress(job: TrainingJob, was_running: bool) -> None:
    history = job.snapshot()
    p, status = history["progress"], history["status"]
    if was_running and not job.running:
        st.rerun()  # the run ended: redraw the whole page (buttons, model list)
    total = max(p["total_steps"], 1)
    rate = p["step"] / p["elapsed"] if p["elapsed"] else 0
    eta = f"{(total - p['step']) / rate:.0f}s left" if rate and status == "running" else status
    st.progress(min(p["step"] / total, 1.0),
                text=f"epoch {p['epoch']}/{history['config']['epochs']} · step {p['step']:,}/"
                     f"{total:,} · {p['samples_per_s']:,.0f} samples/s · {eta}")
    if status == "diverged":
        st.error(f"{history['message']} (the weights from before it went wrong are kept)")
    elif status == "failed":
        st.error(f"Training failed: {history['message']}")
    if history["epochs"]:
        last = history["epochs"][-1]
        cols = st.columns(4)
        cols[0].metric("Train accuracy", f"{last['train_acc']:.2%}")
        cols[1].metric("Validation accuracy",
                       "n/a" if last["val_acc"] is None else f"{last['val_acc']:.2%}")
        cols[2].metric("Test accuracy", f"{last['test_acc']:.2%}")
        cols[3].metric("Time", f"{last['elapsed']:.1f}s")
    if history["loss"]:
        st.plotly_chart(training_figure(history), key="curves", config={"displayModeBar": False})


def save_trained(runs: SessionRuns) -> None:
    """Save's on_click: runs before the page is drawn, so the model list already shows it."""
    job = runs.job
    try:
        path = checkpoints.path_for_name(st.session_state.save_name.strip())
        history = job.snapshot()
        checkpoints.save(path, job.model(), job.config,
                         history["epochs"][-1] if history["epochs"] else {},
                         history["progress"]["elapsed"])
        st.session_state.models_message = ("success", f"Saved as {path.stem}.")
    except ValueError as e:
        st.session_state.models_message = ("error", str(e))


def add_upload() -> None:
    """The uploader's on_change: a file is rebuilt and re-saved only if the core accepts it."""
    upload = st.session_state.upload
    if upload is None:
        return
    try:
        name = upload.name.rsplit(".", 1)[0]
        model, info = checkpoints.from_bytes(upload.getvalue(), name)
        path = checkpoints.path_for_name(name)
        checkpoints.save(path, model, info.config, info.metrics, info.train_seconds)
        st.session_state.models_message = (
            "success", f"Added {path.stem}: choose it under Model, beside the drawing pad.")
    except ValueError as e:
        st.session_state.models_message = ("error", f"Not added: {e}")


def models_section(runs: SessionRuns, infos: list) -> None:
    st.subheader("Keep and share models")
    kind, text = st.session_state.pop("models_message", (None, None))
    if kind:
        (st.success if kind == "success" else st.error)(text)
    save, share = st.columns(2)
    with save:
        job = runs.job
        can_save = bool(job and not job.running and job.preview is not None)
        with st.form("save", border=False):
            st.text_input("Save the trained model as", placeholder="my-first-mlp", key="save_name",
                          disabled=not can_save)
            st.form_submit_button("Save", disabled=not can_save, on_click=save_trained,
                                  args=(runs,))
        if not can_save:
            st.caption("Train a model (and let it finish or stop it) to save it here.")
        st.file_uploader("Upload a checkpoint (.safetensors)", type=["safetensors"], key="upload",
                         on_change=add_upload)
    with share:
        st.dataframe([{"name": i.name, "test accuracy": i.metrics.get("test_acc"),
                       "hidden": " x ".join(map(str, i.config.hidden)) or "none",
                       "epochs": i.config.epochs, "train seconds": round(i.train_seconds, 1)}
                      for i in infos], hide_index=True,
                     column_config={"test accuracy": st.column_config.NumberColumn(format="percent")})
        if infos:
            chosen = st.selectbox("Download", [i.name for i in infos])
            path = next(i.path for i in infos if i.name == chosen)
            st.download_button("Download checkpoint", path.read_bytes,  # read on click, not per rerun
                               file_name=path.name, mime="application/octet-stream",
                               on_click="ignore")


# ---------------------------------------------------------------- page

def main() -> None:
    if hp("epochs") not in st.session_state:
        apply_config(PRESETS["default"])
    runs = st.session_state.runs = session_runs()
    sidebar()
    try:
        config_from_state().validate()
        config_error = None
    except ValueError as e:
        config_error = str(e)

    infos = checkpoints.list_checkpoints()  # after any save or upload callback has run
    model_picker_and_prediction(runs, infos)
    st.divider()
    training_section(runs, config_error)
    st.divider()
    models_section(runs, infos)


main()
