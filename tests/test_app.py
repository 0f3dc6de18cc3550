"""The Streamlit page under streamlit.testing.v1.AppTest (no browser; see test_browser.py)."""

import re
import sys
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mlp_demo.config import TrainConfig, field_meta

from helpers import REPO, drawn, hostile_files

PAD_KEY = "pad"  # mlp_demo.ui.pad.PAD_KEY: that module imports only inside a Streamlit runtime

APP = str(REPO / "app.py")


@pytest.fixture
def app(monkeypatch, tiny_root, tmp_path):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_root))
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    st.cache_resource.clear()  # a fresh server: limits, queue and model store read the env anew
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    yield at
    job = at.session_state["session"].job if "session" in at.session_state else None
    if job:
        job.stop()
        job.join(30)


def widget(at, name):
    return next(
        w for kind in ("slider", "select_slider", "selectbox", "toggle", "number_input", "radio")
        for w in getattr(at.sidebar, kind) if w.key == f"hp_{name}")


def button(at, label):
    return next(b for b in at.button if b.label == label)


def queue():
    from mlp_demo.ui.server import run_queue
    return run_queue()


def set_tiny_run(at, epochs=1, batch_size=64):
    widget(at, "layers").set_value(1)
    at.run()
    widget(at, "width_0").set_value(32)
    widget(at, "epochs").set_value(epochs)
    widget(at, "batch_size").set_value(batch_size)
    widget(at, "val_size").set_value(100)
    at.run()


def wait_until_done(at, timeout=300):
    end = time.monotonic() + timeout
    while at.session_state["session"].job.active:
        assert time.monotonic() < end
        time.sleep(0.1)
    at.run()


def draw_on_pad(at, monkeypatch, drawing):
    """AppTest runs no JavaScript: the pad's component is replaced by one that returns what the
    browser sends when the pen lifts, the 28x28 field of a drawing (preprocessed in Python here:
    the browser's pipeline is held to it by test_browser_pipeline.py), or a forged value."""
    from mlp_demo.drawing import preprocess
    field = preprocess(drawing).ravel().tolist() if hasattr(drawing, "shape") else drawing
    monkeypatch.setattr(sys.modules["mlp_demo.ui.pad"], "_pad", lambda **kwargs: {"field": field})
    at.run()


def as_typed(message: str) -> str:
    """A message as the visitor reads it: the page escapes Markdown in every message."""
    return re.sub(r"\\(.)", r"\1", message)


def server_reading(at) -> str | None:
    """The digit the server read, from Why this prediction's caption."""
    found = [re.search(r"by the same model: (\d) \(", c.value) for c in at.caption]
    return next((f.group(1) for f in found if f), None)


def test_page_renders_with_every_control_at_its_default(app):
    defaults = TrainConfig().to_dict()
    assert widget(app, "layers").value == len(defaults["hidden"])
    for i, width in enumerate(defaults["hidden"]):
        assert widget(app, f"width_{i}").value == width
    for name, value in defaults.items():
        if name != "hidden":
            assert widget(app, name).value == value, name
    assert button(app, "Train").disabled is False and button(app, "Stop").disabled is True
    assert "Shipped model" in app.selectbox(key="model_choice").value
    assert not app.error


def test_sidebar_ranges_come_from_the_config_narrowed_by_the_server(app):
    for name in ("epochs", "momentum", "dropout", "label_smoothing"):
        w, meta = widget(app, name), field_meta(name)
        assert (w.min, w.max) == (meta["low"], meta["high"]), name
    assert widget(app, "lr").options[0] == "1e-06" and widget(app, "lr").options[-1] == "10"
    batch = [int(o) for o in widget(app, "batch_size").options]
    assert batch[0] == 16 and batch[-1] == field_meta("batch_size")["high"]
    assert "MLP_DEMO" not in widget(app, "epochs").help and "per run" in widget(app, "epochs").help


def test_a_model_over_the_parameter_cap_cannot_be_trained(app):
    widget(app, "layers").set_value(2).run()
    widget(app, "width_0").set_value(4096)
    widget(app, "width_1").set_value(4096).run()
    assert any("MLP_DEMO_MAX_PARAMS" in e.value for e in app.error)
    assert button(app, "Train").disabled


