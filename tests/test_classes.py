"""Classes and their boards, in a real database: SQLite and PostgreSQL (started by the
postgres_server fixture). Every test runs against both."""

import csv
import io
import json
import threading

import pytest
from sqlalchemy import func, select, update

from mlp_demo.config import TrainConfig
from mlp_demo.server import db
from mlp_demo.server.board import baseline, changed_from, groups, leaderboard
from mlp_demo.server.classes import (
    CODE_ALPHABET,
    CODE_LENGTH,
    NO_SUCH_CLASS,
    ClassError,
    Classes,
    NoSuchClass,
    normalise_code,
)
from mlp_demo.server.lessons import read_lesson
from mlp_demo.server.limits import Limits

SETTINGS = TrainConfig().to_dict()


def run(lr=0.003, acc=0.9, status="finished", **changes):
    """The keyword arguments of Classes.post for a training run."""
    settings = {**SETTINGS, "lr": lr, **changes}
    return {"kind": "training", "settings": json.loads(json.dumps(settings)), "val_acc": acc - 0.01,
            "test_acc": acc, "seconds": 3.5, "status": status,
            "curves": {"val_acc": [[e, acc] for e in range(1, 6)], "loss": [[0.1 * i, 1 / (i + 1)]
                                                                           for i in range(300)]}}


@pytest.fixture
def classes(database_url):
    engine = db.connect(database_url)
    yield Classes(engine, Limits())
    engine.dispose()


def test_a_class_from_start_to_board(classes):
    new = classes.create()
    assert len(new.code) == CODE_LENGTH and set(new.code) <= set(CODE_ALPHABET)
    assert new.join_path == f"?class={new.code}" and new.teacher_key not in new.join_path
    assert new.teacher_key in new.teacher_path and "view=board" in new.teacher_path
    assert classes.join(new.code.lower(), "v1", "  Ana  ").name == "Ana"
    assert classes.join(new.code, "v2", "Ana").name == "Ana (2)"
    assert classes.join(new.code, "v1", "Someone else").name == "Ana"  # the same tab keeps its place
    first = classes.post(new.code, "v1", **run(lr=0.01, acc=0.97))
    classes.post(new.code, "v2", **run(acc=0.95, status="stopped"))
    board = classes.board(new.code, visitor="v1")
    assert board.students == 2 and [e.name for e in board.entries] == ["Ana", "Ana (2)"]
    assert [e.mine for e in board.entries] == [True, False]
    assert board.entries[0].id == first and board.entries[1].status == "stopped"
    loss = classes.loss_curve(new.code, first)
    assert len(loss) == 100 and loss[-1] == pytest.approx([29.9, 1 / 300])  # downsampled, last kept
    assert board.entries[0].curves == {"val_acc": [[e, 0.97] for e in range(1, 6)]}
    assert changed_from(baseline(board), board.entries[0]) == ("lr",)
    assert changed_from(baseline(board), board.entries[1]) == ()
    assert [e.test_acc for e in leaderboard(board)] == [0.97, 0.95]
    assert list(groups(board)) in ([("lr",), ()], [(), ("lr",)])


def test_twenty_students_finishing_at_the_same_instant_lose_nothing(classes):
    new = classes.create()
    start = threading.Barrier(20)
    names, errors = [], []

    def student(i):
        try:
            start.wait()
            names.append(classes.join(new.code, f"visitor-{i}", "Sam").name)
            classes.post(new.code, f"visitor-{i}", **run(lr=0.001 * (i + 1), acc=0.9 + i / 1000))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=student, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(names)) == 20 and "Sam" in names and "Sam (20)" in names
    board = classes.board(new.code)
    assert board.students == 20 and len(board.entries) == 20
    assert sorted(round(e.settings["lr"], 3) for e in board.entries) == [
        round(0.001 * (i + 1), 3) for i in range(20)]


