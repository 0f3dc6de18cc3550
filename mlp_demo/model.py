"""MLP(config): 784 pixels in, hidden layers of the configured widths, 10 logits out.

Softmax is not part of the model: nn.CrossEntropyLoss wants logits, and only the
displayed probabilities need softmax (predict_proba). The initial weights come from the
config's seed alone, not from torch's global generator, which other runs share.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig

ACTIVATION_LAYERS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh,
                     "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
N_PIXELS, N_CLASSES = 28 * 28, 10


class Dropout(nn.Module):
    """nn.Dropout drawing from its own generator: nn.Dropout takes none, and torch's global
    generator is shared by every run in the process, so overlapping runs would disturb
    each other's masks. The trainer sets .generator; without one it uses the global one."""

    def __init__(self, p: float):
        super().__init__()
        self.p, self.generator = p, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep * (1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Sequential):
    """h = act(W1 x + b1), ..., y = Wk h + bk, with optional dropout after each activation."""

    def __init__(self, config: TrainConfig):
        layers, width = [], N_PIXELS
        for size in config.hidden:
            layers += [nn.Linear(width, size), ACTIVATION_LAYERS[config.activation]()]
            if config.dropout:
                layers.append(Dropout(config.dropout))
            width = size
        layers.append(nn.Linear(width, N_CLASSES))
        super().__init__(*layers)
        self.config = config
        self.reset_parameters(torch.Generator().manual_seed(config.seed))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """nn.Linear's own initialisation, drawn from the given generator."""
        for layer in self:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(len(x), N_PIXELS))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_dropout_generator(self, generator: torch.Generator | None) -> None:
        for layer in self:
            if isinstance(layer, Dropout):
                layer.generator = generator


def parameter_shapes(config: TrainConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict's keys and shapes for a config, without building the model (which
    could be hundreds of MB for a file that merely claims a large config)."""
    shapes, index, width = {}, 0, N_PIXELS
    for size in (*config.hidden, N_CLASSES):
        shapes[f"{index}.weight"], shapes[f"{index}.bias"] = (size, width), (size,)
        index += 3 if config.dropout else 2  # Linear, activation[, Dropout]
        width = size
    return shapes


@torch.inference_mode()
def predict_proba(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (N, 10) for normalised inputs (N, 784), in eval mode. A model
    already in eval mode (every shared one) is only read, never switched."""
    inputs = inputs.to(next(model.parameters()).device)
    if not model.training:
        return model(inputs).softmax(dim=1).cpu()
    try:
        return model.eval()(inputs).softmax(dim=1).cpu()
    finally:
        model.train()
