import pytest
import torch

from mlp_demo.config import ACTIVATIONS, TrainConfig
from mlp_demo.model import MLP, Dropout, parameter_shapes, predict_proba


@pytest.mark.parametrize("hidden", [(), (16,), (64, 32, 16)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_shapes_and_parameter_count(hidden, activation):
    model = MLP(TrainConfig(hidden=hidden, activation=activation))
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)
    sizes = [784, *hidden, 10]
    assert model.n_params() == sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def test_dropout_layers_only_when_asked():
    assert not any(isinstance(m, Dropout) for m in MLP(TrainConfig(hidden=(8, 8))))
    assert sum(isinstance(m, Dropout) for m in MLP(TrainConfig(hidden=(8, 8), dropout=0.3))) == 2


@pytest.mark.parametrize("hidden, dropout", [((), 0.0), ((16,), 0.0), ((64, 32), 0.2)])
def test_parameter_shapes_and_count_without_building(hidden, dropout):
    config = TrainConfig(hidden=hidden, dropout=dropout)
    model = MLP(config)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == parameter_shapes(config)
    assert config.n_params() == model.n_params()


def test_initial_weights_come_from_the_seed_not_the_global_generator():
    config = TrainConfig(hidden=(16,))
    torch.manual_seed(1)
    a = MLP(config)
    torch.manual_seed(2)
    b = MLP(config)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(MLP(config.replace(seed=1))[0].weight, a[0].weight)
    # the same distribution as nn.Linear's own initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert a[0].weight.abs().max() <= 1 / 784**0.5 and a[0].weight.std() > 0.5 / 784**0.5 / 3**0.5


def test_dropout_matches_torch_in_expectation():
    layer = Dropout(0.25).train()
    layer.generator = torch.Generator().manual_seed(0)
    out = layer(torch.ones(200_000))
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    assert abs(out.mean().item() - 1) < 0.01


def test_logits_out_softmax_only_for_display():
    model = MLP(TrainConfig(hidden=(16,)))
    x = torch.randn(4, 784)
    logits = model.eval()(x)
    assert not torch.allclose(logits.sum(1), torch.ones(4))
    probs = predict_proba(model, x)
    assert torch.allclose(probs.sum(1), torch.ones(4)) and torch.equal(probs.argmax(1), logits.argmax(1))
