"""What the server shares between sessions (cached resources) and what each session keeps.

A session's run lives in st.session_state, which Streamlit keeps across a websocket
reconnect; a session-scoped cache_resource would be released (and the run stopped) by every
network blip. The run stops on Stop, or when the RunQueue's reaper finds the tab gone.
"""

from __future__ import annotations

import functools
import logging
import uuid
from pathlib import Path

import streamlit as st

from mlp_demo import checkpoints
from mlp_demo.data import load_mnist
from mlp_demo.jobs import TrainingJob
from mlp_demo.limits import Limits, RunQueue, configure_threads
from mlp_demo.runs import RunHistory
from mlp_demo.store import ModelStore

log = logging.getLogger("mlp_demo.app")


@st.cache_resource(show_spinner=False)
def limits() -> Limits:
    return Limits.from_env()


@st.cache_resource(show_spinner=False)
def run_queue() -> RunQueue:
    configure_threads()
    return RunQueue(limits())


@st.cache_resource(show_spinner=False)
def model_store() -> ModelStore:
    return ModelStore(checkpoints.saved_dir(), limits(), is_present=run_queue().is_present)


@st.cache_resource(show_spinner="Loading MNIST (downloading it on first use)...")
def mnist(root: str):
    """The raw MNIST tensors, shared read-only by every session."""
    return load_mnist(root)


@st.cache_resource(show_spinner=False, max_entries=16)
def load_model(path: str, mtime_ns: int, size: int):
    """A listed checkpoint's model, reloaded when its file changes."""
    return model_store().load(Path(path))


class SessionRuns:
    """This browser session's runs: every one kept (up to MLP_DEMO_MAX_RUNS), the latest live."""

    def __init__(self):
        self.history = RunHistory()

    @property
    def job(self) -> TrainingJob | None:
        """The latest run's job (queued, training or done), or None before the first Train."""
        latest = self.history.latest
        return latest.job if latest else None


def visitor() -> str:
    """This session's anonymous id: who owns its run and its saved models."""
    return st.session_state.setdefault("visitor", uuid.uuid4().hex)


def session_runs() -> SessionRuns:
    return st.session_state.setdefault("runs", SessionRuns())


def heartbeat_seconds() -> float:
    """Often enough that two heartbeats can be missed within the TTL (20 s by default)."""
    return min(20.0, limits().session_ttl_s / 4)


def heartbeat() -> None:
    """Tell the queue this tab is still open; run from every rerun and a timed fragment."""
    run_queue().touch(visitor())


def user_action(message_key: str, prefix: str = ""):
    """Wrap a widget callback: a mistake the user can fix (ValueError) becomes its message; any
    other failure a short message for the visitor and a traceback in the server's log."""
    def wrap(callback):
        @functools.wraps(callback)
        def run(*args, **kwargs):
            try:
                callback(*args, **kwargs)
            except ValueError as e:
                st.session_state[message_key] = ("error", f"{prefix}{e}")
            except Exception:
                log.exception("%s failed", callback.__name__)
                st.session_state[message_key] = (
                    "error", f"{prefix}something went wrong on the server; it has been logged.")
        return run
    return wrap


def show_message(message_key: str) -> None:
    kind, text = st.session_state.pop(message_key, None) or (None, None)
    if kind:
        {"success": st.success, "warning": st.warning}.get(kind, st.error)(text)
