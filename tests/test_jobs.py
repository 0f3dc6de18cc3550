import gc
import threading
import time
import weakref

import numpy as np
import pytest
import torch

from mlp_demo.data import MnistSplits
from mlp_demo.server.jobs import StepCurve, TrainingJob
from mlp_demo.train import Trainer

from helpers import drawn


def wait_for(condition, timeout=60):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_job_trains_in_the_background_and_records_plain_numbers(tiny_data, small_config):
    seen = []
    job = TrainingJob(small_config.replace(epochs=2), lambda: tiny_data)
    job.start(on_done=lambda j: seen.append(threading.current_thread().name))
    job.join(60)
    assert seen == ["mlp_demo-training"]  # the run, and its end, happened off the caller's thread
    history = job.snapshot()
    assert history.status == "finished" and len(history.epochs) == 2
    assert len(history.loss) == len(history.loss_steps) == history.progress.total_steps
    assert history.epochs[-1]["test_acc"] > 0.9
    assert job.model() is not None and not job.active


def test_stop_ends_a_job_before_its_next_batch(tiny_data, small_config):
    job = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data).start()
    wait_for(lambda: job.snapshot().progress.step > 5)
    job.stop()
    job.join(30)
    assert not job.running and job.snapshot().status == "stopped"
    assert job.snapshot().progress.step < job.snapshot().progress.total_steps


def test_a_finished_or_stopped_job_keeps_only_weights_and_history(tiny_data, small_config):
    """Memory: the trainer, its optimizer state, snapshots and the data copy are released."""
    refs = {}

    def load():
        data = MnistSplits(*(t.clone() for t in vars(tiny_data).values()))
        refs["data"] = weakref.ref(data.train_x)
        return data
    job = TrainingJob(small_config.replace(epochs=200, batch_size=8), load).start()
    wait_for(lambda: job.trainer is not None and job.snapshot().progress.step > 60)
    trainer = job.trainer
    refs["trainer"], refs["optimizer"] = weakref.ref(trainer), weakref.ref(trainer.optimizer)
    refs["snapshot"] = weakref.ref(trainer.good_weights[0])
    del trainer
    job.stop()
    job.join(30)
    gc.collect()
    assert {name: ref() is None for name, ref in refs.items()} == dict.fromkeys(refs, True)
    assert job.trainer is None and job.load_data is None
    assert job.preview is not None and job.snapshot().loss  # what the page needs stays
    assert next(job.preview.parameters()).device.type == "cpu"


def test_a_run_stops_itself_at_the_time_limit_and_keeps_its_weights(tiny_data, small_config):
    job = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data,
                      max_seconds=0.3).start()
    job.join(60)
    history = job.snapshot()
    assert history.status == "stopped" and "limit" in history.message
    assert history.progress.step < history.progress.total_steps
    assert job.model() is not None


def test_the_live_model_is_a_copy_of_the_weights_as_they_train(tiny_data, small_config):
    from mlp_demo.drawing import predict_image
    job = TrainingJob(small_config.replace(epochs=200, batch_size=1), lambda: tiny_data)
    assert job.model() is None  # before the first step
    job.start()
    try:
        wait_for(lambda: job.model() is not None)
        model = job.model()
        assert model is not job.model() and not model.training  # a copy each time, for reading
        probs, field = predict_image(model, drawn("1"))
        assert probs.shape == (10,) and field.shape == (28, 28)
    finally:
        job.stop()
        job.join(30)


def test_a_job_keeps_to_the_job_protocol(tiny_data, small_config):
    from mlp_demo.server.jobs import Job
    job = TrainingJob(small_config, lambda: tiny_data)
    members = [m for m in dir(Job) if not m.startswith("_")] + list(Job.__annotations__)
    assert all(hasattr(job, m) for m in members), members
    assert job.status == "queued" and job.active and job.model_config == small_config
    h = job.snapshot()
    assert h.kind == "training" and h.x_axis == "epoch" and h.settings["epochs"] == 1


def test_failures_become_messages(small_config):
    def missing():
        raise FileNotFoundError("MNIST not found; set MNIST_ROOT")
    done = []
    job = TrainingJob(small_config, missing).start(on_done=done.append)
    job.join(10)
    assert job.snapshot().status == "failed" and "MNIST_ROOT" in job.snapshot().message
    assert done == [job]


