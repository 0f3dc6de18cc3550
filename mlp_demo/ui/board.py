"""The class board, for the projector (`?class=CODE&view=board`): large type, refreshed every
3 s without a reload. It reads classes.py and renders nothing else. With the teacher's key in
the session (from the teacher link), the teacher's controls follow the board."""

from __future__ import annotations

import dataclasses
import functools
import io
import urllib.parse

import numpy as np
import streamlit as st
from PIL import Image

from mlp_demo.classes import (
    LOG_SETTINGS,
    SCATTER_SETTINGS,
    Board,
    ClassError,
    Entry,
    groups,
    leaderboard,
    setting_value,
)
from mlp_demo.config import TrainConfig
from mlp_demo.lessons import LESSON_SETTINGS, Lesson, as_text, label, read_lesson
from mlp_demo.links import to_query
from mlp_demo.plots import board_accuracies, board_curves, board_scatter, contact_sheet
from mlp_demo.session import Session

from . import server
from .server import show_message, user_action

REFRESH_S = 3.0
HANDWRITING_REFRESH_S = 10.0  # the teacher's contact sheet: an image of up to 2,000 drawings
# Static CSS, no visitor data: a projector needs type readable from the back of the hall.
BIG_TYPE = """<style>
.stMainBlockContainer { max-width: 1600px; }
.stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label { font-size: 1.35rem; }
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
    if me.classes is None:
        st.error("The class board's database does not answer; this page tries again by itself.")
    st.fragment(run_every=REFRESH_S)(board_view)(me, code[:40])
    key = me.teacher_key(code[:40])
    if me.classes is not None and key is not None:
        st.fragment(lesson_editor)(me, code[:40], key)  # never refreshed: that would close its lists
        st.fragment(run_every=HANDWRITING_REFRESH_S)(handwriting_sheet)(me, code[:40], key)
    st.link_button("Back to the app", "./")


def board_view(me: Session, code: str) -> None:
    if me.classes is None:
        return
    key = me.teacher_key(code)
    try:
        board = me.classes.board(code, include_hidden=key is not None, visitor=me.visitor)
    except ClassError as e:
        st.info(str(e))
        return
    shown = dataclasses.replace(board, entries=[e for e in board.entries if not e.hidden])
    counts(shown, teacher=key is not None)
    if not shown.entries:
        st.caption("No runs yet: they appear here as students finish them.")
    else:
        scatter(shown)
        handwriting_scatter(shown)
        left, right = st.columns(2, gap="large")
        with left.container(key="board_leaders"):
            st.subheader("Leaderboard")
            st.dataframe(leaderboard_rows(shown), hide_index=True,
                         column_config={c: st.column_config.NumberColumn(format="percent")
                                        for c in ("test accuracy", "class handwriting",
                                                  "validation accuracy")})
        with right.container(key="board_groups"):
            st.subheader("What each group changed from Default")
            st.dataframe(group_rows(shown), hide_index=True,
                         column_config={"best test accuracy": st.column_config.NumberColumn(
                             format="percent")})
        st.subheader("Everyone's validation curves")
        curves = [(f"{e.name} #{e.id}", e.curves.get("val_acc") or e.curves.get("test_acc") or [])
                  for e in shown.entries if e.kind == "training"]
        st.plotly_chart(board_curves(curves), key="board_curves", config={"displayModeBar": False},
                        theme=None)
        one_run(me, shown)
    if key is not None:
        teacher_controls(me, board, key)


def counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def counts(board: Board, teacher: bool = False) -> None:
    students, runs, drawings, state = st.columns(4)
    students.metric("Students joined", board.students)
    runs.metric("Runs in", len(board.entries))
    drawings.metric("Class handwriting", board.handwriting_n,
                    help="Drawings the students gave: every run is scored on them as it ends.")
    state.metric("Class", board.code)
    join = str(st.context.url or "").split("?")[0] + f"?class={board.code}"
    st.caption(f"{counted(len(board.entries), 'run')} in · {counted(board.students, 'student')} · "
               f"{counted(board.handwriting_n, 'drawing')} in the class's handwriting")
    st.markdown(f"Join at {join}")  # not in the caption: a faded link is unreadable at the back
    if board.lesson:
        st.info(f"Lesson: {board.lesson.describe()}.", icon=":material/school:")
    elif board.lesson.problem and teacher:
        st.warning(f"Note: {board.lesson.problem}.")
    if board.locked:
        st.warning("The teacher has locked the class: it takes no new runs.")


def scatter(board: Board) -> None:
    x_col, colour_col, teach_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    x = x_col.selectbox("Setting", SCATTER_SETTINGS, key="board_x")
    colour = colour_col.selectbox("Colour by", SCATTER_SETTINGS, index=SCATTER_SETTINGS.index("optimizer"),
                                  key="board_colour")
    teaching = teach_col.toggle("Teaching runs", key="board_teaching",
                                help="Teaching runs fine-tune a trained model: off the scatter "
                                     "unless chosen.")
    points = [{"x": setting_value(e, x), "y": e.test_acc, "colour": setting_value(e, colour),
               "label": f"{e.name} (#{e.id})"}
              for e in board.entries if (e.kind == "training" or teaching)
              and e.test_acc is not None and setting_value(e, x) is not None]
    st.plotly_chart(board_scatter(points, x, colour, x in LOG_SETTINGS), key="board_scatter",
                    config={"displayModeBar": False}, theme=None)  # its own large type


def handwriting_scatter(board: Board) -> None:
    """MNIST's test accuracy against the class's handwriting: does a run that reads MNIST well
    read this room's writing as well?"""
    points = [{"x": e.test_acc, "y": e.handwriting_acc, "label": f"{e.name} (#{e.id})",
               "n": e.handwriting_n} for e in board.entries
              if e.test_acc is not None and e.handwriting_acc is not None]
    if not points:
        st.caption("Class handwriting: no run has been scored on it yet (students add their "
                   "labelled drawings under Your examples in the app).")
        return
    st.subheader("MNIST against the class's handwriting")
    st.plotly_chart(board_accuracies(points), key="board_handwriting",
                    config={"displayModeBar": False}, theme=None)


