"""The models a visitor can pick, save, upload, download and delete (the shared ModelStore)."""

from __future__ import annotations

import logging

import streamlit as st

from mlp_demo.checkpoints import CheckpointInfo
from mlp_demo.runs import summary
from mlp_demo.store import Listing

from . import server
from .server import SessionRuns, show_message, user_action
from .training import LIVE

log = logging.getLogger("mlp_demo.app")
SHIPPED = "Shipped model"


def model_label(info: CheckpointInfo, shipped: bool) -> str:
    acc = info.metrics.get("test_acc")
    return (SHIPPED if shipped else f"Saved: {info.name}") + (f" ({acc:.2%} test)" if acc else "")


def model_choices(runs: SessionRuns, listing: Listing) -> dict:
    """Label -> CheckpointInfo (or LIVE) for every model the pad can use; an entry that
    cannot be labelled is left out, never the whole list."""
    choices = {}
    for i, info in enumerate(listing.models):
        try:
            choices[model_label(info, shipped=i == 0 and info.name == "default")] = info
        except Exception:
            log.exception("cannot list %s", info.name)
    for run in runs.history.runs[:-1]:  # the latest is LIVE
        if run.job.preview is not None:
            acc = summary(run)["test_acc"]
            choices[f"{run.name}" + (f" ({acc:.2%} test)" if acc else "")] = run
    if runs.history.latest:
        choices[LIVE] = runs.history.latest
    return choices


def saveable(runs: SessionRuns) -> dict:
    """Run name -> run, for the runs that have ended with weights, latest first."""
    return {r.name: r for r in reversed(runs.history.runs)
            if not r.job.active and r.job.preview is not None}


@user_action("models_message", "Not saved: ")
def save_trained(runs: SessionRuns) -> None:
    """Save's on_click: runs before the page is drawn, so the model list already shows it."""
    run = saveable(runs).get(st.session_state.get("save_run"))
    if run is None:
        raise ValueError("choose a run that has finished or been stopped")
    job, name = run.job, st.session_state.save_name.strip()
    history = job.snapshot()
    path = server.model_store().save(
        name, server.visitor(), job.model(), job.config,
        history["epochs"][-1] if history["epochs"] else {}, history["progress"]["elapsed"])
    st.session_state.models_message = ("success", f"Saved as {path.stem}.")


@user_action("models_message", "Not added: ")
def add_upload() -> None:
    """The uploader's on_change: the file goes through the strict reader, then is re-saved."""
    upload = st.session_state.upload
    if upload is None:
        return
    path = server.model_store().add_upload(upload.name, upload.getvalue(), server.visitor())
    st.session_state.models_message = (
        "success", f"Added {path.stem}: choose it under Model, beside the drawing pad.")


@user_action("models_message", "Not deleted: ")
def delete_mine() -> None:
    name = st.session_state.delete_name
    server.model_store().delete(name, server.visitor())
    st.session_state.models_message = ("success", f"Deleted {name}.")


def read_or_empty(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def table_row(info: CheckpointInfo, mine: bool) -> dict:
    return {"name": info.name + (" (yours)" if mine else ""),
            "test accuracy": info.metrics.get("test_acc"),
            "hidden": " x ".join(map(str, info.config.hidden)) or "none",
            "parameters": info.config.n_params(), "epochs": info.config.epochs,
            "train seconds": None if info.train_seconds is None else round(info.train_seconds, 1)}


def models_section(runs: SessionRuns, listing: Listing) -> None:
    st.subheader("Keep and share models")
    show_message("models_message")
    store, me = server.model_store(), server.visitor()
    save, share = st.columns(2)
    with save:
        candidates = saveable(runs)
        can_save = bool(candidates)
        with st.form("save", border=False):
            st.selectbox("Run to save", list(candidates) or ["(none yet)"], key="save_run",
                         disabled=not can_save)
            st.text_input("Save the trained model as", placeholder="my-first-mlp", key="save_name",
                          disabled=not can_save)
            st.form_submit_button("Save", disabled=not can_save, on_click=save_trained,
                                  args=(runs,))
        if not can_save:
            st.caption("Train a model (and let it finish or stop it) to save it here.")
        limit_mb = st.get_option("server.maxUploadSize")
        st.file_uploader("Upload a checkpoint (.safetensors)", type=["safetensors"], key="upload",
                         on_change=add_upload,
                         help=f"Up to {limit_mb} MB: any model this server can train. Files are "
                              "checked strictly and never unpickled.")
        mine = [i.name for i in listing.models if store.owner(i.name) == me]
        if mine:
            st.selectbox("Your models", mine, key="delete_name",
                         help="Models saved or uploaded from this tab; only you can delete them.")
            st.button("Delete", icon=":material/delete:", on_click=delete_mine)
    with share:
        rows = []
        for info in listing.models:
            try:
                rows.append(table_row(info, store.owner(info.name) == me))
            except Exception:
                log.exception("cannot show %s", info.name)
        st.dataframe(rows, hide_index=True, column_config={
            "test accuracy": st.column_config.NumberColumn(format="percent")})
        if listing.unreadable:
            st.caption(f"{len(listing.unreadable)} file(s) in the models folder could not be read "
                       "and are not listed.")
        if listing.models:
            names = [i.name for i in listing.models]
            chosen = st.selectbox("Download", names)
            path = listing.models[names.index(chosen)].path
            st.download_button("Download checkpoint", lambda: read_or_empty(path),  # on click
                               file_name=path.name, mime="application/octet-stream",
                               on_click="ignore")
