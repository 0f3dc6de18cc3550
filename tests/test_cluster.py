"""Runs on a Ray cluster (cluster.py), against one local Ray instance for the whole session:
a run trains on a worker and streams, stops, keeps the time limit, drives the pad, fails with a
message when its worker is killed, and the cluster's queue keeps one run per visitor in line.

`.ci/run` installs requirements-cluster.txt; without Ray these tests skip (in CI they fail)."""

import os
import signal
import time

import numpy as np
import pytest
import torch

from mlp_demo.checkpoints import DEFAULT_CHECKPOINT
from mlp_demo.config import TrainConfig
from mlp_demo.server.limits import Limits
from mlp_demo.server.session import LIVE, SHIPPED, Session, SessionError
from mlp_demo.server.store import ModelStore

from helpers import drawn, png_data_url

if os.environ.get("CI"):
    import ray
else:
    ray = pytest.importorskip("ray")

pytestmark = pytest.mark.cluster
TINY = TrainConfig(hidden=(32,), epochs=1, batch_size=32, val_size=100, device="cpu")
ENDLESS = TINY.replace(epochs=200, batch_size=16)


@pytest.fixture(scope="session")
def ray_instance():
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200_000_000,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def on_ray(ray_instance, tmp_path, tiny_raw):
    """A factory of Sessions whose runs go to Ray, sharing one cluster queue."""
    from mlp_demo.server.cluster import ClusterRunQueue, RayJobs
    made = []

    def make(limits=Limits(), visitor=None, queue=None):
        queue = queue or ClusterRunQueue(limits)
        store = ModelStore(tmp_path, limits, shipped=DEFAULT_CHECKPOINT)
        me = Session(visitor or f"visitor-{len(made)}-{time.monotonic()}", queue, store, limits,
                     lambda: tiny_raw, jobs=RayJobs(cpus=1))
        made.append(me)
        return me
    yield make
    for me in made:
        me.stop()
        if me.job is not None:
            me.job.join(60)


def wait(condition, timeout=120, what="the condition"):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"waited {timeout} s for {what}"
        time.sleep(0.1)


def step(me) -> int:
    return me.job.snapshot().progress.step


def test_a_run_trains_on_a_worker_streams_its_progress_and_stops(on_ray):
    me = on_ray()
    me.train(ENDLESS)
    wait(lambda: step(me) > 0, what="the first step")
    snapshot = me.job.snapshot()
    assert snapshot.worker["pid"] != os.getpid()  # not the app's process
    assert snapshot.status == "running" and snapshot.kind == "training"
    where = snapshot.worker
    first = step(me)
    wait(lambda: step(me) > first + 20, what="more steps")
    assert len(me.job.snapshot().loss) > 0
    me.stop(wait_s=30)
    wait(lambda: not me.job.active, what="the run to end")
    assert me.job.status == "stopped" and me.history.latest.model() is not None
    wait(lambda: where in ray.get(me.queue.cluster.workers.remote()), what="the queue's record")


def test_a_run_on_ray_keeps_the_time_limit(on_ray):
    me = on_ray(Limits(max_run_seconds=2))
    me.train(ENDLESS)
    wait(lambda: not me.job.active, what="the time limit")
    snapshot = me.job.snapshot()
    assert snapshot.status == "stopped" and "MLP_DEMO_MAX_RUN_SECONDS" in snapshot.message
    assert 2 <= snapshot.progress.elapsed < 30


def test_its_weights_drive_the_pad(on_ray):
    me = on_ray()
    me.train(TINY)
    wait(lambda: not me.job.active, what="the run to end")
    assert me.job.status == "finished" and me.chosen == LIVE
    seen = me.predict(png_data_url(drawn("1")))
    worker = me.history.latest.model()  # the weights the worker sent back
    assert all(torch.equal(a, b) for a, b in zip(seen.model.state_dict().values(),
                                                  worker.state_dict().values()))
    me.choose(next(label for label in me.choices() if label.startswith(SHIPPED)))
    assert not np.allclose(me.predict(png_data_url(drawn("1"))).probs, seen.probs, atol=1e-3)


def test_a_killed_worker_is_a_failed_run_with_a_message(on_ray):
    me = on_ray()
    forget = me.queue._forget

    def slow_forget(job):  # a slow machine: the place is given back a moment after the end
        time.sleep(1)
        forget(job)
    me.queue._forget = slow_forget
    me.train(ENDLESS)
    wait(lambda: step(me) > 0, what="the first step")
    os.kill(me.job.snapshot().worker["pid"], signal.SIGKILL)
    wait(lambda: not me.job.active, what="the run to fail")
    snapshot = me.job.snapshot()
    assert snapshot.status == "failed" and "worker training this run was lost" in snapshot.message
    me.train(TINY)  # the tab's slot is free again
    wait(lambda: not me.job.active, what="the next run")
    assert me.job.status == "finished"


def test_the_cluster_queue_keeps_one_run_per_visitor_and_gives_places(on_ray):
    from mlp_demo.server.cluster import ClusterRunQueue
    limits = Limits(max_jobs=1)
    app_a, app_b = ClusterRunQueue(limits), ClusterRunQueue(limits)  # two app processes
    first = on_ray(limits, queue=app_a)
    first.train(ENDLESS)
    wait(lambda: step(first) > 0, what="the first run to train")
    second = on_ray(limits, queue=app_b)
    assert second.train(ENDLESS)[0].startswith("All 1 training slots are busy")
    third = on_ray(limits, queue=app_a)
    third.train(ENDLESS)
    wait(lambda: app_b.estimated_start(second.job) is not None, what="an estimated start")
    assert app_b.position(second.job) == 1 and app_a.position(third.job) == 2
    same_visitor = on_ray(limits, visitor=second.visitor, queue=app_a)  # another process
    with pytest.raises(SessionError, match="already has a run"):
        same_visitor.train(TINY)
    first.stop(wait_s=30)
    wait(lambda: step(second) > 0, what="the second run to start by itself")
    assert third.job.status == "queued" and app_a.position(third.job) == 1
    third.stop()
    assert third.job.status == "cancelled"


def test_teaching_runs_on_a_worker_too(on_ray):
    from mlp_demo.drawing import preprocess
    from mlp_demo.teach import TeachConfig
    me = on_ray()
    for i, shape in enumerate(("1", "0", "7")):
        me.add_example(preprocess(drawn(shape, width=12 + 6 * i)), 3)
    me.teach(TeachConfig(steps=30))
    wait(lambda: not me.job.active, what="teaching to end")
    snapshot = me.job.snapshot()
    assert snapshot.status == "finished" and snapshot.kind == "teaching"
    assert snapshot.worker["pid"] != os.getpid()
    assert snapshot.teach["labels"] == [3, 3, 3] and me.history.latest.model() is not None
