"""What the server shares between sessions (cached resources), the page's refresh periods,
and the one object each session keeps: its Session.

A session's Session lives in st.session_state, which Streamlit keeps across a websocket
reconnect; a session-scoped cache_resource would be released (and the run stopped) by every
network blip. A run stops on Stop, or when the RunQueue's reaper finds the tab gone.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid

import streamlit as st

from mlp_demo.data import load_mnist
from mlp_demo.server import db
from mlp_demo.server.database import Database
from mlp_demo.server.jobs import LocalJobs
from mlp_demo.server.limits import Guesses, Limits, RunQueue, configure_threads
from mlp_demo.server.records import Presence
from mlp_demo.server.session import Session
from mlp_demo.server.settings import Settings
from mlp_demo.server.store import ModelStore

log = logging.getLogger("mlp_demo.app")
REFRESH_S = 1.0  # the run's own progress and curves; a teaching run under the pad
# Views that follow a run from elsewhere (the pad's live answer, the comparison): each rerun
# builds Plotly figures (~15-35 ms of the GIL each), and a class's strokes wait behind them.
LIVE_VIEWS_REFRESH_S = 2.0


def settings() -> Settings:
    """Every environment variable (server/settings.py): microseconds to read, so read when
    asked (the shared objects below are made once, from what was read then)."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def limits() -> Limits:
    return settings().limits


@st.cache_resource(show_spinner=False)
def run_queue() -> RunQueue:
    configure_threads()
    address = settings().ray_address  # runs train on that Ray cluster; unset, in this process
    if address:
        from mlp_demo.server import cluster  # Ray is imported only here

        try:
            cluster.connect(address)
            return cluster.ClusterRunQueue(limits())
        except Exception:  # noqa: BLE001 - the page must come up: runs then train here
            log.exception("the Ray cluster at MLP_DEMO_RAY_ADDRESS=%s cannot be used; training "
                          "in this process instead", address)
    return RunQueue(limits())


@st.cache_resource(show_spinner=False)
def jobs():
    """What makes the runs: jobs.LocalJobs, or cluster.RayJobs with MLP_DEMO_RAY_ADDRESS."""
    if settings().ray_address:
        from mlp_demo.server import cluster

        if isinstance(run_queue(), cluster.ClusterRunQueue):  # connected
            return cluster.RayJobs(settings().ray_cpus, settings().ray_gpus)
    return LocalJobs()


@st.cache_resource(show_spinner=False)
def database() -> Database:
    return Database(settings().database(), limits())


def presence() -> Presence | None:
    """Who has a page open on any replica, in the database; None while there is none."""
    return database().presence()


@st.cache_resource(show_spinner=False)
def model_store() -> ModelStore:
    """The shared models folder; its records in the database (every replica shares them, a
    restart keeps them), or in memory while there is none. A model's owner is present (its
    models are not evicted) while their page is open on this process or, by the database,
    on any other."""
    queue = run_queue()

    def is_present(visitor: str) -> bool:
        everywhere = presence()
        return queue.is_present(visitor) or (everywhere is not None and everywhere.is_present(visitor))
    return ModelStore(settings().checkpoints, limits(), is_present=is_present,
                      records=database().records())


@st.cache_resource(show_spinner="Loading MNIST (downloading it on first use)...")
def mnist(root: str):
    """The raw MNIST tensors, shared read-only by every session."""
    return load_mnist(root)


VISITOR_COOKIE = "mlp_demo_visitor"  # set by the lecture hall's proxy (deploy/nginx.conf)
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
SEAT_COOKIE = "mlp_demo_seat"  # "CODE.TOKEN", written by the browser (mlp_demo/web/seat.js)


def visitor_id() -> str:
    """Who this browser is: the proxy's HttpOnly cookie when there is one (it routes the browser
    to its replica and survives reloads and restarts), else a new id for this tab. Never the
    query string, which a link would share."""
    cookie = st.context.cookies.get(VISITOR_COOKIE)
    if isinstance(cookie, str) and VISITOR_ID.fullmatch(cookie):
        return cookie
    return uuid.uuid4().hex