def test_a_tiny_run_completes_and_shows_its_metrics(app):
    set_tiny_run(app)
    button(app, "Train").click().run()
    assert not app.exception and not app.error
    assert "Live" in app.selectbox(key="model_choice").value  # the pad follows the new model
    wait_until_done(app)
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Test accuracy"].rstrip("%")) > 80
    assert app.session_state["session"].job.snapshot().status == "finished"
    assert queue().counts() == (0, 0)


def test_stop_ends_the_run(app):
    set_tiny_run(app, epochs=200, batch_size=16)
    button(app, "Train").click().run()
    assert button(app, "Train").disabled and not button(app, "Stop").disabled
    button(app, "Stop").click().run()
    job = app.session_state["session"].job
    assert not job.running and job.snapshot().status == "stopped"
    assert button(app, "Train").disabled is False


def test_train_is_disabled_while_the_tab_has_a_run(app):
    """Streamlit drops a click on a disabled button (a forged one too); a second run of the same
    visitor is also refused by the queue (test_limits: one run per visitor)."""
    set_tiny_run(app, epochs=200, batch_size=16)
    button(app, "Train").click().run()
    first = app.session_state["session"].job
    app.run()
    assert button(app, "Train").disabled
    assert app.session_state["session"].job is first and queue().counts() == (1, 0)


def test_a_second_tab_queues_behind_full_slots(app, monkeypatch, tiny_root, tmp_path):
    monkeypatch.setenv("MLP_DEMO_MAX_JOBS", "1")
    st.cache_resource.clear()  # a server with one slot; a session keeps the queue it started with
    app = AppTest.from_file(APP, default_timeout=60).run()
    set_tiny_run(app, epochs=200, batch_size=16)
    button(app, "Train").click().run()
    other = AppTest.from_file(APP, default_timeout=60).run()
    set_tiny_run(other)
    button(other, "Train").click().run()
    assert any("queued" in w.value for w in other.warning)
    assert any("number 1 in line" in i.value for i in other.info)
    assert queue().counts() == (1, 1)
    button(app, "Stop").click().run()
    wait_until_done(other)
    assert other.session_state["session"].job.snapshot().status == "finished"


def test_switching_the_model_source(app):
    set_tiny_run(app)
    button(app, "Train").click().run()
    wait_until_done(app)
    choices = app.selectbox(key="model_choice").options
    assert any("Shipped" in c for c in choices) and any("Live" in c for c in choices)
    for choice in choices:
        app.selectbox(key="model_choice").set_value(choice).run()
        assert not app.exception and not app.error


def test_save_lists_the_model_and_bad_names_are_refused(app, tmp_path):
    set_tiny_run(app)
    button(app, "Train").click().run()
    wait_until_done(app)
    app.text_input(key="save_name").input("../escape")  # a form: typed values arrive with the submit
    next(b for b in app.button if b.label == "Save").click().run()
    assert any("not a usable name" in e.value for e in app.error)
    app.text_input(key="save_name").input("tiny-one")
    next(b for b in app.button if b.label == "Save").click().run()
    assert files_of(tmp_path) == ["tiny-one"]  # a file named by its content, carrying the name
    assert any("Saved: tiny-one" in c for c in app.selectbox(key="model_choice").options)
    assert app.selectbox(key="delete_name").value == "tiny-one"  # only the saver may delete it
    button(app, "Delete").click().run()
    assert files_of(tmp_path) == []


def files_of(folder) -> list[str]:
    """The model names the files in a models folder carry."""
    from mlp_demo import checkpoints
    return sorted(checkpoints.read_info(p).own_name for p in folder.glob("*.safetensors"))


def test_hostile_files_in_the_models_folder_do_not_break_the_page(app, tmp_path):
    from mlp_demo.ui import server
    hostile_files(tmp_path)
    server.model_store.clear()  # a restart: the server reads what is in the folder
    fresh = AppTest.from_file(APP, default_timeout=60).run()
    assert not fresh.exception and not fresh.error
    options = fresh.selectbox(key="model_choice").options
    assert any("Shipped" in o for o in options) and any("Saved: good (90.00% test)" in o for o in options)
    assert any("3 file(s)" in c.value for c in fresh.caption)
    assert button(fresh, "Train").disabled is False


