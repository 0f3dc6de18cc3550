"""MLP(config): 784 pixels in, hidden layers of the configured widths, 10 logits out.

Softmax is not part of the model: nn.CrossEntropyLoss wants logits, and only the
displayed probabilities need softmax (predict_proba).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

ACTIVATION_LAYERS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh,
                     "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
N_PIXELS, N_CLASSES = 28 * 28, 10


class MLP(nn.Sequential):
    """h = act(W1 x + b1), ..., y = Wk h + bk, with optional dropout after each activation."""

    def __init__(self, config: TrainConfig):
        layers, width = [], N_PIXELS
        for size in config.hidden:
            layers += [nn.Linear(width, size), ACTIVATION_LAYERS[config.activation]()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = size
        layers.append(nn.Linear(width, N_CLASSES))
        super().__init__(*layers)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(len(x), N_PIXELS))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.inference_mode()
def predict_proba(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (N, 10) for normalised inputs (N, 784), in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = model(inputs.to(device)).softmax(dim=1).cpu()
    model.train(was_training)
    return probs
