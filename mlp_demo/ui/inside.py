"""Inside the network: the confusion matrix on MNIST's 10,000 test images, the misclassified
digits, and what the first hidden layer's units learned."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mlp_demo.insight import (
    confusion_matrix,
    misclassified,
    most_confused,
    per_class_accuracy,
    predict_all,
    weight_images,
)
from mlp_demo.plots import confusion_figure, pixels, weights_grid
from mlp_demo.server.runs import Run
from mlp_demo.server.session import Session, SessionError

from . import server

GALLERY = 48
UNITS = 64
WEIGHTS_REFRESH_S = 2.0


@st.cache_resource(show_spinner=False, max_entries=8)
def file_test_probs(path: str, mtime_ns: int, size: int, root: str, _model) -> np.ndarray:
    """A listed checkpoint's probabilities on the test set, shared by every session."""
    return predict_all(_model, server.mnist(root)[2]).numpy()


def test_probs(me: Session, source) -> np.ndarray:
    """The chosen model's probabilities (10000, 10) on the test images: a run's kept by the
    session per training step, a file's per file version for everyone."""
    if isinstance(source, Run):
        return me.run_test_probabilities(source)
    stat = source.path.stat()
    return file_test_probs(str(source.path), stat.st_mtime_ns, stat.st_size, server.settings().mnist_root,
                           me.model_of(source))


def inside_section(me: Session) -> None:
    usable = {label: source for label, source in me.choices().items()
              if not isinstance(source, Run) or source.model() is not None}
    label = st.selectbox("Model to look inside", list(usable), key="inspect_choice",
                         help="The shipped model, a saved one, or one of this tab's runs.")
    source = usable[label]
    try:
        model = me.model_of(source)
        confusion_and_mistakes(me, source)
    except SessionError as e:
        st.info(str(e))
        return
    st.subheader("First-layer weights")
    live = isinstance(source, Run) and source.job.active
    st.fragment(run_every=WEIGHTS_REFRESH_S if live else None)(first_layer_weights)(me, source, model)


def confusion_and_mistakes(me: Session, source) -> None:
    st.subheader("Confusion matrix")
    _, _, test_x, test_y = me.mnist("The confusion matrix needs MNIST's test images.")
    probs = test_probs(me, source)
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
    images = test_x[picked].numpy()
    st.caption(f"Test images of a {true} that the model read as {predicted}, most confident first "
               f"({len(picked)} of {count} shown). Would you have read them right?")
    st.image([pixels(im / 255.0, 2) for im in images], output_format="PNG",
             alt=[f"A misclassified test digit: true {true}, read as {predicted}" for _ in picked],
             caption=[f"true {true}, read {predicted} ({probs[i, predicted]:.0%})" for i in picked])


def first_layer_weights(me: Session, source, model) -> None:
    if isinstance(source, Run) and source.job.active:
        model = me.model_of(source)  # the weights as they are now
    if model is None:
        return
    images, units = weight_images(model, UNITS)
    if len(units) == 0:
        return
    st.caption(f"Each square is one hidden unit's 784 incoming weights, drawn as a 28x28 image: "
               f"blue pixels excite it, red ones inhibit it, white do nothing. Shown: the "
               f"{len(units)} units (of {len(model[0].weight)}) with the largest weights. While a "
               "run trains, watch them form from noise into stroke detectors.")
    st.image(weights_grid(images), output_format="PNG",
             alt="The first layer's weights: each unit's 784 incoming weights as a 28x28 image, "
                 "blue positive, red negative")
