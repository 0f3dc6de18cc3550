"""Train and Stop, the queue, and the live progress and curves of this tab's run."""

from __future__ import annotations

import streamlit as st

from mlp_demo.config import TrainConfig
from mlp_demo.plots import WHY_TRAIN_BELOW_VALIDATION, training_figure
from mlp_demo.server.session import Session

from . import server
from .server import REFRESH_S, show_message, user_action


@user_action("train")
def start_training(me: Session, config: TrainConfig) -> None:
    """Train's on_click: runs before the page is drawn, so the pad already follows Live."""
    for note in me.train(config):
        me.say("train", "warning", note)


@user_action("train")
def stop_run(me: Session) -> None:
    me.stop()


def train_controls(me: Session, config: TrainConfig, config_error: str | None) -> None:
    """Train and Stop, at the top of the page where the eye goes (on a phone too, where the
    sidebar is folded away), with what they have to say."""
    active = bool(me.job and me.job.active)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Train", type="primary", disabled=active or bool(config_error), key="train",
                  icon=":material/play_arrow:", on_click=start_training, args=(config,),
                  help="Train the network with the settings in the sidebar; the curves are below.")
        st.button("Stop", disabled=not active, icon=":material/stop:", on_click=stop_run, key="stop")
        running, waiting = server.run_queue().counts()
        st.caption(f"Runs training on this server: {running} of at most {server.limits().max_jobs}"
                   + (f", {waiting} waiting." if waiting else "."))
    if config_error:
        st.error(f"Invalid settings: {config_error}")
    show_message(me, "train")


def training_section(me: Session) -> None:
    st.subheader("Train")
    job = me.job
    if job:
        st.fragment(run_every=REFRESH_S if job.active else None)(training_progress)(me)
    else:
        st.caption("Press Train (at the top of the page) to watch the loss fall and the accuracy "
                   "climb, live.")


def training_progress(me: Session) -> None:
    server.heartbeat()
    job = me.job
    show_progress(job, job.snapshot())
    if me.page_is_stale():
        # The run ended: redraw the whole page (buttons, model list). Called last, after this
        # fragment's elements: a rerun from inside a fragment before them can reset widget
        # values (streamlit/streamlit#11266).
        st.rerun()


def show_progress(job, history: dict) -> None:
    p, status = history.progress, history.status
    if status == "queued":
        queue = server.run_queue()
        place, eta = queue.position(job), queue.estimated_start(job)
        if place:
            st.info(f"Queued: number {place} in line for a training slot; estimated start in "
                    f"about {eta:.0f} s. It starts by itself; keep this tab open.")
        return
    if status == "cancelled":
        st.caption(f"This run never started: {history.message}.")
        return
    total = max(p.total_steps, 1)
    rate = p.step / p.elapsed if p.elapsed else 0
    eta = f"{(total - p.step) / rate:.0f}s left" if rate and status == "running" else status
    if history.x_axis == "epoch":
        where = f"epoch {p.epoch}/{history.settings['epochs']} · step {p.step:,}/{total:,}"
    else:
        where = f"teaching · step {p.step:,}/{total:,}"
    st.progress(min(p.step / total, 1.0),
                text=f"{where} · {p.samples_per_s:,.0f} samples/s · {eta}")
    if status == "diverged":
        st.error(f"{history.message} (the weights from before it went wrong are kept)")
    elif status == "failed":
        st.error(f"Training failed: {history.message}")
    elif status == "stopped" and history.message:
        st.warning(f"The run {history.message}.")
    if history.epochs:
        last = history.epochs[-1]
        cols = st.columns(4)
        cols[0].metric("Train accuracy", f"{last['train_acc']:.2%}")
        cols[1].metric("Validation accuracy",
                       "n/a" if last["val_acc"] is None else f"{last['val_acc']:.2%}")
        cols[2].metric("Test accuracy", f"{last['test_acc']:.2%}")
        cols[3].metric("Time", f"{history.seconds:.1f} s")
    if history.loss:
        st.plotly_chart(training_figure(history), key="curves", config={"displayModeBar": False})
        if history.epochs:
            st.caption(WHY_TRAIN_BELOW_VALIDATION)