def leaderboard_rows(board: Board) -> list[dict]:
    changed = {e.id: ", ".join(change) or "nothing (Default)"
               for change, members in groups(board).items() for e in members}
    return [{"#": rank, "name": e.name, "test accuracy": e.test_acc,
             "class handwriting": e.handwriting_acc, "drawings": e.handwriting_n,
             "validation accuracy": e.val_acc,
             "seconds": round(e.seconds, 1), "changed": changed[e.id], "status": e.status,
             "run": e.id}
            for rank, e in enumerate(leaderboard(board), start=1)]


def group_rows(board: Board) -> list[dict]:
    rows = []
    for change, members in groups(board).items():
        best = max((e.test_acc for e in members if e.test_acc is not None), default=None)
        tried = "; ".join(f"{name}: " + ", ".join(sorted({_show(setting_value(e, name)) for e in members}))
                          for name in change if name != "teaching")
        rows.append({"changed": ", ".join(change) or "nothing (Default)", "runs": len(members),
                     "best test accuracy": best, "values tried": tried[:200]})
    return rows


def one_run(me: Session, board: Board) -> None:
    entries = {e.id: e for e in board.entries}
    with st.expander("One run: its settings, its loss and a link to try them", expanded=False):
        chosen = st.selectbox("Run", list(entries), key="board_run",
                              format_func=lambda i: f"#{i} {entries[i].name}")
        entry = entries[chosen]
        settings, loss = st.columns(2)
        settings.json(entry.settings, expanded=True)  # rendered as data, never as markup
        curve = me.classes.loss_curve(board.code, entry.id)
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
def hide_entries(me: Session, code: str, key: str, hidden: bool) -> None:
    for entry_id in st.session_state.get("board_hide") or []:
        me.classes.hide(code, key, entry_id, hidden)
    st.session_state.board_hide = []


@user_action("board")
def set_locked(me: Session, code: str, key: str) -> None:
    me.classes.set_locked(code, key, bool(st.session_state.get("board_lock")))


@user_action("board")
def clear_board(me: Session, code: str, key: str) -> None:
    me.classes.clear(code, key)
    me.say("board", "success", "The board is cleared; students stay joined.")


@user_action("board")
def close_class(me: Session, code: str, key: str) -> None:
    me.classes.close(code, key)
    me.teacher_keys.pop(code, None)
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
            st.button("Hide", on_click=hide_entries, args=(board.code, key, True))
            st.button("Show", on_click=hide_entries, args=(board.code, key, False))
    else:  # an empty, greyed-out list would be unreadable, and there is nothing to hide
        st.caption("No runs yet: any run can be hidden from the board once it is in.")
    st.session_state.board_lock = board.locked
    st.toggle("Locked: take no new runs", key="board_lock", on_change=set_locked,
              args=(board.code, key))
    with st.container(horizontal=True):
        st.download_button("Board as CSV", lambda: me.classes.to_csv(board.code, key),
                           file_name=f"class-{board.code}.csv", mime="text/csv", on_click="ignore")
        confirm = st.checkbox("I mean it", key="board_confirm")
        st.button("Clear the board", disabled=not confirm, on_click=clear_board,
                  args=(board.code, key))
        st.button("Close the class", disabled=not confirm, on_click=close_class,
                  args=(board.code, key))


@user_action("lesson")
def save_lesson(me: Session, code: str, key: str) -> None:
    locked = st.session_state.get("lesson_lock") or []
    lesson = read_lesson({name: st.session_state.get(f"lesson_value_{name}", "") for name in locked},
                         st.session_state.get("lesson_hide") or [], server.limits())
    me.classes.set_lesson(code, key, lesson)
    me.say("lesson", "success", f"Saved: {lesson.describe() or 'the class may change everything'}."
           " Students' sidebars follow at their next click.")


@user_action("handwriting")
def clear_handwriting(me: Session, code: str, key: str) -> None:
    me.classes.clear_handwriting(code, key)
    me.say("handwriting", "success", "The class's handwriting is cleared.")


def lesson_editor(me: Session, code: str, key: str) -> None:
    """The teacher's lesson: settings locked or hidden for every student."""
    try:
        lesson, defaults = me.classes.lesson(code)
    except ClassError:
        return
    show_message(me, "lesson")
    with st.expander("Lesson: what the class may change", expanded=bool(lesson)):
        st.caption("Lock settings at a value (students see them, disabled) and hide others "
                   "(students do not see them; they keep the class's Default). A run that differs "
                   "is refused. Values as in a settings link: 0.001, 128-64, true.")
        lesson_form(lesson, defaults)
        st.button("Save the lesson", on_click=save_lesson, args=(code, key))


def handwriting_sheet(me: Session, code: str, key: str) -> None:
    """The class's handwriting as a contact sheet, for the teacher only."""
    try:
        found = me.classes.handwriting_set(code)
    except ClassError:
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
                  on_click=clear_handwriting, args=(code, key))


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


def setting_name(name: str) -> str:
    return label(name).removeprefix("the ")


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