def test_bad_settings_show_an_error_and_disable_train(app):
    widget(app, "nesterov").set_value(True).run()  # Nesterov with Adam is not a thing
    assert any("Invalid settings" in e.value and "nesterov" in e.value for e in app.error)
    assert button(app, "Train").disabled


def test_presets_and_reset(app):
    app.sidebar.selectbox(key="preset").set_value("fast").run()
    assert widget(app, "scheduler").value == "onecycle" and widget(app, "optimizer").value == "sgd"
    app.sidebar.selectbox(key="preset").set_value("best").run()
    assert widget(app, "layers").value == 2 and widget(app, "width_0").value == 1024
    next(b for b in app.sidebar.button if b.label == "Reset to defaults").click().run()
    assert widget(app, "scheduler").value == "cosine" and widget(app, "layers").value == 1


def test_missing_data_is_a_message_and_drawing_still_works(app, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "nowhere"))
    button(app, "Train").click().run()
    assert not app.exception
    assert any("MNIST_ROOT" in as_typed(e.value) for e in app.error)
    assert "Shipped model" in app.selectbox(key="model_choice").value


def test_a_drawing_is_predicted_and_a_forged_one_refused_quietly(app, monkeypatch):
    draw_on_pad(app, monkeypatch, drawn("1"))
    assert server_reading(app) == "1"
    draw_on_pad(app, monkeypatch, [0.5] * 785)
    assert not app.exception and not app.error
    assert any("not read" in i.value and "785 values" in i.value for i in app.info)


def test_two_runs_appear_as_run_1_and_run_2_in_compare_runs(app):
    set_tiny_run(app)
    button(app, "Train").click().run()
    wait_until_done(app)
    widget(app, "lr").set_value(0.01).run()
    button(app, "Train").click().run()
    wait_until_done(app)
    assert any(h.value == "Compare runs" for h in app.subheader)
    assert app.multiselect(key="compare_runs").value == [1, 2]
    assert app.multiselect(key="compare_runs").options == ["Run 1", "Run 2"]
    table = app.dataframe[0].value  # the comparison table comes first on the page
    assert list(table.columns) == ["Run 1", "Run 2"] and table.loc["lr", "Run 2"] == "0.01"
    assert any("differ (lr)" in c.value for c in app.caption)
    choices = app.selectbox(key="model_choice").options
    assert any(c.startswith("Run 1") for c in choices)  # any run can drive the pad
    assert app.selectbox(key="save_run").options == ["Run 2", "Run 1"]  # and be saved
    for heading in ("Confusion matrix", "Misclassified", "First-layer weights"):
        assert any(h.value == heading for h in app.subheader), heading
    app.selectbox(key="inspect_choice").set_value(
        next(c for c in app.selectbox(key="inspect_choice").options if c.startswith("Run 1"))).run()
    assert not app.exception and not app.error


def test_query_parameters_restore_settings(monkeypatch, tiny_root, tmp_path):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_root))
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"preset": "fast", "lr": "0.05", "hidden": "256-64", "epochs": "3"})
    at.run()
    assert not at.exception and not at.sidebar.warning
    assert at.sidebar.selectbox(key="preset").value == "fast"
    assert widget(at, "lr").value == 0.05 and widget(at, "epochs").value == 3
    assert widget(at, "layers").value == 2 and widget(at, "width_1").value == 64
    assert widget(at, "optimizer").value == "sgd"  # from the preset
    assert any(h.value == "Share settings by link" for h in at.subheader)
    assert any("lr=0.05" in c.value for c in at.code)


def test_an_invalid_query_value_shows_a_notice(monkeypatch, tiny_root, tmp_path):
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"lr": "banana", "epochs": "5000", "batch_size": "64"})
    at.run()
    assert not at.exception
    notice = " ".join(w.value for w in at.sidebar.warning)
    assert "Ignored in the link" in notice and "lr" in notice and "epochs" in notice
    assert widget(at, "batch_size").value == 64 and widget(at, "epochs").value == TrainConfig().epochs


