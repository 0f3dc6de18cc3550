import pytest
import torch
from torch import nn

from mlp_demo.config import ACTIVATIONS, TrainConfig
from mlp_demo.model import MLP, predict_proba


@pytest.mark.parametrize("hidden", [(), (16,), (64, 32, 16)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_shapes_and_parameter_count(hidden, activation):
    model = MLP(TrainConfig(hidden=hidden, activation=activation))
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)
    sizes = [784, *hidden, 10]
    assert model.n_params() == sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def test_dropout_layers_only_when_asked():
    assert not any(isinstance(m, nn.Dropout) for m in MLP(TrainConfig(hidden=(8, 8))))
    assert sum(isinstance(m, nn.Dropout) for m in MLP(TrainConfig(hidden=(8, 8), dropout=0.3))) == 2


def test_logits_out_softmax_only_for_display():
    model = MLP(TrainConfig(hidden=(16,)))
    x = torch.randn(4, 784)
    logits = model.eval()(x)
    assert not torch.allclose(logits.sum(1), torch.ones(4))
    probs = predict_proba(model, x)
    assert torch.allclose(probs.sum(1), torch.ones(4)) and torch.equal(probs.argmax(1), logits.argmax(1))
