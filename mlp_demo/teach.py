"""Teach a model your handwriting: fine-tune it on a few labelled drawings, mixed with MNIST
replay so that it does not forget MNIST (and the forgetting that remains is measured).

What carries a few examples over to other drawings of the same style (bench.handwriting
measures it on writers held out from teaching):
- each example is varied the way writers differ (rotation, slant, width, a smooth warp, pen
  width) and then fitted back into the field as the pad's preprocessing fits every drawing
  (data.fit_to_box), so the variations look like drawings, not like shifted MNIST images;
- the first layer stays as it is when two layers sit above it: its features are strokes,
  which every writer shares; the layers above learn the new style's shapes from them, and
  MNIST is forgotten less;
- a little label smoothing on the examples, which are few, keeps their logits modest.

Examples are 28x28 images made the MNIST way (drawing.preprocess), so a drawing on the pad, a
photo or a scan all become what the network sees (examples.py reads them). Used by the CLI
(`python -m mlp_demo teach`) and the app's TeachingJob.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass

import torch
from torch import nn

from .data import Augmentation, augment, normalize
from .model import MLP
from .train import Diverged, evaluate

MAX_EXAMPLES = 500
# Scale and shift are left out: fitting into the field undoes them.
EXAMPLE_AUGMENTATION = Augmentation(rotate_deg=20, scale=0, shift_px=0, slant=0.4, elastic_px=1.2,
                                    stroke=0.5, aspect=0.3)
EXAMPLE_LABEL_SMOOTHING = 0.1


@dataclass
class TeachConfig:
    steps: int = 700  # Adam steps; about 1 s per 100 on a 2-core CPU for the shipped model
    lr: float = 4e-4
    replay: float = 0.75  # share of each batch drawn from MNIST's training images
    batch_size: int = 64
    seed: int = 0

    def validate(self) -> TeachConfig:
        problems = []
        if not 1 <= self.steps <= 10_000:
            problems.append("steps must be between 1 and 10000")
        if not (0 < self.lr <= 1):
            problems.append("lr must be above 0 and at most 1")
        if not 0 <= self.replay < 1:
            problems.append("replay must be at least 0 and below 1")
        if not 2 <= self.batch_size <= 4096:
            problems.append("batch size must be between 2 and 4096")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return evaluate(model, images, labels)[1]


def predictions(model: nn.Module, images: torch.Tensor) -> list[int]:
    """The digit read for each image, in eval mode; the model's own mode is left as it was."""
    was_training = model.training
    try:
        with torch.inference_mode():
            return model.eval()(normalize(images)).argmax(1).tolist()
    finally:
        model.train(was_training)


def teach(model: MLP, images: torch.Tensor, labels: torch.Tensor, replay_x: torch.Tensor,
          replay_y: torch.Tensor, config: TeachConfig = TeachConfig(),
          stop: threading.Event | None = None, on_step=None) -> MLP:
    """A fine-tuned copy of the model: each batch mixes augmented copies of the examples with
    MNIST images (replay), so that the examples are learned without forgetting MNIST."""
    config.validate()
    # A copy: the model may be one that every visitor shares, kept read-only (no gradients).
    taught = copy.deepcopy(model).cpu().train().requires_grad_(True)
    generator = torch.Generator().manual_seed(config.seed)
    taught.set_dropout_generator(torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.Adam(taught_parameters(taught), lr=config.lr)
    n_own = max(1, round(config.batch_size * (1 - config.replay)))
    n_replay = config.batch_size - n_own if len(replay_x) else 0
    for step in range(1, config.steps + 1):
        if stop is not None and stop.is_set():
            break
        own = torch.randint(len(images), (n_own,), generator=generator)
        x = augment(images[own], generator, EXAMPLE_AUGMENTATION, refit=True)  # float [0, 1]
        y = labels[own]
        if n_replay:
            pick = torch.randint(len(replay_x), (n_replay,), generator=generator)
            x = torch.cat([x, replay_x[pick].float() / 255])
            y = torch.cat([y, replay_y[pick]])
        optimizer.zero_grad(set_to_none=True)
        logits = taught(normalize(x))
        loss = (nn.functional.cross_entropy(logits[:n_own], y[:n_own], reduction="sum",
                                            label_smoothing=EXAMPLE_LABEL_SMOOTHING)
                + nn.functional.cross_entropy(logits[n_own:], y[n_own:], reduction="sum"))
        loss = loss / len(y)
        if not math.isfinite(loss.item()):
            raise Diverged(f"the loss became {loss.item()} at step {step}: lower the learning rate")
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step, loss.item())
    return taught.eval()


def taught_parameters(model: MLP) -> list[nn.Parameter]:
    """The weights teaching changes: all but the first layer's when two or more layers sit
    above it (the shipped model), every layer's otherwise (with a single hidden layer, the
    output layer alone cannot learn a new shape: measured in bench.handwriting). The others
    stay fixed: requires_grad off, so backward skips them."""
    linear = [layer for layer in model if isinstance(layer, nn.Linear)]
    for layer in linear[:1] if len(linear) >= 3 else []:
        layer.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def teach_and_measure(model: MLP, images, labels, mnist, config: TeachConfig = TeachConfig()):
    """(taught model, the CLI's JSON numbers): the examples' and MNIST test accuracy, before
    and after. mnist: (train_x, train_y, test_x, test_y)."""
    train_x, train_y, test_x, test_y = mnist
    before = {"examples_accuracy_before": accuracy(model, images, labels),
              "test_accuracy_before": accuracy(model, test_x, test_y)}
    start = time.perf_counter()
    taught = teach(model, images, labels, train_x, train_y, config)
    seconds = time.perf_counter() - start
    return taught, {"examples": len(images), "seconds": seconds, **before,
                    "examples_accuracy_after": accuracy(taught, images, labels),
                    "test_accuracy_after": accuracy(taught, test_x, test_y)}
