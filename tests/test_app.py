"""The Streamlit page under streamlit.testing.v1.AppTest (no browser; see test_browser.py)."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from mlp_demo.config import TrainConfig
from mlp_demo.jobs import SLOTS

from conftest import REPO

APP = str(REPO / "app.py")


@pytest.fixture
def app(monkeypatch, tiny_root, tmp_path):
    monkeypatch.setenv("MNIST_ROOT", str(tiny_root))
    monkeypatch.setenv("MLP_DEMO_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    yield at
    job = at.session_state["runs"].job if "runs" in at.session_state else None
    if job:
        job.stop()
        job.join(10)


def widget(at, name):
    return next(
        w for kind in ("slider", "select_slider", "selectbox", "toggle", "number_input", "radio")
        for w in getattr(at.sidebar, kind) if w.key == f"hp_{name}")


def button(at, label):
    return next(b for b in at.button if b.label == label)


def set_tiny_run(at, epochs=1, batch_size=64):
    widget(at, "layers").set_value(1)
    at.run()
    widget(at, "width_0").set_value(32)
    widget(at, "epochs").set_value(epochs)
    widget(at, "batch_size").set_value(batch_size)
    widget(at, "val_size").set_value(100)
    at.run()


def wait_until_done(at, timeout=60):
    end = time.monotonic() + timeout
    while at.session_state["runs"].job.running:
        assert time.monotonic() < end
        time.sleep(0.1)
    at.run()


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


def test_a_tiny_run_completes_and_shows_its_metrics(app):
    set_tiny_run(app)
    button(app, "Train").click().run()
    assert not app.exception and not app.error
    assert "Live" in app.selectbox(key="model_choice").value  # the pad follows the new model
    wait_until_done(app)
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Test accuracy"].rstrip("%")) > 80
    assert app.session_state["runs"].job.snapshot()["status"] == "finished"
    assert SLOTS.running == 0


def test_stop_ends_the_run(app):
    set_tiny_run(app, epochs=100, batch_size=1)
    button(app, "Train").click().run()
    assert button(app, "Train").disabled and not button(app, "Stop").disabled
    time.sleep(0.5)
    started = time.monotonic()
    button(app, "Stop").click().run()
    assert time.monotonic() - started < 5
    job = app.session_state["runs"].job
    assert not job.running and job.snapshot()["status"] == "stopped"
    assert button(app, "Train").disabled is False


def test_train_twice_starts_one_run(app):
    set_tiny_run(app, epochs=100, batch_size=1)
    button(app, "Train").click().run()
    assert button(app, "Train").disabled and SLOTS.running == 1
    app.run()
    assert button(app, "Train").disabled and SLOTS.running == 1


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
    app.text_input[0].input("../escape")  # a form: typed values arrive with the submit
    next(b for b in app.button if b.label == "Save").click().run()
    assert any("not a usable name" in e.value for e in app.error)
    app.text_input[0].input("tiny-one")
    next(b for b in app.button if b.label == "Save").click().run()
    assert (tmp_path / "tiny-one.safetensors").exists()
    assert any("Saved: tiny-one" in c for c in app.selectbox(key="model_choice").options)


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
    assert any("MNIST_ROOT" in e.value for e in app.error)
    assert "Shipped model" in app.selectbox(key="model_choice").value
