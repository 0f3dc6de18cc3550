"""The teaching views' computations, checked by hand counts and by the model's own algebra."""

import numpy as np
import pytest
import torch

from mlp_demo.config import TrainConfig
from mlp_demo.data import normalize
from mlp_demo.insight import (
    confusion_matrix,
    contributions,
    hidden_activations,
    misclassified,
    most_confused,
    per_class_accuracy,
    predict_all,
    weight_images,
)
from mlp_demo.model import MLP
from mlp_demo.plots import diverging, weights_grid


def test_confusion_matrix_against_a_hand_count():
    labels = [0, 0, 1, 1, 1, 2, 9]
    predicted = [0, 1, 1, 1, 7, 2, 4]
    counts = confusion_matrix(labels, predicted)
    expected = np.zeros((10, 10), int)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (1, 7), (2, 2), (9, 4)]:
        expected[t, p] += 1
    assert (counts == expected).all() and counts.sum() == 7


def test_per_class_accuracy_and_most_confused():
    counts = confusion_matrix([0, 0, 1, 1, 1, 2, 2, 2, 2], [0, 1, 1, 1, 7, 3, 3, 3, 2])
    acc = per_class_accuracy(counts)
    assert acc[0] == 0.5 and acc[1] == pytest.approx(2 / 3) and acc[2] == 0.25
    assert np.isnan(acc[5])  # never occurs
    assert most_confused(counts, top=3) == [(2, 3, 3), (0, 1, 1), (1, 7, 1)]


def test_misclassified_selection_is_the_pair_most_confident_first():
    labels = np.array([3, 3, 3, 5, 3])
    probs = np.full((5, 10), 0.01)
    probs[0, 8], probs[1, 3], probs[2, 8], probs[3, 8], probs[4, 8] = 0.6, 0.9, 0.95, 0.9, 0.7
    assert misclassified(labels, probs, true=3, predicted=8) == [2, 4, 0]
    assert misclassified(labels, probs, true=3, predicted=8, limit=2) == [2, 4]
    assert misclassified(labels, probs, true=5, predicted=3) == []


def test_weight_images_reshape_the_first_layer_exactly():
    model = MLP(TrainConfig(hidden=(100, 20)))
    images, units = weight_images(model, limit=64)
    assert images.shape == (64, 28, 28) and len(set(units)) == 64
    w = model[0].weight.detach().numpy()
    for image, unit in zip(images, units):
        assert np.array_equal(image.reshape(784), w[unit])
    norms = np.linalg.norm(w, axis=1)
    assert min(norms[units]) >= max(np.delete(norms, units))  # the rule: largest norms
    grid = weights_grid(images, columns=8, scale=1)
    assert grid.shape == (8 * 30 - 2, 8 * 30 - 2, 3)


def test_diverging_colours_are_centred_on_zero():
    rgb = diverging(np.array([[-2.0, 0.0, 2.0]]))
    assert tuple(rgb[0, 1]) == (255, 255, 255)
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[0, 2, 2] > rgb[0, 2, 0]  # red below, blue above


def test_a_blank_drawing_gives_a_zero_contribution_map():
    model = MLP(TrainConfig(hidden=(32,)))
    blank = normalize(torch.zeros(1, 28, 28))[0]
    assert not contributions(model, blank, blank, target=3).any()


def test_contributions_add_up_to_the_change_in_the_logit():
    x = normalize(torch.rand(1, 28, 28))[0]
    blank = normalize(torch.zeros(1, 28, 28))[0]
    linear = MLP(TrainConfig(hidden=()))  # exact: the logit is linear in the pixels
    with torch.no_grad():
        change = (linear(x[None]) - linear(blank[None]))[0, 4].item()
    assert contributions(linear, x, blank, 4).sum() == pytest.approx(change, rel=1e-4, abs=1e-5)
    for target in range(10):  # and W's row times (x - blank) pixel by pixel
        w = linear[0].weight[target].detach()
        assert np.allclose(contributions(linear, x, blank, target).reshape(784),
                           (w * (x - blank)).numpy(), atol=1e-6)
    relu = MLP(TrainConfig(hidden=(64,)))  # a Riemann sum: close
    with torch.no_grad():
        change = (relu(x[None]) - relu(blank[None]))[0, 4].item()
    assert contributions(relu, x, blank, 4, steps=256).sum() == pytest.approx(change, abs=0.02)


def test_hidden_activations_are_the_first_layer_after_its_nonlinearity():
    model = MLP(TrainConfig(hidden=(16, 8)))
    x = torch.randn(784)
    h = hidden_activations(model, x)
    assert np.allclose(h, torch.relu(model[0](x[None]))[0].detach().numpy(), atol=1e-6)
    assert hidden_activations(MLP(TrainConfig(hidden=())), x).shape == (10,)


def test_predict_all_matches_the_model():
    model = MLP(TrainConfig(hidden=(16,)))
    images = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    probs = predict_all(model, images, chunk=3)
    assert probs.shape == (7, 10) and torch.allclose(probs.sum(1), torch.ones(7))
    assert torch.equal(probs.argmax(1), model.eval()(normalize(images)).argmax(1))


@pytest.mark.parametrize("trained", [False, True])
def test_predict_all_in_bfloat16_keeps_float32_argmax(tiny_data, monkeypatch, trained):
    """The fast path (bfloat16, close calls redone in float32) counts the same answers. Forced
    on every CPU: one without native bfloat16 emulates it, so its numbers may differ a little
    more, but the argmax, all that the confusion matrix counts, must be float32's."""
    import mlp_demo.insight as insight
    from mlp_demo.train import Trainer
    config = TrainConfig(hidden=(256, 64), epochs=1, val_size=200, device="cpu")
    model = MLP(config)
    if trained:
        Trainer(config, tiny_data, model).run()
    images = torch.cat([tiny_data.train_x, tiny_data.test_x])  # more than the calibration set
    monkeypatch.setattr(insight, "_fast_bf16", lambda: True)
    fast = insight.predict_all(model, images, chunk=300)
    exact = model.eval()(normalize(images)).softmax(1)
    assert torch.equal(fast.argmax(1), exact.argmax(1))
    assert torch.allclose(fast, exact, atol=0.02 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 0.05)
    assert not model.training and next(model.parameters()).dtype == torch.float32