def test_the_board_survives_a_restart(database_url):
    engine = db.connect(database_url)
    before = Classes(engine, Limits())
    new = before.create()
    before.join(new.code, "v1", "Ana")
    before.post(new.code, "v1", **run(acc=0.93))
    engine.dispose()  # the app process ends
    after = Classes(db.connect(database_url), Limits())  # a new one starts on the same database
    board = after.board(new.code)
    assert [(e.name, e.test_acc) for e in board.entries] == [("Ana", 0.93)]
    assert after.is_teacher(new.code, new.teacher_key)
    after.engine.dispose()


def test_every_limit(database_url):
    engine = db.connect(database_url)
    clock = [1000.0]
    limits = Limits(max_classes=2, class_max_students=2, class_max_runs=3, student_max_runs=2,
                    class_lifetime_s=60)
    classes = Classes(engine, limits, clock=lambda: clock[0])
    a, b = classes.create(), classes.create()
    with pytest.raises(ClassError, match="MLP_DEMO_MAX_CLASSES"):
        classes.create()
    classes.join(a.code, "v1", "One")
    classes.join(a.code, "v2", "Two")
    with pytest.raises(ClassError, match="MLP_DEMO_CLASS_MAX_STUDENTS"):
        classes.join(a.code, "v3", "Three")
    classes.post(a.code, "v1", **run())
    classes.post(a.code, "v1", **run())
    with pytest.raises(ClassError, match="MLP_DEMO_STUDENT_MAX_RUNS"):
        classes.post(a.code, "v1", **run())
    classes.post(a.code, "v2", **run())
    with pytest.raises(ClassError, match="MLP_DEMO_CLASS_MAX_RUNS"):
        classes.post(a.code, "v2", **run())
    clock[0] += 61  # the classes' lifetime is over: they close
    for code in (a.code, b.code):
        with pytest.raises(ClassError, match="No such class"):
            classes.board(code)
    classes.create()  # and they no longer count
    engine.dispose()


def test_the_bytes_stored_are_bounded(database_url):
    engine = db.connect(database_url)
    classes = Classes(engine, Limits(classes_max_mb=1, student_max_runs=1000))
    new = classes.create()
    classes.join(new.code, "v1", "Ana")
    long_run = run(note="x" * 3500)  # ~17 KB with its curves
    with pytest.raises(ClassError, match="MLP_DEMO_CLASSES_MAX_MB"):
        for _ in range(200):
            classes.post(new.code, "v1", **long_run)
    assert 40 < len(classes.board(new.code).entries) < 200
    engine.dispose()


def test_one_class_never_sees_another(classes):
    a, b = classes.create(), classes.create()
    classes.join(a.code, "v1", "Ana")
    entry = classes.post(a.code, "v1", **run())
    with pytest.raises(ClassError, match="join the class first"):
        classes.post(b.code, "v1", **run())
    with pytest.raises(ClassError):
        classes.withdraw(b.code, "v1", entry)  # A's entry through B's code
    assert not classes.is_teacher(b.code, a.teacher_key)
    with pytest.raises(ClassError, match="No such class"):
        classes.hide(b.code, a.teacher_key, entry)
    classes.hide(b.code, b.teacher_key, entry)  # B's teacher cannot touch A's entry
    assert classes.board(b.code).entries == [] and classes.board(b.code).students == 0
    assert [e.hidden for e in classes.board(a.code, include_hidden=True).entries] == [False]


def test_wrong_and_guessed_codes_get_the_same_quiet_answer(classes):
    real = classes.create()
    guesses = ["", "x" * 5000, "AAAAAAAAA", real.code[:-1], real.code + "A", "'; DROP TABLE classes; --",
               None, 12345, "ÄÖÜ" * 3]
    for guess in guesses:
        with pytest.raises(ClassError) as refused:
            classes.board(guess)
        assert str(refused.value) == NO_SUCH_CLASS
        with pytest.raises(ClassError) as refused:
            classes.join(guess, "v", "Ana")
        assert str(refused.value) == NO_SUCH_CLASS
    assert normalise_code(" " + real.code[:4].lower() + "-" + real.code[4:] + " ") == real.code
    assert classes.board(real.code).code == real.code  # the real class is untouched