def test_why_this_prediction_beside_the_drawing(app, monkeypatch):
    draw_on_pad(app, monkeypatch, drawn("7"))
    assert any(h.value == "Why this prediction" for h in app.subheader)
    assert not app.exception and not app.error
    assert any("blue" in c.value and "blank pad" in c.value for c in app.caption)
    assert any("first hidden layer" in c.value for c in app.caption)


def test_label_a_drawing_teach_and_see_before_and_after(app, monkeypatch):
    draw_on_pad(app, monkeypatch, drawn("1"))
    assert server_reading(app) == "1"
    app.button(key="label_7").click().run()  # a 1 labelled 7: the model must change its mind
    assert not app.exception
    assert any("Your examples" in m.value and "(1 of" in m.value for m in app.markdown)
    assert any("Added as a 7" in s.value for s in app.success)
    app.button(key="label_7").click().run()
    assert any("already in Your examples" in e.value for e in app.error)
    button(app, "Teach").click().run()
    assert not app.exception and not app.error
    wait_until_done(app)
    assert not app.exception and not app.error
    runs = app.session_state["session"].history.runs
    assert [r.name for r in runs] == ["Run 1: taught"]
    assert any(m.value.startswith("**Before and after**") for m in app.markdown)
    labels = [m.label for m in app.metric]
    assert "Your examples read right" in labels and "MNIST test accuracy" in labels
    assert app.selectbox(key="model_choice").value == "Live: the model you train here"
    assert server_reading(app) == "7"  # the taught model reads it as taught
    assert "Run 1: taught" in app.multiselect(key="compare_runs").options
    assert app.selectbox(key="save_run").options == ["Run 1: taught"]  # and it can be saved
    button(app, "Clear all").click().run()
    assert any("(0 of" in m.value for m in app.markdown)

def test_removing_examples_removes_the_chosen_ones(app, monkeypatch):
    for shape, digit in (("1", 1), ("0", 0), ("7", 7)):
        draw_on_pad(app, monkeypatch, drawn(shape))
        app.button(key=f"label_{digit}").click().run()
    assert [e.label for e in app.session_state["session"].examples] == [1, 0, 7]
    app.multiselect(key="remove_examples").set_value([1]).run()
    button(app, "Remove").click().run()
    assert not app.exception
    assert [e.label for e in app.session_state["session"].examples] == [1, 7]
    assert app.multiselect(key="remove_examples").value == []
    assert any("(2 of" in m.value for m in app.markdown)


def widget_keys(at) -> set[str]:
    """The user keys of every widget on the page (the pad's canvas is a component)."""
    keys, stack = set(), [at._tree]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", {}).values())
        key = getattr(node, "key", None)
        if isinstance(key, str):
            keys.add(key)
    return keys


def test_session_state_holds_the_session_and_widget_keys_only(app, monkeypatch):
    """Everything a visitor's page keeps lives in their Session; session_state has only it and
    the keys of Streamlit's own widgets (the label buttons, the pad and the sidebar among them)."""
    set_tiny_run(app)
    button(app, "Train").click().run()
    wait_until_done(app)
    draw_on_pad(app, monkeypatch, drawn("1"))
    app.button(key="label_1").click().run()
    keys = set(app.session_state) - {"session"}
    widgets = widget_keys(app) | {PAD_KEY}
    assert keys <= widgets, keys - widgets
    assert type(app.session_state["session"]).__name__ == "Session"


