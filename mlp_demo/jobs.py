"""TrainingJob: a Trainer in a background thread, watched through a lock-guarded history.

The thread only writes plain numbers into the history; a UI polls snapshot() from its own
thread (Streamlit: a fragment with run_every), so no UI call ever happens off the UI thread.
A process-wide limit caps how many jobs train at once, so one busy server stays responsive.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from .config import TrainConfig
from .data import MnistSplits
from .drawing import predict_image
from .model import MLP
from .train import Trainer

MAX_CONCURRENT_JOBS = int(os.environ.get("MLP_DEMO_MAX_JOBS", "2"))
MAX_STEP_POINTS = 600  # per-step curves are averaged down to at most this many points
PREVIEW_EVERY_S = 0.5  # how often the weights behind live predictions are refreshed


class Busy(RuntimeError):
    """Too many runs are training at once on this server."""


class _Slots:
    """Counts running jobs across the whole process (every browser session)."""

    def __init__(self):
        self.lock, self.running = threading.Lock(), 0

    def acquire(self, limit: int) -> int:
        with self.lock:
            if self.running >= limit:
                raise Busy(f"{self.running} runs are training on this server right now, the most "
                           "it allows; try again when one finishes")
            self.running += 1
            return self.running

    def release(self) -> None:
        with self.lock:
            self.running -= 1


SLOTS = _Slots()


class StepCurve:
    """Per-step (step, value) pairs, bounded: when full, neighbours are averaged in pairs
    and each new point then stands for twice as many steps."""

    def __init__(self, max_points: int = MAX_STEP_POINTS):
        self.max_points, self.stride = max_points, 1
        self.steps, self.values, self._pending = [], [], []

    def add(self, step: int, value: float) -> None:
        self._pending.append(value)
        if len(self._pending) < self.stride:
            return
        self.steps.append(step)
        self.values.append(sum(self._pending) / len(self._pending))
        self._pending = []
        if len(self.values) >= self.max_points:
            self.steps = self.steps[1::2]
            self.values = [(a + b) / 2 for a, b in zip(self.values[::2], self.values[1::2])]
            self.stride *= 2


class TrainingJob:
    """One training run. start() returns at once; stop() ends it before the next batch."""

    def __init__(self, config: TrainConfig, load_data: Callable[[], MnistSplits]):
        self.config = config.validate()
        self.load_data = load_data
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.trainer: Trainer | None = None
        self.stop_requested = threading.Event()
        # Everything below is written by the training thread under self.lock.
        self.status, self.message = "starting", ""
        self.loss, self.lr = StepCurve(), StepCurve()
        self.epochs: list[dict] = []
        self.progress = {"epoch": 0, "step": 0, "total_steps": 0, "samples_per_s": 0.0,
                         "elapsed": 0.0}
        self.preview: MLP | None = None  # a copy of the weights, safe to predict with
        self._last_preview = 0.0

    def start(self, limit: int = MAX_CONCURRENT_JOBS) -> TrainingJob:
        running = SLOTS.acquire(limit)
        threads = max(1, (os.cpu_count() or 1) // running)
        self.thread = threading.Thread(target=self._run, args=(threads,), daemon=True,
                                       name="mlp_demo-training")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_requested.set()
        if self.trainer:
            self.trainer.stop()

    def join(self, timeout: float | None = None) -> None:
        if self.thread:
            self.thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def snapshot(self) -> dict:
        """A consistent copy of the history, made of plain lists and numbers."""
        with self.lock:
            return {"status": self.status, "message": self.message,
                    "progress": dict(self.progress), "epochs": [dict(e) for e in self.epochs],
                    "loss_steps": list(self.loss.steps), "loss": list(self.loss.values),
                    "lr_steps": list(self.lr.steps), "lr": list(self.lr.values),
                    "config": self.config.to_dict()}

    def predict(self, image: np.ndarray):
        """predict_image with the weights of the model as it trains (None until step 1)."""
        with self.lock:
            if self.preview is None:
                return None, None
            return predict_image(self.preview, image)

    def _run(self, threads: int) -> None:
        torch.set_num_threads(threads)  # per thread: the UI thread keeps its own count
        try:
            data = self.load_data()
            trainer = Trainer(self.config, data)
            with self.lock:
                self.trainer = trainer
                self.progress["total_steps"] = trainer.total_steps
            if self.stop_requested.is_set():
                trainer.stop()
            trainer.on("step", self._on_step)
            trainer.on("epoch", self._on_epoch)
            trainer.run()
            self._refresh_preview(force=True)
            with self.lock:
                self.status, self.message = trainer.status, trainer.message
        except Exception as e:  # shown in the UI; the server and other sessions go on
            with self.lock:
                self.status, self.message = "failed", str(e)
        finally:
            SLOTS.release()

    def _on_step(self, m: dict) -> None:
        with self.lock:
            self.status = "running"
            self.loss.add(m["step"], m["loss"])
            self.lr.add(m["step"], m["lr"])
            self.progress.update(epoch=m["epoch"], step=m["step"],
                                 samples_per_s=m["samples_per_s"], elapsed=m["elapsed"])
        self._refresh_preview()

    def _on_epoch(self, m: dict) -> None:
        with self.lock:
            self.epochs.append(dict(m))

    def _refresh_preview(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_preview < PREVIEW_EVERY_S:
            return
        self._last_preview = now
        if self.preview is None:
            preview = copy.deepcopy(self.trainer.model).cpu().eval()
            with self.lock:
                self.preview = preview
            return
        weights = {k: v.detach().to("cpu", copy=True)
                   for k, v in self.trainer.model.state_dict().items()}
        with self.lock:
            self.preview.load_state_dict(weights)

    def model(self) -> MLP | None:
        """The trained weights (a copy), for saving."""
        with self.lock:
            return copy.deepcopy(self.preview) if self.preview is not None else None
