"""The class, on the main page: a student joins with the code (or the join link) and a name;
a teacher starts a class and gets the join link, its QR code and the teacher link."""

from __future__ import annotations

import streamlit as st

from mlp_demo import web
from mlp_demo.server.board import join_qr_png
from mlp_demo.server.classes import MAX_NAME, NewClass
from mlp_demo.server.session import Session, SessionError

from .server import show_message, user_action

# The seat a student's browser keeps across reloads (mlp_demo/web/seat.js): nothing to see.
_seat = st.components.v2.component("mlp_demo.seat", html="<span hidden></span>",
                                   js=web.text("seat.js"), isolate_styles=False)
UNAVAILABLE = ("Class boards are unavailable on this server right now (their database does not "
               "answer); training and drawing work as usual.")


@user_action("class", "Not joined: ")
def join(me: Session) -> None:
    me.say("class", "success", me.membership.join(st.session_state.get("class_code") or "",
                                                  st.session_state.get("class_name") or ""))


@user_action("class")
def leave(me: Session) -> None:
    me.membership.leave()


@user_action("class", "Not withdrawn: ")
def withdraw(me: Session) -> None:
    me.membership.withdraw(st.session_state.get("class_withdraw"))
    me.say("class", "success", "Taken off the board.")


@user_action("class", "Not taken out: ")
def withdraw_handwriting(me: Session) -> None:
    me.say("class", "success", me.membership.withdraw_handwriting())


@user_action("teacher", "No class started: ")
def start_class(me: Session) -> None:
    me.membership.start_class()


def base_url() -> str:
    return str(st.context.url or "").split("?")[0]


def keep_seat(me: Session) -> None:
    """Tell the browser which seat to keep, and take back the seat it kept after a reload. A
    seat taken back reruns the page, so the sidebar is drawn again under the class's lesson."""
    member = me.membership
    result = _seat(key="seat", data=member.for_browser(), default={"kept": None},
                   on_kept_change=lambda: None)
    kept = result.get("kept")
    if kept and member.seat is None:
        member.from_browser(kept)
        if member.seat is not None:
            st.rerun()


def class_section(me: Session) -> None:
    st.subheader("Class")
    keep_seat(me)
    show_message(me, "class")
    if me.membership.classes is None:
        st.caption(UNAVAILABLE)
        return
    student, teacher = st.columns(2, gap="large")
    with student:
        if me.membership.seat:
            seat(me)
        else:
            join_form()
    with teacher:
        teacher_panel(me)


def join_form() -> None:
    invited = st.query_params.get("class")
    st.markdown("**Join your class**")
    st.caption("Your teacher shows a code (or a QR code). Every run you finish in this tab then "
               "goes on the class board, beside everyone else's.")
    if invited is not None and "class_code" not in st.session_state:
        st.session_state.class_code = invited[:40]
    with st.form("join", border=False):
        st.text_input("Class code", key="class_code", max_chars=40, placeholder="e.g. K7QM4XR2P")
        st.text_input("Your name on the board", key="class_name", max_chars=MAX_NAME,
                      placeholder="a first name or a nickname")
        st.form_submit_button("Join", type="primary", on_click=join)


def seat(me: Session) -> None:
    member = me.membership.seat
    st.markdown(f"**Class {member.code}**")  # a code is nine letters and digits, checked
    st.text(f"Your name on the board: {member.name}")  # plain text, never markup
    st.link_button("Open the class board", f"{base_url()}?class={member.code}&view=board")
    posted = {run.number: run for run in me.history.runs if run.number in member.posted}
    if posted:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.selectbox("Your runs on the board", list(posted), key="class_withdraw",
                         format_func=lambda n: posted[n].name)
            st.button("Withdraw", on_click=withdraw)
    else:
        st.caption("Finish (or stop) a run: it goes on the board by itself.")
    handwriting(me)
    st.button("Leave the class", on_click=leave,
              help="Runs you finish from now on stay off the board; those on it stay.")


def handwriting(me: Session) -> None:
    """Giving Your examples to the class's handwriting set: the student's choice, each time."""
    try:
        mine, total = me.membership.handwriting_counts()
    except SessionError:
        return
    st.markdown("**The class's handwriting**")
    st.caption(f"{total} drawings from the class so far, {mine} of them yours. Every run on the "
               "board is scored on them beside MNIST: how well it reads this room's writing. "
               "Add yours under Your examples (label drawings under the prediction first). Only "
               "the teacher sees the drawings; your name is not shown with them.")
    st.button("Take mine out", disabled=not mine, on_click=withdraw_handwriting)


def teacher_panel(me: Session) -> None:
    st.markdown("**Start a class**")
    st.caption("For a teacher: no account needed. The class gets a join code for the projector "
               "and a board where every student's runs appear.")
    show_message(me, "teacher")
    st.button("Start a class", icon=":material/groups:", on_click=start_class)
    for code, key in me.membership.teacher_keys.items():
        class_card(NewClass(code, key))


def class_card(new: NewClass) -> None:
    join_url, teacher_url = base_url() + new.join_path, base_url() + new.teacher_path
    st.markdown(f"### Class code: {new.code}")
    qr, links = st.columns([1, 2])
    qr.image(join_qr_png(join_url), caption="Join link as a QR code", width=200,
             alt=f"QR code of the join link {join_url}")
    with links:
        st.caption("Join link, for the students (on the projector):")
        st.code(join_url, language=None, wrap_lines=True)
        st.caption("Teacher link: the board with your controls (hide, lock, clear, close). "
                   "Keep it to yourself.")
        st.code(teacher_url, language=None, wrap_lines=True)
        st.link_button("Open the board", teacher_url)


