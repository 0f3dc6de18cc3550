"""Inside the network: the confusion matrix on MNIST's 10,000 test images, the misclassified
digits, and what the first hidden layer's units learned."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mlp_demo.data import DataMissing, mnist_root
from mlp_demo.insight import (
    confusion_matrix,
    misclassified,
    most_confused,
    per_class_accuracy,
    predict_all,
    weight_images,
)
from mlp_demo.plots import confusion_figure, pixels, weights_grid
from mlp_demo.runs import Run

from . import server
from .prediction import model_for

GALLERY = 48
UNITS = 64
WEIGHTS_REFRESH_S = 2.0


@st.cache_resource(show_spinner=False, max_entries=8)
def file_test_probs(path: str, mtime_ns: int, size: int, root: str, _source) -> np.ndarray:
    """A listed checkpoint's probabilities on the test set, shared by every session."""
    return predict_all(model_for(_source), server.mnist(root)[2]).numpy()


def test_probs(source) -> np.ndarray:
    """The chosen model's probabilities (10000, 10) on the test images; a run's are cached per
    training step in the session, a file's per file version for everyone."""
    if not isinstance(source, Run):
        stat = source.path.stat()
        return file_test_probs(str(source.path), stat.st_mtime_ns, stat.st_size, mnist_root(), source)
    key = (source.number, source.job.snapshot()["progress"]["step"], mnist_root())
    cache = st.session_state.setdefault("test_probs", {})
    if key not in cache:
        cache.clear()  # one at a time: 10,000 x 10 floats each
        cache[key] = predict_all(model_for(source), server.mnist(mnist_root())[2]).numpy()
    return cache[key]


def inside_section(choices: dict) -> None:
    usable = {label: src for label, src in choices.items()
              if not isinstance(src, Run) or src.job.preview is not None}
    label = st.selectbox("Model to look inside", list(usable), key="inspect_choice",
                         help="The shipped model, a saved one, or one of this tab's runs.")
    source = usable[label]
    confusion_and_mistakes(source)
    st.subheader("First-layer weights")
    live = isinstance(source, Run) and source.job.running
    st.fragment(run_every=WEIGHTS_REFRESH_S if live else None)(first_layer_weights)(source)


def confusion_and_mistakes(source) -> None:
    st.subheader("Confusion matrix")
    try:
        _, _, _, test_y = server.mnist(mnist_root())
        probs = test_probs(source)
    except DataMissing as e:
        st.info(f"The confusion matrix needs MNIST's test images: {e}")
        return
    labels = test_y.numpy()
    counts = confusion_matrix(labels, probs.argmax(1))
    accuracy = per_class_accuracy(counts)
    st.caption(f"Each row is a true digit, each column what the model read, over the 10,000 test "
               f"images ({np.trace(counts) / counts.sum():.2%} right). Look for the bright squares "
               "off the diagonal: the digits it mixes up. Each row's accuracy is in its label.")
    st.plotly_chart(confusion_figure(counts, accuracy), key="confusion",
                    config={"displayModeBar": False})
    pairs = most_confused(counts, top=90)
    if pairs:
        st.caption("Most confused: " + ", ".join(f"{t} read as {p} ({n})" for t, p, n in pairs[:5]))
    st.subheader("Misclassified")
    if not pairs:
        st.caption("No test image is misread: nothing to show.")
        return
    pair = st.selectbox("Which mistake", pairs, key="mistake_pair",
                        format_func=lambda tpn: f"{tpn[0]} read as {tpn[1]} ({tpn[2]} images)",
                        help="Choose a square of the confusion matrix (off the diagonal).")
    true, predicted, count = pair
    picked = misclassified(labels, probs, true, predicted, limit=GALLERY)
    images = server.mnist(mnist_root())[2][picked].numpy()
    st.caption(f"Test images of a {true} that the model read as {predicted}, most confident first "
               f"({len(picked)} of {count} shown). Would you have read them right?")
    st.image([pixels(im / 255.0, 2) for im in images], output_format="PNG",
             caption=[f"true {true}, read {predicted} ({probs[i, predicted]:.0%})" for i in picked])


def first_layer_weights(source) -> None:
    model = model_for(source)
    images, units = weight_images(model, UNITS)
    if len(units) == 0:
        return
    st.caption(f"Each square is one hidden unit's 784 incoming weights, drawn as a 28x28 image: "
               f"blue pixels excite it, red ones inhibit it, white do nothing. Shown: the "
               f"{len(units)} units (of {len(model[0].weight)}) with the largest weights. While a "
               "run trains, watch them form from noise into stroke detectors.")
    st.image(weights_grid(images), output_format="PNG")