def test_same_seed_same_losses_with_and_without_a_concurrent_run(tiny_data, small_config):
    """Each run draws shuffling, augmentation and dropout from its own generators."""
    config = small_config.replace(epochs=2, batch_size=16, dropout=0.3, augment=True)

    def losses(trainer):
        out = []
        trainer.on("step", lambda m: out.append(m["loss"]))
        return out
    alone = Trainer(config, tiny_data)
    alone_losses = losses(alone)
    alone.run()
    first, second = Trainer(config, tiny_data), Trainer(config.replace(seed=7), tiny_data)
    first_losses, _ = losses(first), losses(second)
    threads = [threading.Thread(target=t.run) for t in (first, second)]
    for t in threads:
        t.start()
    torch.rand(1000)  # and the global generator moves meanwhile
    for t in threads:
        t.join()
    assert len(first_losses) == len(alone_losses)
    assert np.allclose(first_losses, alone_losses, atol=1e-6, rtol=0)


def test_step_curve_stays_bounded_and_keeps_the_mean():
    curve = StepCurve(max_points=100)
    for step in range(1, 10_001):
        curve.add(step, float(step))
    assert len(curve.values) < 100 and curve.steps[-1] > 9000
    assert curve.values == sorted(curve.values)
    assert abs(np.mean(curve.values) - 5000) < 200


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_is_reproducible_from_its_generator(dropout):
    from mlp_demo.model import Dropout
    layer = Dropout(dropout).train()
    x = torch.ones(4, 100)
    layer.generator = torch.Generator().manual_seed(3)
    a = layer(x)
    layer.generator = torch.Generator().manual_seed(3)
    assert torch.equal(a, layer(x))
    assert torch.equal(layer.eval()(x), x)
    if dropout:
        assert set(a.unique().tolist()) == {0.0, 2.0}


def test_a_teaching_job_fine_tunes_in_the_background_and_reports_before_and_after(tiny_data, small_config):
    from mlp_demo.model import MLP
    from mlp_demo.server.jobs import TeachingJob
    from mlp_demo.server.limits import Limits, RunQueue
    from mlp_demo.teach import TeachConfig

    trainer = Trainer(small_config, tiny_data)
    trainer.run()
    base = trainer.model.cpu()
    # Shapes unlike the training digits (transposed), with labels the model must learn.
    images = tiny_data.test_x[:12].transpose(1, 2).contiguous()
    labels = (tiny_data.test_y[:12] + 3) % 10
    job = TeachingJob(base, images, labels, lambda: tiny_data, visitor="me",
                      teach_config=TeachConfig(steps=300, lr=2e-3))
    assert job.preview is not base and isinstance(job.preview, MLP)  # the pad reads with a copy
    queue = RunQueue(Limits(max_jobs=1))
    assert queue.submit(job) == 0
    job.join(60)
    history = job.snapshot()
    result = history.teach
    assert history.status == "finished", history.message
    assert result["labels"] == labels.tolist() and len(result["before"]) == len(result["after"]) == 12
    assert result["examples_accuracy_after"] > result["examples_accuracy_before"] + 0.5
    assert 0 < result["test_accuracy_after"] <= 1
    assert history.epochs[-1]["test_acc"] == result["test_accuracy_after"]
    assert history.progress.step == 300 and len(history.loss) > 0
    # Its own settings and x-axis, not those of the training run it started from.
    assert history.kind == "teaching" and history.x_axis == "step"
    assert history.settings == {"steps": 300, "lr": 2e-3, "replay": 0.75, "batch_size": 64, "seed": 0}
    assert job.model_config == small_config  # what rebuilds (and saves) the weights
    assert job.model() is not None and not job.active and queue.counts() == (0, 0)
    assert torch.equal(job.model()(torch.zeros(1, 784)), job.preview(torch.zeros(1, 784)))


