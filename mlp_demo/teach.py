"""Teach a model your handwriting: fine-tune it on a few labelled drawings, mixed with MNIST
replay so that it does not forget MNIST (and the forgetting that remains is measured).

Examples are 28x28 images made the MNIST way (drawing.preprocess), so a drawing on the pad, a
photo or a scan all become what the network sees. Used by the CLI (`python -m mlp_demo teach`).
"""

from __future__ import annotations

import copy
import csv
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import augment, normalize
from .model import MLP
from .train import evaluate

MAX_EXAMPLES = 500
MAX_IMAGE_PIXELS = 4096 * 4096  # a photo is fine; a decompression bomb is not
MAX_CSV_BYTES = 2**20  # 500 rows of paths fit many times over


class ExampleError(ValueError):
    """A row of the examples file that cannot be used; the message names the row."""


@dataclass
class TeachConfig:
    steps: int = 150  # Adam steps; about 2 s per 100 on a 2-core CPU for the shipped model
    lr: float = 5e-4
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


def read_examples(csv_path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An `image,label` CSV -> uint8 images (N, 28, 28), labels (N,) and the image paths.
    Paths may be absolute or relative to the CSV's folder. Any bad row is an ExampleError."""
    from PIL import Image, UnidentifiedImageError

    from .drawing import preprocess

    csv_path = Path(csv_path)
    try:
        if csv_path.stat().st_size > MAX_CSV_BYTES:
            raise ExampleError(f"{csv_path} is larger than an examples file can be (1 MB)")
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise ExampleError(f"cannot read {csv_path}: {e}") from None
    if not rows or [c.strip().lower() for c in rows[0]] != ["image", "label"]:
        raise ExampleError(f"{csv_path}: the first row must be the header 'image,label'")
    if len(rows) < 2:
        raise ExampleError(f"{csv_path} holds no examples")
    if len(rows) - 1 > MAX_EXAMPLES:
        raise ExampleError(f"{csv_path} holds {len(rows) - 1} examples; at most {MAX_EXAMPLES}")
    images, labels, paths = [], [], []
    for number, row in enumerate(rows[1:], start=2):
        where = f"{csv_path}, row {number}"
        if len(row) != 2:
            raise ExampleError(f"{where}: expected 'image,label', got {len(row)} values")
        name, label = row[0].strip(), row[1].strip()
        if label not in tuple("0123456789"):
            raise ExampleError(f"{where}: the label must be a digit 0-9, not {label!r}")
        path = Path(name) if Path(name).is_absolute() else csv_path.parent / name
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise ExampleError(f"{where}: {name} is {im.width}x{im.height}, too large")
                pixels = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "L"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise ExampleError(f"{where}: cannot read image {name} ({type(e).__name__})") from None
        field = preprocess(pixels)
        if field is None:
            raise ExampleError(f"{where}: {name} looks blank (no digit found)")
        images.append(torch.from_numpy((field * 255).round().astype(np.uint8)))
        labels.append(int(label))
        paths.append(name)
    return torch.stack(images), torch.tensor(labels), paths


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return evaluate(model, images, labels)[1]


def predictions(model: nn.Module, images: torch.Tensor) -> list[int]:
    with torch.inference_mode():
        model.eval()
        return model(normalize(images)).argmax(1).tolist()


def teach(model: MLP, images: torch.Tensor, labels: torch.Tensor, replay_x: torch.Tensor,
          replay_y: torch.Tensor, config: TeachConfig = TeachConfig(),
          stop: threading.Event | None = None, on_step=None) -> MLP:
    """A fine-tuned copy of the model: each batch mixes augmented copies of the examples with
    MNIST images (replay), so that the examples are learned without forgetting MNIST."""
    config.validate()
    taught = copy.deepcopy(model).cpu().train()
    generator = torch.Generator().manual_seed(config.seed)
    taught.set_dropout_generator(torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.Adam(taught.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    n_own = max(1, round(config.batch_size * (1 - config.replay)))
    n_replay = config.batch_size - n_own if len(replay_x) else 0
    for step in range(1, config.steps + 1):
        if stop is not None and stop.is_set():
            break
        own = torch.randint(len(images), (n_own,), generator=generator)
        x = augment(images[own], generator)  # float [0, 1]
        y = labels[own]
        if n_replay:
            pick = torch.randint(len(replay_x), (n_replay,), generator=generator)
            x = torch.cat([x, replay_x[pick].float() / 255])
            y = torch.cat([y, replay_y[pick]])
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(taught(normalize(x)), y)
        if not math.isfinite(loss.item()):
            raise ValueError(f"the loss became {loss.item()} at step {step}: lower the learning rate")
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step, loss.item())
    return taught.eval()


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
