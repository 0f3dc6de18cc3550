import math

import pytest
import torch

from mlp_demo.config import PRESETS, ConfigError, TrainConfig
from mlp_demo.train import Trainer, evaluate, resolve_device


def test_loss_goes_down_and_accuracy_goes_up(tiny_data, small_config):
    losses = []
    trainer = Trainer(small_config.replace(epochs=2), tiny_data)
    _, acc_before = evaluate(trainer.model, tiny_data.test_x, tiny_data.test_y)
    trainer.on("step", lambda m: losses.append(m["loss"]))
    assert trainer.run() == "finished"
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert trainer.metrics["test_acc"] > max(0.9, acc_before)


@pytest.mark.parametrize("preset", ["default", "fast"])
def test_the_presets_learn_on_a_fixed_seed(tiny_data, preset):
    """Default and Fast as the app runs them (on the tests' tiny MNIST): the loss falls."""
    config = PRESETS[preset].replace(device="cpu", val_size=min(PRESETS[preset].val_size, 200))
    losses = []
    trainer = Trainer(config, tiny_data)
    trainer.on("step", lambda m: losses.append(m["loss"]))
    assert trainer.run() == "finished"
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_events_carry_plain_numbers(tiny_data, small_config):
    events = {"step": [], "epoch": [], "end": []}
    trainer = Trainer(small_config, tiny_data)
    for name, log in events.items():
        trainer.on(name, log.append)
    trainer.run()
    assert len(events["step"]) == trainer.steps_per_epoch == math.ceil(1000 / 32)
    assert set(events["step"][0]) >= {"loss", "lr", "samples_seen", "samples_per_s", "step", "epoch"}
    assert events["step"][-1]["samples_seen"] == 1000
    assert set(events["epoch"][0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "test_acc",
                                       "epoch_seconds"}
    assert events["end"][0]["test_acc"] == trainer.metrics["test_acc"]
    for event in events["step"] + events["epoch"]:
        assert all(isinstance(v, (int, float)) for v in event.values())


def test_same_seed_same_run(tiny_data, small_config):
    config = small_config.replace(augment=True, dropout=0.2)
    a, b = Trainer(config, tiny_data), Trainer(config, tiny_data)
    a.run(), b.run()
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("scheduler", ["none", "step", "cosine", "onecycle"])
def test_every_optimizer_and_scheduler_learns(tiny_data, small_config, optimizer, scheduler):
    lr = {"sgd": 0.05, "rmsprop": 1e-3}.get(optimizer, 3e-3)
    trainer = Trainer(small_config.replace(optimizer=optimizer, scheduler=scheduler, lr=lr), tiny_data)
    trainer.run()
    assert trainer.metrics["val_acc"] > 0.5


def test_schedulers_change_the_learning_rate(tiny_data, small_config):
    for scheduler, check in [("none", lambda a, b: a == b), ("cosine", lambda a, b: b < a * 0.01),
                             ("step", lambda a, b: b == pytest.approx(a * 0.01))]:
        lrs = []
        trainer = Trainer(small_config.replace(scheduler=scheduler, epochs=3), tiny_data)
        trainer.on("step", lambda m: lrs.append(m["lr"]))
        trainer.run()
        assert check(lrs[0], lrs[-1]), scheduler


def test_stop_is_honoured_within_one_batch(tiny_data, small_config):
    trainer = Trainer(small_config.replace(epochs=5), tiny_data)
    events = []
    trainer.on("step", lambda m: trainer.stop() if m["step"] == 3 else None)
    trainer.on("cancel", events.append)
    assert trainer.run() == "stopped"
    assert trainer.step == 3 and events == [{"step": 3, "epoch": 1}]


def test_a_diverging_run_stops_with_a_message_and_keeps_good_weights(tiny_data, small_config):
    trainer = Trainer(small_config.replace(optimizer="sgd", lr=10.0, momentum=0.99, epochs=3,
                                           scheduler="none"), tiny_data)
    errors = []
    trainer.on("error", errors.append)
    assert trainer.run() == "diverged"
    assert "loss became nan" in trainer.message.lower() or "loss became inf" in trainer.message
    assert "(lr 10)" in trainer.message and "lower the learning rate" in trainer.message
    assert errors[0]["message"] == trainer.message
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    loss, _ = evaluate(trainer.model, tiny_data.test_x, tiny_data.test_y)
    assert math.isfinite(loss)


def test_non_finite_weights_are_rolled_back_to_the_last_good_snapshot(tiny_data, small_config):
    trainer = Trainer(small_config.replace(epochs=3), tiny_data)
    first_layer = trainer.model[0].weight

    def poison(m):  # in the second epoch (32 steps each), before a new snapshot is due
        if m["step"] == 40:
            with torch.no_grad():
                first_layer[0, 0] = float("inf")
    trainer.on("step", poison)
    assert trainer.run() == "diverged"
    assert "at step 41" in trainer.message
    assert torch.isfinite(first_layer).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ConfigError, match="device 'cuda' is not available"):
        resolve_device("cuda")


def test_cpu_and_auto_always_resolve():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")


def test_a_nan_from_the_last_update_is_not_finished(tiny_data, small_config):
    """The loss of the last step is finite, but the update after it poisons the weights."""
    trainer = Trainer(small_config, tiny_data)
    first_layer = trainer.model[0].weight

    def poison(m):
        if m["step"] == trainer.total_steps:
            with torch.no_grad():
                first_layer[0, 0] = float("nan")
    trainer.on("step", poison)
    assert trainer.run() == "diverged" and "NaN" in trainer.message
    assert torch.isfinite(first_layer).all()  # the last good weights are back


def test_invalid_config_is_refused_before_training(tiny_data):
    with pytest.raises(ConfigError):
        Trainer(TrainConfig(batch_size=0), tiny_data)


def test_no_validation_split_gives_strict_json_metrics(tiny_data, small_config):
    import json

    from mlp_demo.data import split_mnist
    trainer = Trainer(small_config.replace(val_size=0), split_mnist(
        torch.cat([tiny_data.train_x, tiny_data.val_x]), torch.cat([tiny_data.train_y, tiny_data.val_y]),
        tiny_data.test_x, tiny_data.test_y, val_size=0))
    trainer.run()
    assert trainer.metrics["val_acc"] is None and trainer.metrics["test_acc"] > 0.5
    json.dumps(trainer.metrics, allow_nan=False)