def test_a_teaching_job_stops_and_keeps_what_it_learned(tiny_data, small_config):
    from mlp_demo.model import MLP
    from mlp_demo.server.jobs import TeachingJob
    from mlp_demo.teach import TeachConfig

    job = TeachingJob(MLP(small_config), tiny_data.test_x[:4], tiny_data.test_y[:4],
                      lambda: tiny_data, teach_config=TeachConfig(steps=10_000, batch_size=2))
    job.start()
    wait_for(lambda: job.snapshot().progress.step > 5)
    job.stop()
    job.join(30)
    history = job.snapshot()
    assert history.status == "stopped" and history.teach is not None
    assert history.progress.step < 10_000


def test_a_teaching_job_that_fails_is_not_called_diverged(tiny_data, small_config):
    """Only a non-finite loss is divergence; any other error is a failure with its message."""
    from mlp_demo.model import MLP
    from mlp_demo.server.jobs import TeachingJob
    from mlp_demo.teach import TeachConfig

    def broken():
        raise ValueError("the replay images are the wrong shape")
    job = TeachingJob(MLP(small_config), tiny_data.test_x[:4], tiny_data.test_y[:4], broken,
                      teach_config=TeachConfig(steps=5))
    job.start().join(30)
    assert job.status == "failed" and "wrong shape" in job.snapshot().message
    diverging = TeachingJob(MLP(small_config), tiny_data.test_x[:4], tiny_data.test_y[:4],
                            lambda: tiny_data, teach_config=TeachConfig(steps=50, lr=1.0))
    with torch.no_grad():
        for p in diverging.preview.parameters():
            p.mul_(1e30)  # logits overflow: the loss is not finite at the first step
    diverging.start().join(30)
    assert diverging.status == "diverged", diverging.snapshot().message


@pytest.mark.parametrize("max_seconds", [None, 1.0])
def test_the_eta_is_one_function_for_a_local_a_teaching_and_a_ray_job(tiny_raw, small_config, max_seconds):
    """The queue's promise to the next in line: the same settings give the same ETA wherever a
    run trains, and none is past the server's time limit (a teaching job's once was)."""
    pytest.importorskip("ray")
    from mlp_demo.model import MLP
    from mlp_demo.server.cluster import RayJobs
    from mlp_demo.server.jobs import LocalJobs, Progress, teaching_estimate, training_estimate
    from mlp_demo.teach import TeachConfig

    class NoCluster(RayJobs):
        def _raw_ref(self, raw):  # the object store is not needed to price a run
            return None

    config = small_config.replace(epochs=40, hidden=(512, 512))
    teach_config = TeachConfig(steps=10_000, batch_size=256)
    model = MLP(config)
    images, labels = torch.zeros(3, 28, 28, dtype=torch.uint8), torch.tensor([1, 2, 3])
    made = {}
    for where, maker in (("local", LocalJobs()), ("ray", NoCluster())):
        made[where, "training"] = maker.training(config, tiny_raw, "v", max_seconds)
        made[where, "teaching"] = maker.teaching(model, images, labels, tiny_raw, "v", max_seconds,
                                                 teach_config)
    n_train = len(tiny_raw[0]) - config.val_size
    limit = max_seconds or float("inf")
    for (where, kind), job in made.items():
        estimate = (training_estimate(config, n_train) if kind == "training"
                    else teaching_estimate(config, teach_config))
        assert job.eta_seconds() == pytest.approx(min(estimate, limit)), (where, kind)
        running = Progress(step=10, total_steps=100, elapsed=0.5)
        if where == "local":
            job.progress = running
        else:
            job._set(progress=running)
        assert job.eta_seconds() == pytest.approx(min(4.5, limit - 0.5)), (where, kind)
    assert min(training_estimate(config, n_train), teaching_estimate(config, teach_config)) > 1.0


def test_a_run_has_one_time_the_tab_the_board_and_a_saved_model_all_show(tiny_data, small_config):
    """Issue 33: the board said 16 s where the tab said 17.5 s. Now one measure: to the last
    result, the last epoch's evaluation included."""
    from mlp_demo.server.membership import board_entry
    from mlp_demo.server.runs import RunHistory, summary
    job = TrainingJob(small_config, lambda: tiny_data).start()
    job.join(120)
    run, _ = RunHistory().add(job)
    h = job.snapshot()
    assert h.seconds == h.epochs[-1]["elapsed"] >= h.progress.elapsed
    assert summary(run)["seconds"] == board_entry(run)["seconds"] == h.seconds