def client(visitor: str) -> str:
    """Whose wrong class codes these are: the proxy's visitor (behind it every student has the
    proxy's address), else the connection's address (a reload keeps it), else the tab."""
    if st.context.cookies.get(VISITOR_COOKIE) == visitor:
        return visitor
    address = st.context.ip_address
    return f"address {address}" if isinstance(address, str) and len(address) <= 64 else visitor


@st.cache_resource(show_spinner=False)
def guesses() -> Guesses:
    """Wrong codes, counted for the whole process (limits.Guesses)."""
    return Guesses()


def session() -> Session:
    """This browser session's Session, made on its first run."""
    if "session" not in st.session_state:
        visitor = visitor_id()
        st.session_state.session = Session(visitor, run_queue(), model_store(), limits(),
                                           lambda: mnist(settings().mnist_root), database().classes(),
                                           jobs(), guesses(), client(visitor))
        st.session_state.session.membership.from_cookie(st.context.cookies.get(SEAT_COOKIE))
    me = st.session_state.session
    if me.membership.classes is None:  # the database was down when the tab opened
        me.membership.classes = database().classes()
    return me


def stop_on_a_foreign_database() -> None:
    """A database made by another version of mlp_demo stops the page with both versions named
    (the CLI stops the same way): writing into it could lose a class's data."""
    problem = database().problem
    if isinstance(problem, db.SchemaMismatch):
        st.error(f"This server cannot start: {problem}.")
        st.stop()


def read_teacher_key(me: Session) -> None:
    """A teacher link's key goes into the session once and out of the address bar, so it is
    never in a link the page shows or the browser's history keeps."""
    key = st.query_params.get("teacher")
    if key is not None:
        me.membership.remember_teacher(st.query_params.get("class"), key[:100])
        del st.query_params["teacher"]


def heartbeat_seconds() -> float:
    """Often enough that two heartbeats can be missed within the TTL (20 s by default)."""
    return min(20.0, limits().session_ttl_s / 4)


def heartbeat() -> None:
    """Tell the queue this tab is still open, and put its newly ended runs on its class's
    board; run from every rerun and from timed fragments."""
    me = session()
    run_queue().touch(me.visitor)
    if (everywhere := presence()) is not None:
        everywhere.seen(me.visitor)
    said = me.membership.post_finished_runs()
    if said:
        me.say("class", "info", " ".join(said))


def user_action(where: str, prefix: str = ""):
    """Wrap a widget callback that takes the Session first: a mistake the user can fix
    (ValueError, SessionError among them) becomes the section's message; any other failure a
    short message for the visitor and a traceback in the server's log."""
    def wrap(callback):
        @functools.wraps(callback)
        def run(*args, **kwargs):
            me = session()
            try:
                callback(me, *args, **kwargs)
            except ValueError as e:
                me.say(where, "error", f"{prefix}{e}")
            except Exception:
                log.exception("%s failed", callback.__name__)
                me.say(where, "error", f"{prefix}something went wrong on the server; it has been "
                                       "logged.")
        return run
    return wrap


def show_message(me: Session, where: str) -> None:
    """A section's message, as text: it may hold a visitor's name or a file name, and Streamlit
    renders a message as Markdown (images, links, colours, formulas)."""
    kind, text = me.take_message(where) or (None, None)
    if kind:
        {"success": st.success, "warning": st.warning, "info": st.info}.get(kind, st.error)(
            as_text(text))


MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:=^])")


def as_text(text: str) -> str:
    """Text that Streamlit's Markdown shows exactly as written: every character that Markdown,
    its colour and icon directives or KaTeX would read is escaped."""
    return MARKDOWN.sub(r"\\\1", text)
