"""Teach it your handwriting: label drawings, keep them as `Your examples`, and fine-tune the
chosen model on them (a background job, the tab's one run), then see before and after.

All of it lives in the pad's fragment, in the column beside the drawing it labels; a Teach
press and the job's end rerun the whole page so that the run list, the curves and the picker
follow.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from mlp_demo.data import DataMissing, MnistSplits, mnist_root
from mlp_demo.examples import read_zip, to_zip
from mlp_demo.jobs import TeachingJob
from mlp_demo.plots import contact_sheet
from mlp_demo.runs import Run
from mlp_demo.teach import MAX_EXAMPLES

from . import server
from .server import SessionRuns, show_message, user_action
from .training import stop_run, submit_run

GREEN, RED = "#2e7d32", "#c62828"


def examples() -> list[dict]:
    """This tab's labelled digits: {"image": uint8 28x28, "label": 0-9}, oldest first."""
    return st.session_state.setdefault("examples", [])


@user_action("label_message")
def add_example(field: np.ndarray, label: int) -> None:
    mine = examples()
    image = (np.asarray(field) * 255).round().astype(np.uint8)
    if any(e["label"] == label and np.array_equal(e["image"], image) for e in mine):
        raise ValueError(f"this drawing is already in Your examples as a {label}")
    if len(mine) >= MAX_EXAMPLES:
        raise ValueError(f"Your examples hold at most {MAX_EXAMPLES}: remove some first")
    mine.append({"image": image, "label": int(label)})
    st.session_state.label_message = (
        "success", f"Added as a {label}: {len(mine)} in Your examples, below. Clear the pad and "
                   "draw the next one.")


def label_buttons(field: np.ndarray) -> None:
    """Ten digit buttons under the prediction: label the current drawing."""
    st.caption("Teach it: what did you draw? Label it to add it to Your examples.")
    with st.container(horizontal=True, gap="xxsmall"):  # ten narrow columns would clip the digits
        for digit in range(10):
            st.button(str(digit), key=f"label_{digit}", on_click=add_example, args=(field, digit))
    show_message("label_message")


def remove_examples() -> None:
    chosen = set(st.session_state.get("remove_examples") or [])
    st.session_state.examples = [e for i, e in enumerate(examples()) if i not in chosen]
    st.session_state.remove_examples = []  # the numbers now name other examples


def clear_examples() -> None:
    st.session_state.examples = []


@user_action("examples_message", "Not added: ")
def add_upload() -> None:
    key = f"examples_zip_{st.session_state.get('examples_zip_version', 0)}"
    upload = st.session_state.get(key)
    if upload is None:
        return
    st.session_state.examples_zip_version = st.session_state.get("examples_zip_version", 0) + 1
    images, labels = read_zip(upload.getvalue())  # an ExamplesError is the visitor's message
    mine = examples()
    if len(mine) + len(images) > MAX_EXAMPLES:
        raise ValueError(f"{len(images)} more would make {len(mine) + len(images)}; Your examples "
                         f"hold at most {MAX_EXAMPLES}")
    mine.extend({"image": i, "label": y} for i, y in zip(images, labels))
    st.session_state.examples_message = ("success", f"Added {len(images)} examples from {upload.name}.")


@user_action("examples_message", "Not started: ")
def start_teaching(runs: SessionRuns, choices: dict) -> None:
    from .prediction import model_for

    if runs.job and runs.job.active:
        raise ValueError("this tab already has a run: wait for it or stop it first")
    mine = examples()
    if not mine:
        raise ValueError("label a few drawings first (ten of each digit you care about is plenty)")
    source = choices.get(st.session_state.get("model_choice"))
    if source is None:
        raise ValueError("choose a model under the pad first")
    if isinstance(source, Run) and source.job.active:
        raise ValueError(f"{source.name} is still training: teach it once it ends, or pick "
                         "another model")
    model = model_for(source)
    try:
        train_x, train_y, test_x, test_y = server.mnist(mnist_root())
    except DataMissing as e:
        raise ValueError(f"teaching mixes in MNIST's images, which are missing: {e}") from None
    data = MnistSplits(train_x, train_y, train_x[:0], train_y[:0], test_x, test_y)
    images = torch.from_numpy(np.stack([e["image"] for e in mine]))
    labels = torch.tensor([e["label"] for e in mine])
    limits = server.limits()
    job = TeachingJob(model, images, labels, lambda: data, visitor=server.visitor(),
                      max_seconds=limits.max_run_seconds)
    run, place, _ = submit_run(runs, job)  # Live: the taught model answers the pad when ready
    run.name = f"{run.name}: taught"
    st.session_state.teach_watch = run.number  # the fragment reruns the page when it ends
    if place:
        st.session_state.examples_message = (
            "warning", f"All {limits.max_jobs} training slots are busy: teaching is queued "
                       "and starts by itself.")


