import dataclasses
import re

import pytest

from mlp_demo.config import PRESETS, ConfigError, TrainConfig, field_meta


def test_defaults_and_presets_are_valid():
    for config in [TrainConfig(), *PRESETS.values()]:
        assert config.validate() is config


def test_default_stays_the_lectures_network():
    """One hidden layer, ReLU, Adam: h = relu(W1 x + b1), y = W2 h + b2 (issue 22 changed only
    its schedule, batch and smoothing); Fast aims at 98% within one epoch."""
    default = PRESETS["default"]
    assert default == TrainConfig() and len(default.hidden) == 1
    assert (default.activation, default.optimizer, default.augment) == ("relu", "adam", False)
    assert (default.batch_size, default.epochs, default.label_smoothing) == (128, 3, 0.1)
    assert PRESETS["fast"].epochs == 1 and PRESETS["fast"].hidden == (512, 512)


NUMERIC = [f.name for f in dataclasses.fields(TrainConfig) if field_meta(f.name)["low"] is not None
           and f.name != "hidden"]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_bound_is_rejected_with_what_is_allowed(name):
    meta, default = field_meta(name), getattr(TrainConfig(), name)
    step = 1 if isinstance(default, int) else meta["low"] * 0.5 or 0.01
    for bad in (meta["low"] - step, meta["high"] + step):
        bad = type(default)(bad) if isinstance(default, int) else bad
        low, high = (f"{meta['low']:g}", f"{meta['high']:g}") if isinstance(default, float) else (
            meta["low"], meta["high"])
        with pytest.raises(ConfigError, match=re.escape(f"{name} must be between {low} and {high}")):
            TrainConfig(**{name: bad}).validate()


@pytest.mark.parametrize("name", ["activation", "optimizer", "scheduler", "device"])
def test_every_choice_is_checked(name):
    with pytest.raises(ConfigError, match=f"{name} must be one of"):
        TrainConfig(**{name: "bogus"}).validate()


@pytest.mark.parametrize("hidden, message", [
    ((0,), "each hidden layer must have 1 to 4096 neurons"),
    ((5000,), "each hidden layer must have 1 to 4096 neurons"),
    ((64,) * 7, "at most 6 layer sizes"),
    ((1.5,), "each hidden layer must have 1 to 4096 neurons"),
])
def test_hidden_layers_are_checked(hidden, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(hidden=hidden).validate()


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"lr": float("nan")}, "lr must be a number"),
    ({"augment": "yes"}, "augment must be true or false"),
    ({"nesterov": True, "optimizer": "adam"}, "nesterov needs optimizer 'sgd'"),
])
def test_types_and_combinations_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes).validate()


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as e:
        TrainConfig(lr=100.0, epochs=0).validate()
    assert "lr must be" in str(e.value) and "epochs must be" in str(e.value)


def test_dict_round_trip_and_unknown_keys():
    config = TrainConfig(hidden=(64, 32), activation="gelu", lr=3e-3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"hidden_units": 3})


def test_zero_hidden_layers_is_a_linear_model():
    assert TrainConfig(hidden=()).validate().hidden == ()