@pytest.mark.parametrize("name", ["<img src=x onerror=a()>", "'; DROP TABLE students--",
                                  "**b** [l](javascript:x)", "名前 😀", "=HYPERLINK(\"x\")"])
def test_hostile_names_and_settings_are_kept_as_text(classes, name):
    new = classes.create()
    given = classes.join(new.code, "v1", name).name
    assert given == name
    hostile = run(optimizer="<img src=x onerror=alert(1)>", activation="'; --")
    classes.post(new.code, "v1", **hostile)
    entry = classes.board(new.code).entries[0]
    assert entry.name == name and entry.settings["optimizer"] == "<img src=x onerror=alert(1)>"
    rows = list(csv.reader(io.StringIO(classes.to_csv(new.code, new.teacher_key))))
    cell = rows[1][1]
    assert cell == (("'" + name) if name.startswith("=") else name)  # no formula in a spreadsheet


@pytest.mark.parametrize("name, message", [("", "choose a name"), ("   ", "choose a name"),
                                           ("x" * 25, "at most 24"), ("a\x00b", "printable"),
                                           ("tab\u200bhere\x1b[31m", "printable"), (None, "text")])
def test_bad_names_are_refused(classes, name, message):
    new = classes.create()
    with pytest.raises(ClassError, match=message):
        classes.join(new.code, "v1", name)


def test_the_teacher_hides_locks_clears_exports_and_closes(classes):
    new = classes.create()
    classes.join(new.code, "v1", "Ana")
    first = classes.post(new.code, "v1", **run(acc=0.91))
    classes.post(new.code, "v1", **run(acc=0.92))
    with pytest.raises(ClassError):
        classes.hide(new.code, "a guess", first)
    classes.hide(new.code, new.teacher_key, first)
    assert [e.test_acc for e in classes.board(new.code).entries] == [0.92]
    assert [e.hidden for e in classes.board(new.code, include_hidden=True).entries] == [True, False]
    rows = list(csv.DictReader(io.StringIO(classes.to_csv(new.code, new.teacher_key))))
    assert [r["hidden_by_teacher"] for r in rows] == ["True", "False"] and rows[0]["lr"] == "0.003"
    classes.set_locked(new.code, new.teacher_key, True)
    with pytest.raises(ClassError, match="locked"):
        classes.post(new.code, "v1", **run())
    classes.set_locked(new.code, new.teacher_key, False)
    classes.withdraw(new.code, "v1", first)
    with pytest.raises(ClassError, match="not yours"):
        classes.withdraw(new.code, "v2", first)
    classes.clear(new.code, new.teacher_key)
    board = classes.board(new.code, include_hidden=True)
    assert board.entries == [] and board.students == 1
    classes.close(new.code, new.teacher_key)
    with pytest.raises(ClassError, match="No such class"):
        classes.board(new.code)


def test_only_finished_and_stopped_runs_go_on_the_board(classes):
    new = classes.create()
    classes.join(new.code, "v1", "Ana")
    for status in ("failed", "diverged", "cancelled", "running"):
        with pytest.raises(ClassError, match="finished or stopped"):
            classes.post(new.code, "v1", **run(status=status))


def test_a_database_of_another_version_stops_with_both_versions(database_url):
    engine = db.connect(database_url)
    with engine.begin() as conn:
        conn.execute(update(db.meta).where(db.meta.c.key == "schema_version").values(value="99"))
    engine.dispose()
    with pytest.raises(db.SchemaMismatch, match=f"schema version 99.*version {db.SCHEMA_VERSION}"):
        db.connect(database_url)


def test_a_database_that_went_away_is_a_message(tmp_path):
    engine = db.connect(f"sqlite:///{tmp_path / 'gone.sqlite3'}")
    classes = Classes(engine, Limits())
    new = classes.create()
    engine.dispose()
    (tmp_path / "gone.sqlite3").unlink()
    (tmp_path / "gone.sqlite3").mkdir()  # where the file was, now nothing a database can open
    with pytest.raises(ClassError, match="not answering"):
        classes.board(new.code)
    with pytest.raises(db.DatabaseError, match="cannot be used"):
        db.connect("postgresql+psycopg://nobody@127.0.0.1:9/none")


