"""The teaching views' costs: python -m bench.views

For the shipped model and a model at the server's parameter cap: the time to compute each view
(confusion matrix over the 10,000 test images, misclassified selection, first-layer weight grid,
why-this-prediction), and training speed with the live views refreshed meanwhile at the app's
cadence (pad and prediction each second, weights every two) against training alone, in one
process, the run in a TrainingJob as in the app.
Prints a Markdown table, then one JSON line.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py sets it, before torch loads

import json
import time

import numpy as np
import torch

from mlp_demo import checkpoints
from mlp_demo.config import TrainConfig
from mlp_demo.data import load_mnist, normalize, split_mnist
from mlp_demo.drawing import predict_image, preprocess
from mlp_demo.insight import (
    confusion_matrix,
    contributions,
    hidden_activations,
    misclassified,
    most_confused,
    predict_all,
    weight_images,
)
from mlp_demo.model import MLP
from mlp_demo.plots import confusion_figure, weights_grid
from mlp_demo.server.jobs import TrainingJob
from mlp_demo.server.limits import Limits, configure_threads
from mlp_demo.server.settings import Settings


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def view_seconds(model, test_x, test_y, image) -> dict:
    probs = predict_all(model, test_x)
    counts = confusion_matrix(test_y.numpy(), probs.argmax(1).numpy())
    x = normalize(torch.from_numpy(preprocess(image))[None])[0]
    blank = normalize(torch.zeros(1, 28, 28))[0]
    return {
        "confusion_s": best_of(lambda: confusion_figure(
            confusion_matrix(test_y.numpy(), predict_all(model, test_x).argmax(1).numpy()),
            counts.diagonal() / counts.sum(1))),
        "misclassified_s": best_of(lambda: misclassified(test_y.numpy(), probs.numpy(),
                                                         *most_confused(counts, 1)[0][:2])),
        "weights_s": best_of(lambda: weights_grid(weight_images(model, 64)[0])),
        "why_s": best_of(lambda: (preprocess(image), hidden_activations(model, x),
                                  contributions(model, x, blank, 7))),
    }


def training_rate(config, data, views=None, seconds: float = 8.0) -> float:
    """Samples per second of a run as the app trains it (a TrainingJob's thread, at its lower
    priority), over `seconds`, with views(job, tick) called every second meanwhile."""
    job = TrainingJob(config, lambda: data).start()
    while job.snapshot().progress.step < 3:
        time.sleep(0.01)
    first, start = job.snapshot().progress.step, time.perf_counter()
    for tick in range(int(seconds)):
        if views:
            views(job, tick)
        time.sleep(max(0.0, start + tick + 1 - time.perf_counter()))
    steps = job.snapshot().progress.step - first
    wall = time.perf_counter() - start
    job.stop()
    job.join()
    return steps * config.batch_size / wall


def main() -> None:
    configure_threads()
    train_x, train_y, test_x, test_y = load_mnist(Settings.from_env().mnist_root, download=False)
    from PIL import Image, ImageDraw
    pad = Image.new("L", (280, 280))
    ImageDraw.Draw(pad).line([(70, 50), (210, 50), (120, 240)], fill=255, width=20)
    image = np.asarray(pad)
    shipped = checkpoints.load(checkpoints.DEFAULT_CHECKPOINT)[0]
    capped = MLP(TrainConfig(hidden=(2048, 1024)))  # 3.7M parameters, under the 4M cap
    assert capped.n_params() <= Limits().max_params
    r = {"shipped": view_seconds(shipped, test_x, test_y, image),
         "at_cap": view_seconds(capped, test_x, test_y, image)}
    config = TrainConfig(epochs=50, device="cpu")
    data = split_mnist(train_x, train_y, test_x, test_y, config.val_size)

    def views(job, tick):  # what the app computes while the live model is shown
        model = job.model()  # the pad's fragment, each second: predict, why this prediction
        probs, field = predict_image(model, image)
        x = normalize(torch.from_numpy(field)[None])[0]
        hidden_activations(model, x)
        contributions(model, x, normalize(torch.zeros(1, 28, 28))[0], int(probs.argmax()))
        if tick % 2 == 0:  # the first-layer weights' fragment, every two seconds
            weights_grid(weight_images(model, 64)[0])
    alone, watched = [], []
    for _ in range(2):  # alternate, against the machine's drift
        alone.append(training_rate(config, data))
        watched.append(training_rate(config, data, views))
    r["train_alone_samples_per_s"], r["train_with_views_samples_per_s"] = max(alone), max(watched)
    rows = ["| view (best of 3) | shipped 784-1024-256-10 | 784-2048-1024-10 (at the cap) |",
            "|---|---|---|"]
    for key, label in (("confusion_s", "confusion matrix, 10,000 test images, and its figure"),
                       ("misclassified_s", "misclassified selection"),
                       ("weights_s", "first-layer weight grid (64 units)"),
                       ("why_s", "why this prediction (preprocessing, activations, map)")):
        rows.append(f"| {label} | {r['shipped'][key] * 1000:.0f} ms | {r['at_cap'][key] * 1000:.0f} ms |")
    slow = 1 - r["train_with_views_samples_per_s"] / r["train_alone_samples_per_s"]
    rows.append(f"| training, default settings: alone / with the live views refreshed | "
                f"{r['train_alone_samples_per_s']:,.0f} / {r['train_with_views_samples_per_s']:,.0f} "
                f"samples/s ({slow:.1%} slower) | |")
    print("\n".join(rows), end="\n\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
