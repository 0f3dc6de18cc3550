"""The teaching views' costs: python -m bench.views

For the shipped model and a model at the server's parameter cap: the time to compute each view
(confusion matrix over the 10,000 test images, misclassified selection, first-layer weight grid,
why-this-prediction), and training speed with the views being refreshed meanwhile (every second,
from another thread, as the app's fragments do) against training alone, in one process.
Prints a Markdown table, then one JSON line.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import torch

from mlp_demo import checkpoints
from mlp_demo.config import TrainConfig
from mlp_demo.data import load_mnist, mnist_root, normalize, split_mnist
from mlp_demo.drawing import preprocess
from mlp_demo.insight import (
    confusion_matrix,
    contributions,
    hidden_activations,
    misclassified,
    most_confused,
    predict_all,
    weight_images,
)
from mlp_demo.limits import Limits, configure_threads
from mlp_demo.model import MLP
from mlp_demo.plots import confusion_figure, weights_grid
from mlp_demo.train import Trainer


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
    """Samples per second over the first `seconds` of a run, with `views()` called every second
    from another thread meanwhile."""
    trainer = Trainer(config, data)
    done = threading.Event()

    def watch():
        while not done.wait(1.0):
            views(trainer.model)
    if views:
        threading.Thread(target=watch, daemon=True).start()
    start = time.perf_counter()
    trainer.on("step", lambda m: trainer.stop() if time.perf_counter() - start > seconds else None)
    trainer.run()
    done.set()
    return trainer.samples_seen / (time.perf_counter() - start)


def main() -> None:
    configure_threads()
    train_x, train_y, test_x, test_y = load_mnist(mnist_root(), download=False)
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

    def views(model):  # what the open views compute each second for the live model
        live = MLP(config)
        live.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
        weights_grid(weight_images(live, 64)[0])
        x = normalize(torch.from_numpy(preprocess(image))[None])[0]
        contributions(live, x, normalize(torch.zeros(1, 28, 28))[0], 7)
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
    rows.append(f"| training, default settings: alone / with the live views refreshed each second | "
                f"{r['train_alone_samples_per_s']:,.0f} / {r['train_with_views_samples_per_s']:,.0f} "
                f"samples/s ({slow:.1%} slower) | |")
    print("\n".join(rows), end="\n\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