# -- the class's handwriting (issue 18)
def drawings(n: int, first_label: int = 0) -> tuple[list[bytes], list[int]]:
    images = [bytes([(i * 37 + j) % 256 for j in range(784)]) for i in range(n)]
    return images, [(first_label + i) % 10 for i in range(n)]


def test_handwriting_limits_and_withdrawal(database_url):
    engine = db.connect(database_url)
    classes = Classes(engine, Limits(class_handwriting_per_student=5, class_handwriting_max=8))
    new = classes.create()
    classes.join(new.code, "a", "Ana")
    classes.join(new.code, "b", "Ben")
    with pytest.raises(ClassError, match="join the class first"):
        classes.contribute(new.code, "stranger", *drawings(1))
    assert classes.contribute(new.code, "a", *drawings(3)) == 3
    with pytest.raises(ClassError, match="2 more fit"):
        classes.contribute(new.code, "a", *drawings(3))
    assert classes.contribute(new.code, "a", *drawings(2)) == 5
    with pytest.raises(ClassError, match="holds 5 drawings, and at most 8"):
        classes.contribute(new.code, "b", *drawings(4))
    assert classes.contribute(new.code, "b", *drawings(3, first_label=7)) == 3
    assert classes.handwriting_counts(new.code, "a") == (5, 8)
    found = classes.handwriting_set(new.code)
    assert len(found) == 8 and len(found.images) == 8 * 784 and sorted(found.labels) == found.labels
    assert classes.board(new.code).handwriting_n == 8
    assert classes.withdraw_handwriting(new.code, "a") == 5
    assert classes.handwriting_counts(new.code, "a") == (0, 3)
    assert classes.handwriting_counts(new.code, "b") == (3, 3)
    assert sorted(classes.handwriting_set(new.code).labels) == [7, 8, 9]
    engine.dispose()


@pytest.mark.parametrize("images, labels", [
    ([b"\x00" * 783], [1]),  # not 28x28
    ([b"\x00" * 784], [10]),  # not a digit
    ([b"\x00" * 784], [True]),
    (["not bytes" * 87 + "x"], [1]),
    ([b"\x00" * 784, b"\x00" * 784], [1]),  # a label short
])
def test_a_forged_drawing_is_refused_before_the_database(classes, images, labels):
    new = classes.create()
    classes.join(new.code, "a", "Ana")
    with pytest.raises(ClassError):
        classes.contribute(new.code, "a", images, labels)
    assert len(classes.handwriting_set(new.code)) == 0


def test_a_closed_class_leaves_no_drawings_behind(classes):
    new, other = classes.create(), classes.create()
    for code in (new.code, other.code):
        classes.join(code, "a", "Ana")
        classes.contribute(code, "a", *drawings(4))
    with pytest.raises(ClassError):
        classes.clear_handwriting(new.code, "a guess")
    classes.clear_handwriting(other.code, other.teacher_key)
    assert len(classes.handwriting_set(other.code)) == 0
    classes.close(new.code, new.teacher_key)
    with classes.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.handwriting)).scalar() == 0


def test_a_scored_entry_keeps_its_score_and_the_set_size(classes):
    new = classes.create()
    classes.join(new.code, "a", "Ana")
    before = classes.post(new.code, "a", **run())
    classes.post(new.code, "a", **run(), handwriting_acc=0.8, handwriting_n=10)
    entries = classes.board(new.code).entries
    assert [(e.id, e.handwriting_acc, e.handwriting_n) for e in entries] == [
        (before, None, None), (before + 1, 0.8, 10)]
    assert entries[0].to_json()["class_handwriting_accuracy"] is None
    assert entries[1].to_json()["class_handwriting_n"] == 10
    rows = list(csv.DictReader(io.StringIO(classes.to_csv(new.code, new.teacher_key))))
    assert rows[1]["class_handwriting_accuracy"] == "0.8"


