"""The class board, for the projector (`?class=CODE&view=board`): large type, refreshed every
3 s without a reload. It reads classes.py and renders nothing else. With the teacher's key in
the session (from the teacher link), the teacher's controls follow the board."""

from __future__ import annotations

import dataclasses
import functools
import html
import io
import urllib.parse

import numpy as np
import streamlit as st
from PIL import Image

from mlp_demo.config import TrainConfig
from mlp_demo.plots import board_accuracies, board_curves, board_scatter, contact_sheet
from mlp_demo.server.board import (
    LOG_SETTINGS,
    SCATTER_SETTINGS,
    counts_line,
    group_rows,
    handwriting_points,
    join_qr_png,
    leaderboard_rows,
    scatter_points,
    setting_name,
)
from mlp_demo.server.classes import Board, Entry
from mlp_demo.server.lessons import LESSON_SETTINGS, Lesson, as_text, read_lesson
from mlp_demo.server.links import to_query
from mlp_demo.server.session import Session, SessionError

from . import server
from .server import show_message, user_action

REFRESH_S = 3.0
LEADERBOARD_ROWS = 20  # on the projector; more would push the curves off the screen
HANDWRITING_REFRESH_S = 10.0  # the teacher's contact sheet: an image of up to 2,000 drawings
# Static CSS, no visitor data: a projector needs type readable from the back of the hall.
BIG_TYPE = """<style>
.stMainBlockContainer { max-width: 1600px; }
.stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label { font-size: 1.35rem; }
.stMainBlockContainer table th, .stMainBlockContainer table td { font-size: 1.35rem; line-height: 1.4; }
.stMainBlockContainer [data-testid="stSelectbox"] :is(input, div, span) { font-size: 1.35rem !important; }
.stMainBlockContainer p.board-join { font-size: 2.4rem; font-weight: 600; overflow-wrap: anywhere; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 3.2rem !important; }
</style>"""


def board_page() -> None:
    me = server.session()
    server.stop_on_a_foreign_database()
    server.read_teacher_key(me)
    server.heartbeat()
    st.html(BIG_TYPE)
    st.title("Class board")
    code = st.query_params.get("class") or ""
    if me.membership.classes is None:
        st.error("The class board's database does not answer; this page tries again by itself.")
    st.fragment(run_every=REFRESH_S)(board_view)(me, code[:40])
    key = me.membership.teacher_key(code[:40])
    if me.membership.classes is not None and key is not None:
        st.fragment(lesson_editor)(me, code[:40], key)  # never refreshed: that would close its lists
        st.fragment(run_every=HANDWRITING_REFRESH_S)(handwriting_sheet)(me, code[:40], key)
    elif me.membership.classes is not None:  # the key lives in the tab, never in the address bar
        st.caption("Teaching this class? The controls come with your teacher link: after a reload, "
                   "open it again.")
    st.link_button("Back to the app", "./")


def board_view(me: Session, code: str) -> None:
    if me.membership.classes is None:
        return
    key = me.membership.teacher_key(code)
    try:
        board = me.membership.board(code)
    except SessionError as e:
        st.info(str(e))
        return
    shown = dataclasses.replace(board, entries=[e for e in board.entries if not e.hidden])
    counts(shown, teacher=key is not None)
    if not shown.entries:
        st.caption("No runs yet: they appear here as students finish them.")
    else:
        scatter(shown)
        handwriting_scatter(shown)
        # HTML tables, not st.dataframe: a canvas grid keeps its small type on a projector and
        # cuts long cells; these take the board's type and wrap.
        with st.container(key="board_leaders"):
            st.subheader("Leaderboard")
            rows = leaderboard_rows(shown)
            st.table(as_cells(rows[:LEADERBOARD_ROWS]), hide_index=True)
            if len(rows) > LEADERBOARD_ROWS:
                st.caption(f"The best {LEADERBOARD_ROWS} of {len(rows)} runs; the teacher's CSV "
                           "has them all.")
        with st.container(key="board_groups"):
            st.subheader("What each group changed" + (" from the lesson" if shown.lesson else
                                                      " from Default"))
            st.table(as_cells(group_rows(shown)), hide_index=True)
        st.subheader("Everyone's validation curves")
        curves = [(f"{e.name} #{e.id}", e.curves.get("val_acc") or e.curves.get("test_acc") or [])
                  for e in shown.entries if e.kind == "training"]
        st.plotly_chart(board_curves(curves), key="board_curves", config={"displayModeBar": False},
                        theme=None)
        one_run(me, shown)
    if key is not None:
        teacher_controls(me, board, key)


