"""Teach it your handwriting: label drawings, keep them as Your examples, and fine-tune the
chosen model on them (the tab's one run), then see before and after. Drawn in the pad's
fragment, in the column beside the drawing it labels."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mlp_demo.examples import to_zip
from mlp_demo.plots import contact_sheet
from mlp_demo.server.runs import Run
from mlp_demo.server.session import Prediction, Session
from mlp_demo.teach import MAX_EXAMPLES, TeachConfig

from .server import show_message, user_action

GREEN, RED = "#2e7d32", "#c62828"


@user_action("label")
def add_example(me: Session, field: np.ndarray, label: int) -> None:
    me.say("label", "success", me.add_example(field, label))


def label_buttons(me: Session, prediction: Prediction | None) -> None:
    """Ten digit buttons under the prediction: label the current drawing."""
    if prediction is None:
        show_message(me, "label")
        return
    st.caption("Teach it: what did you draw? Label it to add it to Your examples.")
    with st.container(horizontal=True, gap="xxsmall"):  # ten narrow columns would clip the digits
        for digit in range(10):
            st.button(str(digit), key=f"label_{digit}", on_click=add_example,
                      args=(prediction.field, digit))
    show_message(me, "label")


@user_action("examples")
def remove_examples(me: Session) -> None:
    me.remove_examples(st.session_state.get("remove_examples") or [])
    st.session_state.remove_examples = []  # the numbers now name other examples


@user_action("examples")
def clear_examples(me: Session) -> None:
    me.clear_examples()


@user_action("examples", "Not added: ")
def add_upload(me: Session) -> None:
    upload = st.session_state.get(f"examples_zip_{me.upload_version}")
    if upload is not None:
        me.say("examples", "success", me.add_examples_zip(upload.getvalue(), upload.name))


@user_action("examples", "Not added: ")
def contribute(me: Session) -> None:
    me.say("examples", "success", me.membership.contribute(me.examples))


@user_action("examples", "Not started: ")
def start_teaching(me: Session) -> None:
    for note in me.teach():
        me.say("examples", "warning", note)


@user_action("examples")
def stop_teaching(me: Session) -> None:
    me.stop()


def teach_section(me: Session) -> None:
    st.subheader("Teach it your handwriting")
    st.caption("MNIST's writers are American students and clerks of the 1990s: a crossed 7 or a "
               "1 with a flag is rare there. Label your own drawings (buttons under the "
               "prediction), then Teach: the chosen model is fine-tuned on them, mixed with "
               "MNIST's images so that it does not forget MNIST.")
    show_message(me, "examples")
    mine = me.examples
    st.markdown(f"**Your examples** ({len(mine)} of at most {MAX_EXAMPLES})")
    if mine:
        st.image(contact_sheet([e.image / 255.0 for e in mine],
                               [f"#{i + 1}: {e.label}" for i, e in enumerate(mine)], columns=8),
                 output_format="PNG", alt=f"Your {len(mine)} examples, each 28x28 with its label")
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.multiselect("Remove", range(len(mine)), key="remove_examples",
                           format_func=lambda i: f"#{i + 1}: {mine[i].label}",
                           placeholder="choose examples to remove")
            st.button("Remove", on_click=remove_examples)
            st.button("Clear all", on_click=clear_examples)
        class_handwriting(me)
    else:
        st.caption("None yet: draw a digit and press its button under the prediction.")
    teaching_controls(me)
    show_teaching_result(me.latest_teaching())


def class_handwriting(me: Session) -> None:
    """In a class: give Your examples to its handwriting set, the student's choice each time."""
    if me.membership.seat is None:
        return
    new = len(me.membership.not_contributed(me.examples))
    st.button(f"Add {new} to the class's handwriting" if new else "All in the class's handwriting",
              icon=":material/groups:", disabled=not new, on_click=contribute,
              help="Every run on the class board is then scored on the class's drawings too. "
                   "Only the teacher sees them; take yours out under Class.")


def teaching_controls(me: Session) -> None:
    job, mine = me.job, me.examples
    history = job.snapshot() if job is not None else None
    teaching = bool(job and job.active and history.kind == "teaching")
    with st.container(horizontal=True):
        st.button("Teach", type="primary", icon=":material/school:",
                  disabled=bool(job and job.active) or not mine, on_click=start_teaching,
                  help=f"Fine-tune the model chosen under the pad on Your examples "
                       f"({TeachConfig().steps} steps, three quarters of each batch from MNIST; "
                       f"with two or more hidden layers, the first stays as it is).")
        if teaching:
            st.button("Stop teaching", icon=":material/stop:", on_click=stop_teaching)
        if mine:
            st.download_button(
                "Download examples (.zip)", on_click="ignore", file_name="examples.zip",
                data=lambda: to_zip([e.image for e in mine], [e.label for e in mine]),
                mime="application/zip", help="examples.csv and the 28x28 PNGs; "
                "`python -m mlp_demo teach --examples examples.zip` reads it.")
    if teaching:
        p = history.progress
        if history.status == "queued":
            st.info("Queued for a training slot; it starts by itself.")
        else:
            st.progress(min(p.step / max(p.total_steps, 1), 1.0),
                        text=f"teaching: step {p.step}/{p.total_steps}")
    # The uploader only on request: the page's one file input otherwise is the checkpoint's.
    if st.toggle("Upload examples (.zip)", key="examples_upload_open"):
        st.file_uploader("Examples zip", type=["zip"], key=f"examples_zip_{me.upload_version}",
                         on_change=add_upload,
                         help="A zip downloaded here: examples.csv and its images, checked "
                              "before use.")


def show_teaching_result(run: Run | None) -> None:
    if run is None:
        return
    history = run.job.snapshot()
    result = history.teach
    if history.status == "diverged":
        st.error(f"Teaching diverged: {history.message}")
    elif history.status == "failed":
        st.error(f"Teaching failed: {history.message}")
    if result is None:
        return
    st.markdown(f"**Before and after** ({run.name}, {history.status}"
                f"{': ' + history.message if history.message else ''})")
    ex, test = st.columns(2)
    ex.metric("Your examples read right", f"{result['examples_accuracy_after']:.0%}",
              f"{(result['examples_accuracy_after'] - result['examples_accuracy_before']) * 100:+.0f} "
              f"points (from {result['examples_accuracy_before']:.0%})")
    test.metric("MNIST test accuracy", f"{result['test_accuracy_after']:.2%}",
                f"{(result['test_accuracy_after'] - result['test_accuracy_before']) * 100:+.2f} "
                f"points (from {result['test_accuracy_before']:.2%})")
    st.caption("Learning new examples costs a little of the old: that is forgetting, and the "
               "MNIST images mixed into every batch keep it small. The taught model now answers "
               "the pad (Live); it is in Compare runs and can be saved.")
    pairs = list(zip(result["labels"], result["before"], result["after"]))
    st.image(contact_sheet([image / 255.0 for image in result["images"]],
                           [f"{y}: {b} > {a}" for y, b, a in pairs],
                           [GREEN if a == y else RED for y, _, a in pairs], columns=8),
             output_format="PNG", alt="Your examples, each with its label, its prediction before "
                                      "teaching and after")
    st.caption("Each example as *label: prediction before > after*, green where it is now read "
               "right, red where not.")