def latest_teaching(runs: SessionRuns) -> Run | None:
    return next((r for r in reversed(runs.history.runs) if isinstance(r.job, TeachingJob)), None)


def teach_section(runs: SessionRuns, choices: dict) -> None:
    st.subheader("Teach it your handwriting")
    st.caption("MNIST's writers are American students and clerks of the 1990s: a crossed 7 or a "
               "1 with a flag is rare there. Label your own drawings (buttons under the "
               "prediction), then Teach: the chosen model is fine-tuned on them, mixed with "
               "MNIST's images so that it does not forget MNIST.")
    show_message("examples_message")
    mine = examples()
    st.markdown(f"**Your examples** ({len(mine)} of at most {MAX_EXAMPLES})")
    if mine:
        st.image(contact_sheet([e["image"] / 255.0 for e in mine],
                               [f"#{i + 1}: {e['label']}" for i, e in enumerate(mine)], columns=8),
                 output_format="PNG")
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.multiselect("Remove", range(len(mine)), key="remove_examples",
                           format_func=lambda i: f"#{i + 1}: {mine[i]['label']}",
                           placeholder="choose examples to remove")
            st.button("Remove", on_click=remove_examples)
            st.button("Clear all", on_click=clear_examples)
    else:
        st.caption("None yet: draw a digit and press its button under the prediction.")
    teaching_controls(runs, choices, mine)
    show_teaching_result(latest_teaching(runs))
    watch_teaching(runs)


def teaching_controls(runs: SessionRuns, choices: dict, mine: list[dict]) -> None:
    job = runs.job
    teaching = isinstance(job, TeachingJob) and job.active
    with st.container(horizontal=True):
        st.button("Teach", type="primary", icon=":material/school:",
                  disabled=bool(job and job.active) or not mine, on_click=start_teaching,
                  args=(runs, choices),
                  help="Fine-tune the model chosen under the pad on Your examples (150 steps, "
                       "three quarters of each batch from MNIST).")
        if teaching:
            st.button("Stop teaching", icon=":material/stop:", on_click=stop_run, args=(job,))
        if mine:
            st.download_button(
                "Download examples (.zip)", on_click="ignore", file_name="examples.zip",
                data=lambda: to_zip([e["image"] for e in mine], [e["label"] for e in mine]),
                mime="application/zip", help="examples.csv and the 28x28 PNGs; unzipped, "
                "`python -m mlp_demo teach --examples examples.csv` reads it.")
    if teaching:
        p = job.snapshot()["progress"]
        if job.status == "queued":
            st.info("Queued for a training slot; it starts by itself.")
        else:
            st.progress(min(p["step"] / max(p["total_steps"], 1), 1.0),
                        text=f"teaching: step {p['step']}/{p['total_steps']}")
    # The uploader only on request: the page's one file input otherwise is the checkpoint's.
    if st.toggle("Upload examples (.zip)", key="examples_upload_open"):
        version = st.session_state.get("examples_zip_version", 0)
        st.file_uploader("Examples zip", type=["zip"], key=f"examples_zip_{version}",
                         on_change=add_upload,
                         help="A zip downloaded here: examples.csv and 28x28 PNGs, checked "
                              "before use.")


def show_teaching_result(run: Run | None) -> None:
    if run is None:
        return
    history = run.job.snapshot()
    result = history["teach"]
    if history["status"] in ("diverged", "failed"):
        st.error(f"Teaching failed: {history['message']}")
    if result is None:
        return
    st.markdown(f"**Before and after** ({run.name}, {history['status']}"
                f"{': ' + history['message'] if history['message'] else ''})")
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
    st.image(contact_sheet([image / 255.0 for image in run.job.images.numpy()],
                           [f"{y}: {b} > {a}" for y, b, a in pairs],
                           [GREEN if a == y else RED for y, _, a in pairs], columns=8),
             output_format="PNG")
    st.caption("Each example as *label: prediction before > after*, green where it is now read "
               "right, red where not.")


def watch_teaching(runs: SessionRuns) -> None:
    """Rerun the whole page once when Teach starts and once when it ends, so that the pad's
    fragment polls while it runs and the run list and picker show the taught model. Called
    last in the fragment (streamlit/streamlit#11266)."""
    number = st.session_state.get("teach_watch")
    run = runs.history.get(number) if number is not None else None
    if run is None:
        return
    if not st.session_state.get("teach_polling"):
        st.session_state.teach_polling = True
        st.rerun()
    if not run.job.active:
        del st.session_state["teach_watch"], st.session_state["teach_polling"]
        st.rerun()