def test_a_version_1_database_is_migrated_and_keeps_its_boards(database_url):
    """Through every migration: version 2's handwriting columns, version 3's model files,
    version 4's seat tokens."""
    from mlp_demo.server.records import ModelRecords
    engine = db.connect(database_url)
    classes = Classes(engine, Limits())
    new = classes.create()
    classes.join(new.code, "a", "Ana")
    classes.post(new.code, "a", **run(acc=0.93))
    with engine.begin() as conn:  # back to what version 1 made
        conn.exec_driver_sql("ALTER TABLE entries DROP COLUMN handwriting_acc")
        conn.exec_driver_sql("ALTER TABLE entries DROP COLUMN handwriting_n")
        conn.exec_driver_sql("ALTER TABLE models DROP COLUMN file")  # version 3's
        conn.exec_driver_sql("ALTER TABLE students DROP COLUMN seat_hash")  # version 4's
        conn.execute(update(db.meta).where(db.meta.c.key == "schema_version").values(value="1"))
    engine.dispose()
    engine = db.connect(database_url)
    classes = Classes(engine, Limits())
    classes.post(new.code, "a", **run(acc=0.94), handwriting_acc=0.5, handwriting_n=2)
    assert classes.resume(new.code, classes.join(new.code, "a", "Ana").seat, "b") == "Ana"
    assert [(e.test_acc, e.handwriting_acc) for e in classes.board(new.code).entries] == [
        (0.93, None), (0.94, 0.5)]
    records = ModelRecords(engine)
    records.claim("m", "a")
    records.set_file("m", "f.safetensors")
    assert records.get("m").file == "f.safetensors"
    with engine.connect() as conn:
        assert conn.execute(select(db.meta.c.value).where(db.meta.c.key == "schema_version")
                            ).scalar() == str(db.SCHEMA_VERSION)
    engine.dispose()


# -- lessons
def test_a_lesson_is_stored_with_the_class_and_read_strictly(classes):
    new = classes.create()
    lesson = read_lesson({"lr": "0.01", "hidden": "256-64"}, ["optimizer"], Limits())
    with pytest.raises(ClassError):
        classes.set_lesson(new.code, "a guess", lesson)
    classes.set_lesson(new.code, new.teacher_key, lesson)
    stored, defaults = classes.lesson(new.code)
    assert stored == lesson and classes.board(new.code).lesson == lesson
    assert stored.fixed(defaults) == {"lr": 0.01, "hidden": (256, 64),
                                      "optimizer": defaults["optimizer"]}
    assert "join" not in new.join_path.replace("?class=", "") and new.join_path == f"?class={new.code}"
    for lock, hide, message in [({"lr": "lots"}, [], "lr="), ({"nonsense": "1"}, [], "not a setting"),
                                ({}, ["device"], "not a setting"), ({"lr": "-1"}, [], "lr=")]:
        with pytest.raises(ValueError, match=message):
            read_lesson(lock, hide, Limits())
    config = TrainConfig.from_dict(defaults)
    assert "locks the learning rate at 0.01" in stored.refusal(config.replace(hidden=(256, 64)), defaults)
    assert stored.refusal(config.replace(lr=0.01, hidden=(256, 64)), defaults) is None
    assert "hides the optimizer" in stored.refusal(
        config.replace(lr=0.01, hidden=(256, 64), optimizer="sgd"), defaults)


@pytest.mark.parametrize("stored", [
    {"lock": {"epochs": 100000}},  # out of range
    {"lock": {"lr": "abc"}},  # the wrong type
    {"lock": {"nonsense": 1}, "hide": ["device"]},  # not settings a lesson can fix
    {"lock": {"hidden": [[1], 2]}},
    {"lock": []}, [], "x",  # not a lesson at all
])
def test_a_forged_stored_lesson_is_no_lesson_with_a_note(classes, stored):
    new = classes.create()
    with classes.engine.begin() as conn:  # what a hostile or broken database could hold
        conn.execute(update(db.classes).where(db.classes.c.code == new.code)
                     .values(lesson=json.dumps(stored)))
    lesson, _ = classes.lesson(new.code)
    assert not lesson and not lesson.lock and not lesson.hide
    assert "could not be read" in lesson.problem
    assert classes.board(new.code).lesson.problem == lesson.problem


