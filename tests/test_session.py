"""A visitor's flows as plain calls on a Session: no AppTest, no browser."""

import threading
import time

import numpy as np
import pytest
import torch

from mlp_demo import checkpoints
from mlp_demo.checkpoints import DEFAULT_CHECKPOINT
from mlp_demo.config import TrainConfig
from mlp_demo.drawing import preprocess
from mlp_demo.server.limits import Limits, RunQueue
from mlp_demo.server.session import LIVE, SHIPPED, Session, SessionError
from mlp_demo.server.store import ModelStore
from mlp_demo.teach import TeachConfig

from helpers import drawn, png_data_url

TINY = TrainConfig(hidden=(32,), epochs=1, batch_size=32, val_size=100, device="cpu")
ENDLESS = TINY.replace(epochs=200, batch_size=16)


@pytest.fixture
def limits():
    return Limits()


@pytest.fixture
def session(tmp_path, tiny_raw, limits):
    queue = RunQueue(limits)
    store = ModelStore(tmp_path, limits, shipped=DEFAULT_CHECKPOINT)
    me = Session("visitor-a", queue, store, limits, lambda: tiny_raw)
    yield me
    me.stop()


def wait_until_ended(me: Session, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while me.job.active:
        assert time.monotonic() < end, "the run did not end"
        time.sleep(0.05)


def wait_for_step(me: Session, step: int = 1, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while me.job.snapshot().progress.step < step:
        assert time.monotonic() < end, "the run did not start"
        time.sleep(0.05)


def test_train_then_stop(session):
    assert session.train(ENDLESS) == []
    assert session.chosen == LIVE and session.job.active
    wait_for_step(session)
    with pytest.raises(SessionError, match="already has a run"):
        session.train(TINY)
    session.stop()
    assert not session.job.active and session.job.status == "stopped"
    assert session.history.latest.name == "Run 1" and session.model() is not None


def test_a_finished_run_can_be_saved_and_chosen(session):
    session.train(TINY)
    wait_until_ended(session)
    assert session.job.status == "finished"
    path = session.save("Run 1", "tiny-one")
    assert checkpoints.read_info(path).own_name == "tiny-one"
    assert session.store.owner("tiny-one") == "visitor-a"
    assert any(label.startswith("Saved: tiny-one") for label in session.choices())


def test_label_three_drawings_teach_and_read_before_and_after(session):
    for shape in ("1", "0", "7"):
        field = preprocess(drawn(shape))
        session.add_example(field, 3)  # all labelled 3: the model must change its mind
    assert [e.label for e in session.examples] == [3, 3, 3]
    assert session.teach(TeachConfig(steps=60, lr=2e-3)) == []
    assert session.history.latest.name == "Run 1: taught" and session.chosen == LIVE
    wait_until_ended(session)
    h = session.job.snapshot()
    assert h.status == "finished", h.message
    assert h.kind == "teaching" and h.x_axis == "step" and h.settings["steps"] == 60
    result = h.teach
    assert result["examples_accuracy_after"] > result["examples_accuracy_before"]
    assert result["after"] == [3, 3, 3]
    assert session.predict(png_data_url(drawn("0"))).digit == 3  # the taught model answers the pad
    assert session.job.model_config.hidden == session.store.model(
        session.store.listing().models[0]).config.hidden  # it keeps the shipped architecture


def test_teaching_from_the_cached_shipped_model_leaves_it_read_only(session):
    shipped = session.store.model(session.store.listing().models[0])
    assert shipped is session.store.model(session.store.listing().models[0])  # one for everyone
    assert not shipped.training and not any(p.requires_grad for p in shipped.parameters())
    before = {k: v.clone() for k, v in shipped.state_dict().items()}
    session.choose(SHIPPED + next(iter(session.choices()))[len(SHIPPED):])
    session.add_example(preprocess(drawn("1")), 7)
    session.teach(TeachConfig(steps=20))
    wait_until_ended(session)
    assert session.job.status == "finished", session.job.snapshot().message
    assert all(torch.equal(before[k], v) for k, v in shipped.state_dict().items())
    assert not shipped.training and all(p.grad is None for p in shipped.parameters())


def test_remove_and_rename(session):
    for label in (1, 2, 3):
        session.add_example(preprocess(drawn("1")) * (0.5 + label / 10), label)
    session.remove_examples([1])
    assert [e.label for e in session.examples] == [1, 3]
    session.clear_examples()
    assert session.examples == []
    session.train(TINY)
    wait_until_ended(session)
    session.train(TINY.replace(lr=0.01))
    wait_until_ended(session)
    session.rename(2, "  lr   0.01 ")
    assert session.history.get(2).name == "lr 0.01"
    with pytest.raises(SessionError, match="already called"):
        session.rename(1, "lr 0.01")
    with pytest.raises(SessionError, match="empty"):
        session.rename(1, "   ")
    with pytest.raises(SessionError, match="no longer kept"):
        session.rename(99, "ghost")


def test_choose_each_kind_of_model(session, tmp_path):
    from helpers import crafted
    crafted(tmp_path / "saved.safetensors", {"metrics": '{"test_acc": 0.5}'})
    session.store.import_unknown_files()  # what a restart does with a file copied in
    session.train(TINY)
    wait_until_ended(session)
    session.train(TINY.replace(lr=0.01))
    wait_until_ended(session)
    choices = session.choices()
    kinds = {"shipped": SHIPPED, "saved": "Saved: saved", "run": "Run 1", "live": LIVE}
    drawing = png_data_url(drawn("1"))
    for kind, prefix in kinds.items():
        label = next(c for c in choices if c.startswith(prefix))
        session.choose(label)
        assert session.chosen_label() == label, kind
        assert session.model() is not None, kind
        assert session.predict(drawing).probs.shape == (10,), kind
    with pytest.raises(SessionError, match="no longer listed"):
        session.choose("Saved: nothing like it")
    (tmp_path / "saved.safetensors").unlink()
    session.store._listed = (-float("inf"), None)  # the kept listing has expired
    session.store.listing()  # the file is gone: the choice falls back to the first listed
    assert session.chosen_label() is not None


def test_a_run_limit_and_the_server_limits(tiny_raw, tmp_path):
    limits = Limits(max_runs=2, max_params=30_000)
    me = Session("v", RunQueue(limits), ModelStore(tmp_path, limits), limits, lambda: tiny_raw)
    with pytest.raises(SessionError, match="MLP_DEMO_MAX_PARAMS"):
        me.train(TINY.replace(hidden=(64,)))
    with pytest.raises(SessionError, match="nesterov"):
        me.train(TINY.replace(nesterov=True))
    notes = []
    for _ in range(3):
        notes = me.train(TINY)
        wait_until_ended(me)
    assert [r.name for r in me.history.runs] == ["Run 2", "Run 3"]
    assert any("Run 1 dropped" in n and "at most 2 runs" in n for n in notes)


def test_a_bad_max_runs_gives_one_clear_message():
    with pytest.raises(ValueError, match=r"^MLP_DEMO_MAX_RUNS='many' is not a whole number$"):
        Limits.from_env({"MLP_DEMO_MAX_RUNS": "many"})
    assert Limits.from_env({"MLP_DEMO_MAX_RUNS": "3"}).max_runs == 3


def test_a_bad_label_and_a_bad_example(session):
    field = preprocess(drawn("1"))
    for label in (10, -1, "3", 2.0):
        with pytest.raises(SessionError, match="digit from 0 to 9"):
            session.add_example(field, label)
    with pytest.raises(SessionError, match="28x28"):
        session.add_example(np.zeros((5, 5)), 1)
    session.add_example(field, 1)
    with pytest.raises(SessionError, match="already in Your examples"):
        session.add_example(field, 1)
    with pytest.raises(SessionError, match="label a few drawings"):
        Session("v", session.queue, session.store, session.limits, session.load_mnist).teach()


def test_drawings_the_session_will_not_read(session):
    from PIL import Image
    assert session.predict(None) is None
    with pytest.raises(SessionError, match="5000x5000") as refused:
        session.predict(png_data_url(Image.new("L", (5000, 5000))))
    assert refused.value.kind == "info"
    with pytest.raises(SessionError, match="looks blank"):
        session.predict(png_data_url(np.zeros((280, 280), np.uint8)))
    with pytest.raises(SessionError, match="not a PNG"):
        session.predict("data:text/html,<script>")


def test_missing_mnist_is_a_message(tmp_path, limits):
    from mlp_demo.data import DataMissing

    def missing():
        raise DataMissing("MNIST not found; set MNIST_ROOT")
    me = Session("v", RunQueue(limits), ModelStore(tmp_path, limits), limits, missing)
    with pytest.raises(SessionError, match="MNIST_ROOT.*Drawing still works"):
        me.train(TINY)
    assert me.predict(png_data_url(drawn("1"))).digit == 1  # with the shipped model


def test_why_this_prediction_from_four_threads_leaves_the_shared_model_untouched(session):
    """The explanation takes gradients of the input only: the model every visitor shares gets
    no .grad and stays in eval mode, however many strokes come at once."""
    from mlp_demo.data import normalize
    from mlp_demo.insight import contributions, hidden_activations
    from mlp_demo.server.session import blank_input

    shipped = session.store.model(session.store.listing().models[0])
    prediction = session.predict(png_data_url(drawn("7")))
    assert prediction.model is shipped
    x = normalize(torch.from_numpy(prediction.field)[None])[0]
    errors = []

    def explain():
        try:
            for _ in range(25):
                contributions(shipped, x, blank_input(), prediction.digit)
                hidden_activations(shipped, x)
                session.predict(png_data_url(drawn("7")))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=explain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(p.grad is None for p in shipped.parameters())
    assert not shipped.training and not any(m.training for m in shipped.modules())


@pytest.fixture
def classroom(tmp_path, limits):
    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    engine = db.connect(f"sqlite:///{tmp_path / 'classes.sqlite3'}")
    yield Classes(engine, limits)
    engine.dispose()


def test_a_student_joins_and_their_ended_runs_go_on_the_board(session, classroom):
    session.membership.classes = classroom
    session.train(TINY)  # before joining: stays off the board
    wait_until_ended(session)
    teacher = Session("teacher", session.queue, session.store, session.limits, session.load_mnist,
                      classroom)
    new = teacher.membership.start_class()
    assert teacher.membership.teacher_key(new.code.lower()) == new.teacher_key
    assert "as Ana" in session.membership.join(new.code, "Ana")
    assert session.membership.post_finished_runs() == []
    session.train(TINY.replace(lr=0.01))
    wait_until_ended(session)
    session.train(ENDLESS)
    wait_for_step(session)
    session.stop()
    assert session.membership.post_finished_runs() == ["Run 2 is on the class board.",
                                                        "Run 3 is on the class board."]
    assert session.membership.post_finished_runs() == []  # each once
    board = classroom.board(new.code)
    assert [(e.status, e.settings["lr"]) for e in board.entries] == [("finished", 0.01), ("stopped", 0.003)]
    session.membership.withdraw(2)
    assert [e.status for e in classroom.board(new.code).entries] == ["stopped"]
    assert session.membership.post_finished_runs() == []  # a withdrawn run is not posted again


def test_a_failed_run_is_not_posted_and_a_locked_class_says_why(session, classroom, tiny_raw):
    session.membership.classes = classroom
    new = session.membership.start_class()
    session.membership.join(new.code, "Ana")
    train_x, train_y, test_x, test_y = tiny_raw
    session.load_mnist = lambda: (train_x[:50], train_y[:50], test_x, test_y)  # < val_size
    session.train(TINY)
    wait_until_ended(session)
    assert session.job.status == "failed"
    assert session.membership.post_finished_runs() == []
    session.load_mnist = lambda: tiny_raw
    classroom.set_locked(new.code, new.teacher_key, True)
    session.train(TINY)
    wait_until_ended(session)
    said = session.membership.post_finished_runs()
    assert said == ["Run 2 is not on the board: the teacher has locked the class: it takes no new runs"]
    assert classroom.board(new.code).entries == []


def test_wrong_codes_are_rate_limited_per_session(session, classroom):
    session.membership.classes = classroom
    real = classroom.create()
    for guess in ("AAAAAAAAA", "BBBBBBBBB", "x", "CCCCCCCCC", "DDDDDDDDD"):
        with pytest.raises(SessionError, match="No such class"):
            session.membership.join(guess, "Eve")
    with pytest.raises(SessionError, match="Too many tries"):
        session.membership.join(real.code, "Eve")  # even the right code, until a minute has passed
    other = Session("other", session.queue, session.store, session.limits, session.load_mnist,
                    classroom)
    assert "as Eve" in other.membership.join(real.code, "Eve")  # another session is not slowed


def test_a_database_that_went_away_costs_no_run_and_the_run_is_posted_later(session, classroom,
                                                                            tmp_path, limits):
    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    session.membership.classes = classroom
    new = session.membership.start_class()
    session.membership.join(new.code, "Ana")
    session.train(TINY)
    wait_until_ended(session)
    gone = db.connect(f"sqlite:///{tmp_path / 'gone.sqlite3'}")
    gone.dispose()
    (tmp_path / "gone.sqlite3").unlink()
    (tmp_path / "gone.sqlite3").mkdir()  # nothing a database can open
    session.membership.classes = Classes(gone, limits)
    said = session.membership.post_finished_runs()
    assert said == ["The class board's database is not answering; try again in a moment (your runs "
                    "are kept in this tab)."]
    assert session.job.status == "finished" and session.history.latest.model() is not None
    session.membership.classes = classroom  # it is back
    assert session.membership.post_finished_runs() == ["Run 1 is on the class board."]
    assert len(classroom.board(new.code).entries) == 1


@pytest.fixture
def class_db(database_url, limits):
    """Classes in SQLite and in PostgreSQL (database_url runs each test against both)."""
    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    engine = db.connect(database_url)
    yield Classes(engine, limits)
    engine.dispose()


def test_runs_are_scored_on_the_class_handwriting_as_it_is_when_they_end(session, class_db):
    from mlp_demo.insight import predict_all
    session.membership.classes = class_db
    new = session.membership.start_class()
    session.membership.join(new.code, "Ana")
    with pytest.raises(SessionError, match="label some drawings first"):
        session.membership.contribute(session.examples)
    session.train(TINY)
    wait_until_ended(session)
    session.membership.post_finished_runs()  # the set is empty: no score
    def label_five(me, narrow):
        for i in range(5):  # each of another shape: Your examples refuse a repeat
            shape, box = "07"[i % 2], (60 + 10 * i + narrow, 40, 200 - 5 * i, 240 - 12 * i)
            me.add_example(preprocess(drawn(shape, box=box)), int(shape))

    label_five(session, 0)
    assert "Added 5 drawings" in session.membership.contribute(session.examples)
    with pytest.raises(SessionError, match="label some drawings first"):
        session.membership.contribute(session.examples)  # each drawing once
    other = Session("visitor-b", session.queue, session.store, session.limits, session.load_mnist,
                    class_db)
    other.membership.join(new.code, "Ben")
    label_five(other, 25)
    other.membership.contribute(other.examples)
    session.train(TINY.replace(seed=1))
    wait_until_ended(session)
    said = session.membership.post_finished_runs()
    assert said[0].startswith("Run 2 is on the class board. It read ") and "10 drawings" in said[0]
    first, second = class_db.board(new.code).entries
    assert (first.handwriting_acc, first.handwriting_n) == (None, None)
    found = class_db.handwriting_set(new.code)
    images = torch.frombuffer(bytearray(found.images), dtype=torch.uint8).view(-1, 28, 28)
    expected = (predict_all(session.history.latest.model(), images).argmax(1)
                == torch.tensor(found.labels)).float().mean().item()
    assert second.handwriting_n == 10 and second.handwriting_acc == pytest.approx(expected)
    assert "Took your 5 drawings out" in session.membership.withdraw_handwriting()
    assert class_db.handwriting_counts(new.code, "visitor-b") == (5, 5)
    assert class_db.board(new.code).entries[1].handwriting_n == 10  # scored on the set as it was


def test_a_lesson_refuses_a_forged_config(session, class_db):
    from mlp_demo.server.lessons import read_lesson
    session.membership.classes = class_db
    new = class_db.create()
    session.membership.join(new.code, "Ana")
    class_db.set_lesson(new.code, new.teacher_key,
                        read_lesson({"lr": "0.01"}, ["optimizer"], session.limits))
    with pytest.raises(SessionError, match="locks the learning rate at 0.01.*this run has 0.003"):
        session.train(TINY.replace(lr=0.003))  # as a forged widget or link would send it
    with pytest.raises(SessionError, match="hides the optimizer at adam.*this run has sgd"):
        session.train(TINY.replace(lr=0.01, optimizer="sgd"))
    assert session.history.runs == []
    session.train(TINY.replace(lr=0.01))  # within the lesson
    wait_until_ended(session)
    session.membership.leave()
    session.train(TINY.replace(lr=0.003))  # out of the class, no lesson
    wait_until_ended(session)


def test_a_reloaded_tab_takes_its_seat_back_under_the_lesson_and_a_forged_seat_joins_nobody(
        session, class_db):
    from mlp_demo.server.lessons import read_lesson
    session.membership.classes = class_db
    new = class_db.create()
    class_db.set_lesson(new.code, new.teacher_key, read_lesson({"lr": "0.01"}, [], session.limits))
    assert session.membership.for_browser() == {}  # no word: a fresh tab wipes no kept seat
    session.membership.join(new.code, "Ana")
    kept = session.membership.for_browser()["keep"]
    assert kept == {"code": new.code, "token": session.membership.seat.token}

    reloaded = Session("visitor-reloaded", session.queue, session.store, session.limits,
                       session.load_mnist, class_db)  # a reload without the hall's cookie
    reloaded.membership.from_browser(kept)
    assert reloaded.membership.seat.name == "Ana"
    assert reloaded.membership.seat.lesson.lock == {"lr": 0.01}  # in force at once
    assert class_db.board(new.code).students == 1
    with pytest.raises(SessionError, match="locks the learning rate"):
        reloaded.train(TINY.replace(lr=0.003))

    stranger = Session("visitor-stranger", session.queue, session.store, session.limits,
                       session.load_mnist, class_db)
    forged = kept["token"][:-1] + ("A" if kept["token"][-1] != "A" else "B")
    stranger.membership.from_cookie(f"{new.code}.{forged}")
    for seat in ({"code": new.code, "token": "x" * 10_000}, {"code": new.code, "token": ["no"]},
                 {"code": "'; DROP", "token": forged}, "garbage", {"code": new.code}):
        stranger.membership.from_browser(seat)
        stranger.membership.from_browser(seat)  # the same report again is not another guess
        assert stranger.membership.seat is None
    assert stranger.membership.for_browser() == {"keep": None}  # the browser forgets it
    assert class_db.board(new.code).students == 1
    with pytest.raises(SessionError, match="Too many tries"):  # forged seats count as guesses
        stranger.membership.join(new.code, "Eve")
    reloaded.membership.leave()
    assert reloaded.membership.for_browser() == {"keep": None}  # the browser forgets the seat


def test_wrong_codes_count_per_client_across_reloads_and_on_the_board_view(session, classroom):
    """The server's count (issue 34): a reload is a new Session but the same client, and asking
    the board view for codes is guessing too. Other clients are not slowed."""
    from mlp_demo.server.limits import Guesses
    guesses = Guesses(clock=lambda: now[0])
    now = [0.0]
    real = classroom.create()

    def tab(client):
        return Session(f"tab-{client}-{now[0]}", session.queue, session.store, session.limits,
                       session.load_mnist, classroom, guesses=guesses, client=client)
    first = tab("address 10.0.0.1")
    for guess in ("AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"):
        with pytest.raises(SessionError, match="No such class"):
            first.membership.join(guess, "Eve")
    reloaded = tab("address 10.0.0.1")
    for guess in ("DDDDDDDDD", "EEEEEEEEE"):
        with pytest.raises(SessionError, match="No such class"):
            reloaded.membership.board(guess)  # ?class=...&view=board
    again = tab("address 10.0.0.1")
    with pytest.raises(SessionError, match="Too many tries"):
        again.membership.board(real.code)
    with pytest.raises(SessionError, match="Too many tries"):
        again.membership.join(real.code, "Eve")
    assert "as Ann" in tab("address 10.0.0.2").membership.join(real.code, "Ann")
    now[0] = 61.0  # a minute later
    assert again.membership.board(real.code).code == real.code
    crowd = Guesses(server_tries=6, clock=lambda: now[0])  # many clients guessing together
    for i in range(6):
        crowd.failed(f"address 10.1.0.{i}")
    assert not crowd.allowed("address 10.1.0.99")  # the server's cap, for a minute
    now[0] += 60
    assert crowd.allowed("address 10.1.0.99")
