"""The models a visitor can pick, save, upload, download and delete (the shared ModelStore)."""

from __future__ import annotations

import logging

import streamlit as st

from mlp_demo.checkpoints import CheckpointInfo
from mlp_demo.server.session import Session
from mlp_demo.server.store import upload_name

from .server import show_message, user_action

log = logging.getLogger("mlp_demo.app")


@user_action("models", "Not saved: ")
def save_trained(me: Session) -> None:
    """Save's on_click: runs before the page is drawn, so the model list already shows it."""
    name = st.session_state.get("save_name") or ""
    me.save(st.session_state.get("save_run"), name)
    me.say("models", "success", f"Saved as {name}.")


@user_action("models", "Not added: ")
def add_upload(me: Session) -> None:
    """The uploader's on_change: the file goes through the strict reader, then is re-saved."""
    upload = st.session_state.upload
    if upload is None:
        return
    me.add_upload(upload.name, upload.getvalue())
    me.say("models", "success", f"Added {upload_name(upload.name)}: choose it under Model, beside the "
                                "drawing pad.")


@user_action("models", "Not deleted: ")
def delete_mine(me: Session) -> None:
    name = st.session_state.delete_name
    me.delete_model(name)
    me.say("models", "success", f"Deleted {name}.")


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


def models_section(me: Session) -> None:
    st.subheader("Keep and share models")
    show_message(me, "models")
    listing = me.models()
    save, share = st.columns(2)
    with save:
        candidates = me.saveable()
        can_save = bool(candidates)
        with st.form("save", border=False):
            st.selectbox("Run to save", list(candidates) or ["(none yet)"], key="save_run",
                         disabled=not can_save)
            st.text_input("Save the trained model as", placeholder="my-first-mlp", key="save_name",
                          disabled=not can_save)
            st.form_submit_button("Save", disabled=not can_save, on_click=save_trained)
        if not can_save:
            st.caption("Train a model (and let it finish or stop it) to save it here.")
        limit_mb = st.get_option("server.maxUploadSize")
        st.file_uploader("Upload a checkpoint (.safetensors)", type=["safetensors"], key="upload",
                         on_change=add_upload,
                         help=f"Up to {limit_mb} MB: any model this server can train. Files are "
                              "checked strictly and never unpickled.")
        mine = [i.name for i in listing.models if me.owns(i.name)]
        if mine:
            st.selectbox("Your models", mine, key="delete_name",
                         help="Models saved or uploaded from this tab; only you can delete them.")
            st.button("Delete", icon=":material/delete:", on_click=delete_mine)
    with share:
        rows = []
        for info in listing.models:
            try:
                rows.append(table_row(info, me.owns(info.name)))
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
                               file_name=f"{chosen}.safetensors", mime="application/octet-stream",
                               on_click="ignore")
