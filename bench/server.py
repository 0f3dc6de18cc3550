"""The public server's costs: python -m bench.server [--files N]

1. Listing the shared models folder with N checkpoints: cold (every header read) and warm
   (headers cached by mtime and size), the figure behind MLP_DEMO_STORE_*'s cost.
2. Memory a run leaves behind: the process's RSS before a run, while it trains, and after
   it is stopped (the trainer, optimizer state, snapshots and data copies released).
Prints a Markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mlp_demo import checkpoints
from mlp_demo.config import TrainConfig
from mlp_demo.model import MLP
from mlp_demo.server.limits import Limits
from mlp_demo.server.settings import Settings
from mlp_demo.server.store import ModelStore


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def listing_seconds(n_files: int) -> dict:
    config = TrainConfig(hidden=(16,))
    data = checkpoints.to_bytes(MLP(config), config, {"test_acc": 0.9}, 1.0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(n_files):
            (Path(folder) / f"m{i}.safetensors").write_bytes(data)
        store = ModelStore(folder, Limits())
        start = time.perf_counter()
        cold = len(store.listing().models)
        cold_s = time.perf_counter() - start
        warm_s = min(_timed(store.listing) for _ in range(5))
    return {"files": n_files, "listed": cold, "cold_s": cold_s, "warm_s": warm_s}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def memory_after_a_run(hidden: tuple[int, ...], steps: int) -> dict:
    from mlp_demo.data import load_mnist, split_mnist
    from mlp_demo.server.jobs import TrainingJob
    from mlp_demo.server.limits import configure_threads

    configure_threads()
    raw = load_mnist(Settings.from_env().mnist_root, download=False)  # the app holds it in a shared cache
    config = TrainConfig(hidden=hidden, epochs=50, device="cpu")
    before = rss_mb()
    job = TrainingJob(config, lambda: split_mnist(*raw, config.val_size, config.seed)).start()
    while job.snapshot().progress.step < steps:
        time.sleep(0.05)
    during = rss_mb()
    job.stop()
    job.join()
    return {"hidden": list(hidden), "params": config.n_params(), "rss_before_mb": before,
            "rss_training_mb": during, "rss_after_mb": rss_mb()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="checkpoints in the folder")
    args = parser.parse_args(argv)
    r = {"listing": listing_seconds(args.files),
         "memory": [memory_after_a_run((2048, 1024), 20), memory_after_a_run((512,), 50)]}
    lst = r["listing"]
    rows = ["| measure | result |", "|---|---|",
            f"| list {lst['files']:,} checkpoints, cold (every header read) | {lst['cold_s']:.3f} s |",
            f"| the same, warm (headers cached by mtime and size) | {lst['warm_s']:.3f} s |"]
    for m in r["memory"]:
        rows.append(f"| RSS around a run of {'-'.join(map(str, [784, *m['hidden'], 10]))} "
                    f"({m['params']:,} parameters), stopped | before {m['rss_before_mb']:.0f} MB, "
                    f"training {m['rss_training_mb']:.0f} MB, after {m['rss_after_mb']:.0f} MB "
                    f"({m['rss_after_mb'] - m['rss_before_mb']:+.0f} MB) |")
    print("\n".join(rows), end="\n\n")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
