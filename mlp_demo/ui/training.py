"""Train and Stop, the queue, and the live progress and curves of this tab's run."""

from __future__ import annotations

import streamlit as st

from mlp_demo.data import DataMissing, mnist_root, split_mnist
from mlp_demo.jobs import TrainingJob
from mlp_demo.limits import Busy
from mlp_demo.plots import training_figure

from . import server
from .server import SessionRuns, show_message, user_action
from .sidebar import config_from_state

REFRESH_S = 1.0  # the run's own progress and curves
# Views that follow a run from elsewhere (the pad's live answer, the comparison): each rerun
# builds Plotly figures (~15-35 ms of the GIL each), and a class's strokes wait behind them.
LIVE_VIEWS_REFRESH_S = 2.0
LIVE = "Live: the model you train here"  # the latest run, as it trains and after


@user_action("train_message")
def start_training(runs: SessionRuns) -> None:
    """Train's on_click: runs before the widgets are drawn, so it may set model_choice."""
    limits = server.limits()
    if runs.job and runs.job.active:
        raise ValueError("this tab already has a run: stop it first")
    config = config_from_state().validate()
    problems = limits.problems(config)
    if problems:
        raise ValueError("; ".join(problems))
    try:
        raw = server.mnist(mnist_root())
    except DataMissing as e:
        raise ValueError(f"{e} Drawing still works, with the shipped model.") from None
    job = TrainingJob(config, lambda: split_mnist(*raw, config.val_size, config.seed),
                      visitor=server.visitor(), max_seconds=limits.max_run_seconds,
                      n_train=len(raw[0]) - config.val_size)
    run, place, dropped = submit_run(runs, job)
    notes = []
    if place:
        notes.append(f"All {limits.max_jobs} training slots are busy: {run.name} is queued and "
                     "starts by itself.")
    if dropped:
        notes.append(f"{', '.join(r.name for r in dropped)} dropped: a tab keeps at most "
                     f"{runs.history.limit} runs (pin a run in Compare runs to keep it).")
    if notes:
        st.session_state.train_message = ("warning", " ".join(notes))


def submit_run(runs: SessionRuns, job: TrainingJob) -> tuple:
    """Queue a training or teaching job as this tab's next run, keep it in the run history and
    make it the model behind the pad: (its Run, its place in the queue, the runs dropped)."""
    try:
        place = server.run_queue().submit(job)
    except Busy as e:
        raise ValueError(str(e)) from None
    run, dropped = runs.history.add(job)
    st.session_state.model_choice = LIVE
    return run, place, dropped


def stop_run(job: TrainingJob) -> None:
    """Stop's on_click, for training and teaching alike."""
    if not server.run_queue().cancel(job):
        job.stop()
        job.join(timeout=5)  # a stop takes effect before the next batch: milliseconds


def training_section(runs: SessionRuns, config_error: str | None) -> None:
    st.subheader("Train")
    job = runs.job
    active = bool(job and job.active)
    go, stop, _ = st.columns([1, 1, 4])
    go.button("Train", type="primary", disabled=active or bool(config_error),
              icon=":material/play_arrow:", on_click=start_training, args=(runs,))
    stop.button("Stop", disabled=not active, icon=":material/stop:", on_click=stop_run,
                args=(job,))
    if config_error:
        st.error(f"Invalid settings: {config_error}")
    show_message("train_message")
    if job:
        st.fragment(run_every=REFRESH_S if active else None)(training_progress)(job, active)
    else:
        st.caption("Press Train to watch the loss fall and the accuracy climb, live.")
    running, waiting = server.run_queue().counts()
    st.caption(f"Runs training on this server: {running} of at most {server.limits().max_jobs}"
               + (f", {waiting} waiting." if waiting else "."))


def training_progress(job: TrainingJob, was_active: bool) -> None:
    server.heartbeat()
    show_progress(job, job.snapshot())
    if was_active and not job.active:
        # The run ended: redraw the whole page (buttons, model list). Called last, after this
        # fragment's elements: a rerun from inside a fragment before them can reset widget
        # values (streamlit/streamlit#11266).
        st.rerun()


def show_progress(job: TrainingJob, history: dict) -> None:
    p, status = history["progress"], history["status"]
    if status == "queued":
        queue = server.run_queue()
        place, eta = queue.position(job), queue.estimated_start(job)
        if place:
            st.info(f"Queued: number {place} in line for a training slot; estimated start in "
                    f"about {eta:.0f} s. It starts by itself; keep this tab open.")
        return
    if status == "cancelled":
        st.caption(f"This run never started: {history['message']}.")
        return
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
    elif status == "stopped" and history["message"]:
        st.warning(f"The run {history['message']}.")
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
