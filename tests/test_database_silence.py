"""A database that accepts connections but stops answering (issue 34): every call returns or
fails while it is still silent, the next ones fail at once, and all is well once it answers
again. Against a real PostgreSQL, through a proxy that can go silent."""

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from mlp_demo.server import db
from mlp_demo.server.classes import DATABASE_DOWN, ClassError, Classes
from mlp_demo.server.limits import Limits

SILENCE_S = 120  # far longer than any deadline: only a call that waits for the database exceeds it


class SilentProxy:
    """A TCP proxy that forwards until silence(), then holds every byte (the connections stay
    open, nothing is refused) until speak(): a stalled network or a frozen server."""

    def __init__(self, host: str, port: int):
        self.upstream, self.quiet = (host, port), threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while data := source.recv(65536):
                while self.quiet.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass

    def silence(self):
        self.quiet.set()

    def speak(self):
        self.quiet.clear()


def within(seconds: float, call):
    """call()'s outcome, if it comes in time: ("ok", value) or ("error", exception)."""
    outcome = []

    def run():
        try:
            outcome.append(("ok", call()))
        except Exception as e:
            outcome.append(("error", e))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting for the silent database after {seconds} s"
    return outcome[0]


@pytest.fixture
def silent_db(postgres_server, monkeypatch):
    monkeypatch.setattr(db, "QUIET_AFTER_SILENCE_S", 3.0)
    parts = urlsplit(postgres_server)
    proxy = SilentProxy(parts.hostname, parts.port)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    engine = db.connect(urlunsplit(parts._replace(netloc=netloc)))
    yield proxy, Classes(engine, Limits())
    proxy.speak()
    engine.dispose()


def test_a_silent_database_fails_calls_while_it_is_silent_and_recovers(silent_db):
    proxy, classes = silent_db
    new = classes.create()
    assert classes.board(new.code).code == new.code
    proxy.silence()
    silence_ends = time.monotonic() + SILENCE_S
    kind, error = within(SILENCE_S / 2, lambda: classes.board(new.code))
    assert kind == "error" and isinstance(error, ClassError) and str(error) == DATABASE_DOWN
    started = time.monotonic()
    kind, error = within(SILENCE_S / 2, lambda: classes.create())  # quiet: not asked again
    assert kind == "error" and str(error) == DATABASE_DOWN
    assert time.monotonic() - started < db.STATEMENT_DEADLINE_S  # at once, not another deadline
    assert time.monotonic() < silence_ends  # all of it while the database was still silent
    proxy.speak()
    deadline = time.monotonic() + 60
    while True:  # once the quiet period is over, the next call reaches it again
        kind, found = within(30, lambda: classes.board(new.code))
        if kind == "ok":
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert found.code == new.code


def test_a_page_run_while_the_database_is_silent_finishes_and_the_run_is_posted_after(
        postgres_server, monkeypatch, tiny_root, tmp_path):
    """The app itself (AppTest) on a database behind the proxy: a student in a class trains;
    the database goes silent; page runs finish and say so while it is still silent, and the run
    that finished meanwhile is on the board once it answers."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    from test_app import APP, button, set_tiny_run, wait_until_done

    monkeypatch.setattr(db, "QUIET_AFTER_SILENCE_S", 3.0)
    parts = urlsplit(postgres_server)
    proxy = SilentProxy(parts.hostname, parts.port)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("MLP_DEMO_DATABASE_URL", urlunsplit(parts._replace(netloc=netloc)))
    monkeypatch.setenv("MNIST_ROOT", str(tiny_root))
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    st.cache_resource.clear()
    try:
        student = AppTest.from_file(APP, default_timeout=60).run()
        button(student, "Start a class").click().run()
        (code, _), = student.session_state["session"].membership.teacher_keys.items()
        student.text_input(key="class_code").input(code)
        student.text_input(key="class_name").input("Ana")
        next(b for b in student.button if b.label == "Join").click().run()
        set_tiny_run(student)
        proxy.silence()
        silence_ends = time.monotonic() + SILENCE_S
        button(student, "Train").click()
        within(SILENCE_S / 2, student.run)  # the page run finishes while the database is silent
        wait_until_done(student)
        kind, _ = within(SILENCE_S / 2, student.run)
        assert kind == "ok" and not student.exception
        said = [m.value for m in (*student.info, *student.error, *student.warning)]
        assert any("database is not answering" in m for m in said), said
        assert time.monotonic() < silence_ends  # all of it while the database was still silent
        proxy.speak()
        classes = student.session_state["session"].membership.classes
        deadline = time.monotonic() + 90
        while True:  # the page's heartbeat posts it, once the quiet period is over
            student.run()
            try:
                if classes.board(code).entries:
                    break
            except ClassError:
                pass
            assert time.monotonic() < deadline, "the run never reached the board"
            time.sleep(1)
        assert [e.name for e in classes.board(code).entries] == ["Ana"]
    finally:
        proxy.speak()
        st.cache_resource.clear()