def as_cells(rows: list[dict]) -> list[dict]:
    """st.table reads a cell's text as Markdown: names are escaped to show exactly as typed."""
    return [{k: server.as_text(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def counts(board: Board, teacher: bool = False) -> None:
    students, runs, drawings, state = st.columns(4)
    students.metric("Students joined", board.students)
    runs.metric("Runs in", len(board.entries))
    drawings.metric("Class handwriting", board.handwriting_n,
                    help="Drawings the students gave: every run is scored on them as it ends.")
    state.metric("Class", board.code)
    join = str(st.context.url or "").split("?")[0] + f"?class={board.code}"
    st.caption(counts_line(board))
    if st.session_state.get("board_qr", True):  # the teacher may hide it (teacher_controls)
        qr, link = st.columns([1, 3], vertical_alignment="center")
        qr.image(join_qr_png(join), width=260, alt=f"QR code of the join link {join}")
        link.markdown("Join the class: scan the code, or open")
        link.html(f'<p class="board-join">{html.escape(join)}</p>')  # large; escaped, though
        # the address is the server's own and the code is checked
    else:
        st.markdown(f"Join at {join}")  # not in the caption: a faded link is unreadable at the back
    if board.lesson:
        st.info(f"Lesson: {board.lesson.describe()}.", icon=":material/school:")
    elif board.lesson.problem and teacher:
        st.warning(f"Note: {board.lesson.problem}.")
    if board.locked:
        st.warning("The teacher has locked the class: it takes no new runs.")


def scatter(board: Board) -> None:
    x_col, colour_col, teach_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    x = x_col.selectbox("Setting", SCATTER_SETTINGS, key="board_x", format_func=setting_name)
    colour = colour_col.selectbox("Colour by", SCATTER_SETTINGS, index=SCATTER_SETTINGS.index("optimizer"),
                                  key="board_colour", format_func=setting_name)
    teaching = teach_col.toggle("Teaching runs", key="board_teaching",
                                help="Teaching runs fine-tune a trained model: off the scatter "
                                     "unless chosen.")
    points = scatter_points(board, x, colour, teaching)
    figure = board_scatter(points, setting_name(x), setting_name(colour), x in LOG_SETTINGS)
    st.plotly_chart(figure, key="board_scatter", config={"displayModeBar": False},
                    theme=None)  # its own large type


def handwriting_scatter(board: Board) -> None:
    """MNIST's test accuracy against the class's handwriting: does a run that reads MNIST well
    read this room's writing as well?"""
    points = handwriting_points(board)
    if not points:
        st.caption("Class handwriting: no run has been scored on it yet (students add their "
                   "labelled drawings under Your examples in the app).")
        return
    st.subheader("MNIST against the class's handwriting")
    st.plotly_chart(board_accuracies(points), key="board_handwriting",
                    config={"displayModeBar": False}, theme=None)


def one_run(me: Session, board: Board) -> None:
    entries = {e.id: e for e in board.entries}
    with st.expander("One run: its settings, its loss and a link to try them", expanded=False):
        chosen = st.selectbox("Run", list(entries), key="board_run",
                              format_func=lambda i: f"#{i} {entries[i].name}")
        entry = entries[chosen]
        settings, loss = st.columns(2)
        settings.json(entry.settings, expanded=True)  # rendered as data, never as markup
        curve = me.membership.loss_curve(board.code, entry.id)
        if curve:
            x = "epoch" if entry.kind == "training" else "step"
            loss.line_chart({x: [p[0] for p in curve], "loss": [p[1] for p in curve]}, x=x, y="loss",
                            height=260)
        link = settings_link(entry)
        if link:
            st.caption("Open the app with these settings:")
            st.code(link, language=None, wrap_lines=True)


def settings_link(entry: Entry) -> str | None:
    if entry.kind != "training":
        return None
    try:
        config = TrainConfig.from_dict(entry.settings)
    except (ValueError, TypeError):
        return None
    base = str(st.context.url or "").split("?")[0]
    return f"{base}?{urllib.parse.urlencode(to_query(config, 'default'))}"


@user_action("board")
def hide_entries(me: Session, code: str, hidden: bool) -> None:
    me.membership.hide(code, st.session_state.get("board_hide") or [], hidden)
    st.session_state.board_hide = []


@user_action("board")
def set_locked(me: Session, code: str) -> None:
    me.membership.set_locked(code, bool(st.session_state.get("board_lock")))


@user_action("board")
def clear_board(me: Session, code: str) -> None:
    me.membership.clear(code)
    me.say("board", "success", "The board is cleared; students stay joined.")


@user_action("board")
def close_class(me: Session, code: str) -> None:
    me.membership.close(code)
    me.say("board", "success", "The class is closed and its data deleted.")


def teacher_controls(me: Session, board: Board, key: str) -> None:
    st.divider()
    st.subheader("Teacher")
    show_message(me, "board")
    entries = {e.id: e for e in board.entries}
    if entries:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.multiselect("Entries", list(entries), key="board_hide",
                           format_func=lambda i: f"#{i} {entries[i].name}"
                                                 + (" (hidden)" if entries[i].hidden else ""))
            st.button("Hide", on_click=hide_entries, args=(board.code, True))
            st.button("Show", on_click=hide_entries, args=(board.code, False))
    else:  # an empty, greyed-out list would be unreadable, and there is nothing to hide
        st.caption("No runs yet: any run can be hidden from the board once it is in.")
    st.toggle("Show the join link's QR code on the board", value=True, key="board_qr")
    st.session_state.board_lock = board.locked
    st.toggle("Locked: take no new runs", key="board_lock", on_change=set_locked,
              args=(board.code,))
    with st.container(horizontal=True):
        st.download_button("Board as CSV", lambda: me.membership.to_csv(board.code),
                           file_name=f"class-{board.code}.csv", mime="text/csv", on_click="ignore")
        confirm = st.checkbox("I mean it", key="board_confirm")
        st.button("Clear the board", disabled=not confirm, on_click=clear_board,
                  args=(board.code,))
        st.button("Close the class", disabled=not confirm, on_click=close_class,
                  args=(board.code,))


@user_action("lesson")
def save_lesson(me: Session, code: str) -> None:
    locked = st.session_state.get("lesson_lock") or []
    lesson = read_lesson({name: st.session_state.get(f"lesson_value_{name}", "") for name in locked},
                         st.session_state.get("lesson_hide") or [], server.limits())
    me.membership.set_lesson(code, lesson)
    me.say("lesson", "success", f"Saved: {lesson.describe() or 'the class may change everything'}."
           " Students' sidebars follow at their next click.")


@user_action("handwriting")
def clear_handwriting(me: Session, code: str) -> None:
    me.membership.clear_handwriting(code)
    me.say("handwriting", "success", "The class's handwriting is cleared.")


def lesson_editor(me: Session, code: str, key: str) -> None:
    """The teacher's lesson: settings locked or hidden for every student."""
    try:
        lesson, defaults = me.membership.class_lesson(code)
    except SessionError:
        return
    show_message(me, "lesson")
    with st.expander("Lesson: what the class may change", expanded=bool(lesson)):
        st.caption("Lock settings at a value (students see them, disabled) and hide others "
                   "(students do not see them; they keep the class's Default). A run that differs "
                   "is refused. Values as in a settings link: 0.001, 128-64, true.")
        lesson_form(lesson, defaults)
        st.button("Save the lesson", on_click=save_lesson, args=(code,))


def handwriting_sheet(me: Session, code: str, key: str) -> None:
    """The class's handwriting as a contact sheet, for the teacher only."""
    try:
        found = me.membership.handwriting_set(code)
    except SessionError:
        return
    show_message(me, "handwriting")
    with st.expander("The class's handwriting", expanded=False):
        st.caption(f"{len(found)} drawings the students gave; every run on the board is scored "
                   "on them as it ends.")
        if len(found):
            per_digit = np.bincount(found.labels, minlength=10)
            st.image(sheet_png(found.images, tuple(found.labels)),
                     alt=f"The class's {len(found)} handwritten digits, each with its label",
                     caption=f"{len(found)} drawings · " + " · ".join(
                         f"{d}: {n}" for d, n in enumerate(per_digit)))
        else:
            st.caption("None yet: students add their labelled drawings under Your examples in the app.")
        confirm = st.checkbox("I mean it", key="handwriting_confirm")
        st.button("Clear the class's handwriting", disabled=not (confirm and len(found)),
                  on_click=clear_handwriting, args=(code,))


@functools.lru_cache(maxsize=8)
def sheet_png(images: bytes, labels: tuple[int, ...]) -> bytes:
    """A handwriting set's contact sheet as a PNG: drawn once per set, not on every 10 s
    refresh (2,000 captioned thumbnails)."""
    drawings = np.frombuffer(images, np.uint8).reshape(-1, 28, 28) / 255.0
    out = io.BytesIO()
    Image.fromarray(contact_sheet(list(drawings), [str(y) for y in labels], columns=25)).save(out, "PNG")
    return out.getvalue()


def lesson_form(lesson: Lesson, defaults: dict) -> None:
    st.session_state.setdefault("lesson_lock", list(lesson.lock))
    st.session_state.setdefault("lesson_hide", list(lesson.hide))
    locked = st.multiselect("Lock", LESSON_SETTINGS, key="lesson_lock", format_func=setting_name)
    for name in locked:
        st.session_state.setdefault(f"lesson_value_{name}",
                                    as_text(name, lesson.lock.get(name, defaults.get(name))))
        st.text_input(f"{setting_name(name).capitalize()} locked at", key=f"lesson_value_{name}",
                      max_chars=100)
    st.multiselect("Hide", LESSON_SETTINGS, key="lesson_hide", format_func=setting_name)