def test_a_seat_token_brings_its_student_back_and_opens_nothing_else(classes):
    new, other = classes.create(), classes.create()
    first = classes.join(new.code, "tab-1", "Ann")
    name, token = classes.join(new.code, "tab-1", "Ann")  # joining again: a new token
    assert first.name == name == "Ann" and len(token) == 32 and token != first.seat
    with pytest.raises(NoSuchClass):  # the old one opens nothing any more
        classes.resume(new.code, first.seat, "tab-2")
    assert classes.resume(new.code.lower(), token, "tab-2") == "Ann"  # the reloaded tab
    classes.post(new.code, "tab-2", **run())  # the seat posts as its new tab
    board = classes.board(new.code, visitor="tab-2")
    assert board.students == 1 and [(e.name, e.mine) for e in board.entries] == [("Ann", True)]
    assert classes.resume(new.code, token, "tab-2") == "Ann"  # again: nothing changes
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    for code, forged in ((new.code, wrong), (other.code, token), (new.code, "x" * 100_000),
                         (new.code, None), (new.code, token + "'; --"), ("x" * 100_000, token)):
        with pytest.raises(NoSuchClass):
            classes.resume(code, forged, "tab-3")
    assert classes.board(new.code).students == 1 and classes.board(other.code).students == 0


def test_what_each_group_changed_is_measured_from_the_lesson_and_said_in_words(classes):
    from mlp_demo.server.board import group_rows, leaderboard_rows
    new = classes.create()
    classes.set_lesson(new.code, new.teacher_key, read_lesson({"lr": "0.01"}, [], Limits()))
    classes.join(new.code, "a", "Ana")
    classes.post(new.code, "a", **run(lr=0.01, epochs=1))  # the lesson's lr: not Ana's change
    classes.post(new.code, "a", **{**run(lr=0.01, acc=0.5), "test_acc": None, "val_acc": None})
    board = classes.board(new.code)
    by_change = {change: [e.test_acc for e in members] for change, members in groups(board).items()}
    assert by_change == {("epochs",): [0.9], (): [None]}
    rows = group_rows(board) + leaderboard_rows(board)
    cells = [str(v) for row in rows for v in row.values()]
    assert not any(c in ("None", "nan") for c in cells), cells
    assert {r["changed"] for r in group_rows(board)} == {"epochs", "nothing (the lesson's settings)"}
    assert leaderboard_rows(board)[1]["test accuracy"] == "–"
    classes.set_lesson(new.code, new.teacher_key, read_lesson({}, [], Limits()))
    board = classes.board(new.code)
    assert {r["changed"] for r in group_rows(board)} == {"epochs, learning rate", "learning rate"}


def test_a_closed_class_leaves_nothing_in_the_process(classes):
    """Issue 34's memory: a class's cached board and handwriting set go when it closes."""
    new, other = classes.create(), classes.create()
    for code in (new.code, other.code):
        classes.join(code, "a", "Ana")
        classes.contribute(code, "a", [bytes(784)] * 3, [1, 2, 3])
        classes.board(code), classes.board(code, include_hidden=True), classes.handwriting_set(code)
    assert len(classes._boards) == 6
    classes.close(new.code, new.teacher_key)
    assert len(classes._boards) == 3 and classes.board(other.code).handwriting_n == 3


def test_a_link_value_the_lesson_replaces_gets_a_line_naming_the_setting():
    lesson = read_lesson({"lr": "0.01"}, ["optimizer"], Limits())
    defaults = TrainConfig().to_dict()
    lines = lesson.overrides({"lr": 0.1, "optimizer": "sgd", "epochs": 9}, defaults)
    assert sorted(lines) == [
        "your class's lesson fixes the learning rate at 0.01, so the link's 0.1 is not used",
        "your class's lesson fixes the optimizer at adam, so the link's sgd is not used"]
    assert lesson.overrides({"lr": 0.01, "epochs": 9}, defaults) == []  # the same value: no notice
