"""Pure computations for the teaching views: what a model gets wrong, what its first layer
learned, and why it read a drawing the way it did. Plain tensors and numbers in and out."""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch
from torch import nn

from .data import normalize
from .model import N_CLASSES

CALIBRATION_IMAGES = 256  # run both ways, to measure how far bfloat16 moves the logits
RECHECK_FACTOR = 4  # images whose top two logits are closer than 4x that are redone in float32


@torch.inference_mode()
def predict_all(model: nn.Module, images: torch.Tensor, chunk: int = 2500) -> torch.Tensor:
    """Softmax probabilities (N, 10) for uint8 images (N, 28, 28), in eval mode, on the CPU.

    On a CPU that multiplies bfloat16 natively (twice float32's speed: the confusion matrix of
    a trained model at the parameter cap then takes under 300 ms), the bulk runs in bfloat16.
    The first CALIBRATION_IMAGES also run in float32 to measure bfloat16's largest logit error,
    and every image whose top two logits are closer than RECHECK_FACTOR times that is redone
    in float32: the argmax, all that the confusion matrix counts, is float32's."""
    was_training = model.training
    model.eval()
    try:
        if not _fast_bf16() or len(images) <= CALIBRATION_IMAGES:
            return torch.cat([model(normalize(x)).softmax(1) for x in images.split(chunk)])
        half = copy.deepcopy(model).to(torch.bfloat16)
        logits = torch.cat([half(normalize(x).to(torch.bfloat16)).float() for x in images.split(chunk)])
        exact = model(normalize(images[:CALIBRATION_IMAGES]))
        error = (logits[:CALIBRATION_IMAGES] - exact).abs().max()
        logits[:CALIBRATION_IMAGES] = exact
        top2 = logits.topk(2, dim=1).values
        close = torch.nonzero(top2[:, 0] - top2[:, 1] < RECHECK_FACTOR * error).flatten()
        close = close[close >= CALIBRATION_IMAGES]
        for rows in close.split(chunk) if len(close) else ():
            logits[rows] = model(normalize(images[rows]))
        return logits.softmax(1)
    finally:
        model.train(was_training)


@functools.cache
def _fast_bf16() -> bool:
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def confusion_matrix(labels, predicted, n_classes: int = N_CLASSES) -> np.ndarray:
    """counts[true, predicted]."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    return np.bincount(labels * n_classes + predicted, minlength=n_classes**2).reshape(
        n_classes, n_classes)


def per_class_accuracy(counts: np.ndarray) -> np.ndarray:
    """Of each true digit, the share read right (NaN where a digit never occurs)."""
    totals = counts.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)


def most_confused(counts: np.ndarray, top: int = 5) -> list[tuple[int, int, int]]:
    """The (true, predicted, count) pairs most often confused, largest first."""
    off = counts.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = [(int(i // counts.shape[1]), int(i % counts.shape[1])) for i in order]
    return [(t, p, int(off[t, p])) for t, p in pairs if off[t, p] > 0]


def misclassified(labels, probs, true: int, predicted: int, limit: int = 48) -> list[int]:
    """Indices of the images of digit `true` read as `predicted`, most confident first."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    picked = np.flatnonzero((labels == true) & (probs.argmax(1) == predicted))
    return picked[np.argsort(-probs[picked, predicted], kind="stable")][:limit].tolist()


def first_layer(model: nn.Module) -> nn.Linear:
    return next(m for m in model.modules() if isinstance(m, nn.Linear))


def weight_images(model: nn.Module, limit: int = 64) -> tuple[np.ndarray, list[int]]:
    """Each chosen first-layer unit's 784 incoming weights as a 28x28 image, and the units'
    indices. The rule: the units with the largest weight norm (the most decided ones)."""
    weights = first_layer(model).weight.detach().cpu()
    units = torch.argsort(weights.norm(dim=1), descending=True, stable=True)[:limit].tolist()
    return weights[units].reshape(len(units), 28, 28).numpy(), units


def hidden_activations(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The first hidden layer's output (after its activation) for one normalised input (784,);
    for a linear model (no hidden layer), its logits."""
    layers = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    with torch.inference_mode():
        h = layers[0](x.reshape(1, -1))
        if len(layers) > 2:
            h = layers[1](h)
    return h[0].cpu().numpy()


def contributions(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, target: int,
                  steps: int = 32) -> np.ndarray:
    """Integrated gradients of logit `target` from `baseline` (the blank pad) to `x`, both
    normalised (784,): per pixel, how much it pushed toward the digit (+) or away (-). They
    add up to logit(x) - logit(baseline), exactly for a linear model and to within the
    Riemann sum otherwise; x == baseline gives a zero map.

    The gradient is taken with respect to the input only (autograd.grad, not .backward()):
    the model may be one that every visitor shares, so nothing is written into its
    parameters' .grad and its mode is not touched (a model in training mode is copied)."""
    if model.training:
        model = copy.deepcopy(model).eval()
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps  # midpoints
    path = (baseline + alphas[:, None] * (x - baseline)[None]).requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(path)[:, target].sum(), path)
    return ((x - baseline) * grad.mean(0)).reshape(28, 28).detach().numpy()
