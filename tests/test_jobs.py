import threading
import time

import numpy as np
import pytest

from mlp_demo.jobs import SLOTS, Busy, StepCurve, TrainingJob

from test_drawing import drawn


def wait_for(condition, timeout=60):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_job_trains_in_the_background_and_records_plain_numbers(tiny_data, small_config):
    job = TrainingJob(small_config.replace(epochs=2), lambda: tiny_data).start()
    assert job.thread.name == "mlp_demo-training" and job.thread is not threading.current_thread()
    job.join(60)
    history = job.snapshot()
    assert history["status"] == "finished" and len(history["epochs"]) == 2
    assert len(history["loss"]) == len(history["loss_steps"]) == history["progress"]["total_steps"]
    assert history["epochs"][-1]["test_acc"] > 0.9
    assert job.model() is not None and SLOTS.running == 0


def test_stop_ends_a_job_quickly(tiny_data, small_config):
    job = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data).start()
    wait_for(lambda: job.snapshot()["progress"]["step"] > 5)
    started = time.monotonic()
    job.stop()
    job.join(5)
    assert not job.running and time.monotonic() - started < 1
    assert job.snapshot()["status"] == "stopped"


def test_concurrent_jobs_are_limited(tiny_data, small_config):
    slow = small_config.replace(epochs=200, batch_size=1)
    first = TrainingJob(slow, lambda: tiny_data).start(limit=1)
    try:
        with pytest.raises(Busy, match="try again"):
            TrainingJob(slow, lambda: tiny_data).start(limit=1)
    finally:
        first.stop()
        first.join(5)
    second = TrainingJob(small_config, lambda: tiny_data).start(limit=1)
    second.join(60)
    assert second.snapshot()["status"] == "finished"


def test_predictions_follow_the_live_model(tiny_data, small_config):
    job = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data)
    assert job.predict(drawn("1")) == (None, None)
    job.start()
    try:
        wait_for(lambda: job.preview is not None)
        probs, field = job.predict(drawn("1"))
        assert probs.shape == (10,) and field.shape == (28, 28)
        assert job.predict(np.zeros((280, 280), np.uint8)) == (None, None)
    finally:
        job.stop()
        job.join(5)


def test_failures_become_messages(small_config):
    def missing():
        raise FileNotFoundError("MNIST not found; set MNIST_ROOT")
    job = TrainingJob(small_config, missing).start()
    job.join(10)
    assert job.snapshot()["status"] == "failed" and "MNIST_ROOT" in job.snapshot()["message"]
    assert SLOTS.running == 0


def test_step_curve_stays_bounded_and_keeps_the_mean():
    curve = StepCurve(max_points=100)
    for step in range(1, 10_001):
        curve.add(step, float(step))
    assert len(curve.values) < 100 and curve.steps[-1] > 9000
    assert curve.values == sorted(curve.values)
    assert abs(np.mean(curve.values) - 5000) < 200