def test_start_a_class_join_it_finish_a_run_and_see_it_on_the_board(app):
    button(app, "Start a class").click().run()
    assert not app.exception and not app.error
    teacher = app.session_state["session"]
    (code, key), = teacher.membership.teacher_keys.items()
    assert any(code in c.value and "view=board&teacher=" in c.value for c in app.code)
    student = AppTest.from_file(APP, default_timeout=60)
    student.query_params["class"] = code
    student.run()
    assert student.text_input(key="class_code").value == code  # from the join link
    student.text_input(key="class_name").input("<b>Ana</b> **x**")
    next(b for b in student.button if b.label == "Join").click().run()
    assert any("You are on the board" in s.value for s in student.success), student.error
    assert student.query_params["class"] == code  # the settings link keeps it in the address bar
    set_tiny_run(student)
    button(student, "Train").click().run()
    wait_until_done(student)
    assert any("Run 1 is on the class board" in i.value for i in student.info)

    board = AppTest.from_file(APP, default_timeout=60)
    board.query_params.update({"class": code, "view": "board"})
    board.run()
    assert not board.exception and not board.error
    assert board.title[0].value == "Class board"
    metrics = {m.label: m.value for m in board.metric}
    assert metrics["Students joined"] == "1" and metrics["Runs in"] == "1"
    leaders = board.table[0].value
    from mlp_demo.ui.server import as_text
    assert list(leaders["name"]) == [as_text("<b>Ana</b> **x**")]  # escaped: the table shows it as typed
    assert not any("Teacher" == h.value for h in board.subheader)  # no key, no controls

    teacher_board = AppTest.from_file(APP, default_timeout=60)
    teacher_board.query_params.update({"class": code, "view": "board", "teacher": key})
    teacher_board.run()
    assert any("Teacher" == h.value for h in teacher_board.subheader)
    assert "teacher" not in teacher_board.query_params  # read once, out of the address bar
    teacher_board.multiselect(key="board_hide").set_value([1])
    next(b for b in teacher_board.button if b.label == "Hide").click().run()
    assert {m.label: m.value for m in teacher_board.metric}["Runs in"] == "0"
    board.run()
    assert {m.label: m.value for m in board.metric}["Runs in"] == "0"  # hidden from every view


def test_a_database_of_another_version_stops_the_page_with_both_versions(monkeypatch, tmp_path):
    from sqlalchemy import update

    from mlp_demo.server import db
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = db.connect(url)
    with engine.begin() as conn:
        conn.execute(update(db.meta).where(db.meta.c.key == "schema_version").values(value="0"))
    engine.dispose()
    monkeypatch.setenv("MLP_DEMO_DATABASE_URL", url)
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("schema version 0" in e.value and f"version {db.SCHEMA_VERSION}" in e.value
               for e in at.error)
    assert not any(b.label == "Train" and not b.disabled for b in at.button)  # stopped before its sections


def test_a_lesson_holds_against_a_forged_link_and_forged_widget_state(app):
    from mlp_demo.server.lessons import read_lesson
    from mlp_demo.server.limits import Limits
    button(app, "Start a class").click().run()
    teacher = app.session_state["session"]
    (code, key), = teacher.membership.teacher_keys.items()
    teacher.membership.classes.set_lesson(code, key, read_lesson({"lr": "0.01"}, ["optimizer"], Limits()))
    student = AppTest.from_file(APP, default_timeout=60)
    student.query_params.update({"class": code, "lr": "0.1", "optimizer": "sgd"})  # a forged link
    student.run()
    student.text_input(key="class_name").input("Ana")
    next(b for b in student.button if b.label == "Join").click().run()
    assert widget(student, "lr").disabled and widget(student, "lr").value == 0.01
    assert not any(w.key == "hp_optimizer" for w in student.sidebar.selectbox)
    assert any("lesson: the learning rate locked at 0.01" in i.value for i in student.sidebar.info)
    set_tiny_run(student)
    student.session_state["hp_lr"] = 0.1  # forged widget state, as a hostile browser sends it
    student.session_state["hp_optimizer"] = "sgd"
    button(student, "Train").click().run()
    wait_until_done(student)
    assert not student.exception
    settings = student.session_state["session"].history.latest.settings
    assert settings["lr"] == 0.01 and settings["optimizer"] == "adam"


def test_a_forged_stored_lesson_leaves_a_joining_students_page_working(app):
    import json

    from sqlalchemy import update

    from mlp_demo.server import db
    button(app, "Start a class").click().run()
    teacher = app.session_state["session"]
    (code, _), = teacher.membership.teacher_keys.items()
    with teacher.membership.classes.engine.begin() as conn:
        conn.execute(update(db.classes).where(db.classes.c.code == code)
                     .values(lesson=json.dumps({"lock": {"epochs": 100000, "lr": "abc"}})))
    student = AppTest.from_file(APP, default_timeout=60)
    student.query_params.update({"class": code})
    student.run()
    student.text_input(key="class_name").input("Ana")
    next(b for b in student.button if b.label == "Join").click().run()
    assert not student.exception and not student.error
    assert widget(student, "epochs").value == TrainConfig().epochs and not widget(student, "epochs").disabled
    assert button(student, "Train").disabled is False
