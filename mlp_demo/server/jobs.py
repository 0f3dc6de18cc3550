"""The Job protocol, and the in-process jobs: TrainingJob (a Trainer in a background thread)
and TeachingJob (teach.teach in one), each watched through a lock-guarded history.

The thread only writes plain numbers into the history; a UI polls snapshot() from its own
thread (Streamlit: a fragment with run_every), so no UI call ever happens off the UI thread.
When the run ends, everything but the CPU weights and the history is released. Which jobs
may run at once is the RunQueue's business (limits.py), not the job's.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import dataclasses
import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from ..config import TrainConfig
from ..data import TRAIN_IMAGES, MnistSplits, split_mnist
from ..model import MLP
from ..teach import TeachConfig, accuracy, predictions, teach
from ..train import Diverged, Trainer

MAX_STEP_POINTS = 600  # per-step curves are averaged down to at most this many points
PREVIEW_EVERY_S = 0.5  # how often the weights behind live predictions are refreshed
# Training threads run at a lower CPU priority (Linux niceness) than the threads that serve
# pages, so on a busy 2-core server a drawing is answered first and training takes the rest.
TRAINING_NICENESS = 10
# For a queued run's estimated duration: about 6 FLOP per parameter per image (forward and
# backward), at the ~100 GFLOP/s an epoch really reaches on a 2-core CPU (README).
ESTIMATED_FLOP_PER_S = 1e11


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


@dataclass(frozen=True)
class Progress:
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    samples_per_s: float = 0.0
    elapsed: float = 0.0  # seconds of training (or teaching) so far


@dataclass(frozen=True)
class JobSnapshot:
    """A run's state at one moment, wherever it runs: what the page, the queue, the run history
    and the class board read. Built only by a job's snapshot() (and, for a run on another
    machine, by from_dict on what the worker sent)."""
    status: str  # queued | starting | running | finished | stopped | diverged | failed | cancelled
    kind: str  # "training" | "teaching"
    settings: dict  # the run's own settings: a TrainConfig's or a TeachConfig's fields
    message: str = ""
    progress: Progress = Progress()
    epochs: tuple[dict, ...] = ()  # the trainer's metrics at each epoch's end (teaching: one)
    loss_steps: tuple[int, ...] = ()
    loss: tuple[float, ...] = ()
    lr_steps: tuple[int, ...] = ()
    lr: tuple[float, ...] = ()
    teach: dict | None = None  # a teaching run's before and after, once taught
    worker: dict | None = None  # where a run on a cluster trains: {"pid", "node"}

    @property
    def x_axis(self) -> str:
        """What its curves are drawn over: a training run's epochs, a teaching run's steps."""
        return "epoch" if self.kind == "training" else "step"

    @property
    def last_epoch(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    @property
    def seconds(self) -> float:
        """The run's time, the one every view shows (the tab, the board, a saved model): from
        its start to its last result, the last epoch's evaluation included; before the first
        epoch ends, to its latest step."""
        return max(self.progress.elapsed, self.last_epoch.get("elapsed") or 0.0)

    def to_dict(self) -> dict:
        """Plain data, to send from a worker (from_dict rebuilds it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobSnapshot:
        fields = {**data, "progress": Progress(**data["progress"])}
        for name in ("epochs", "loss_steps", "loss", "lr_steps", "lr"):
            fields[name] = tuple(data[name])
        return cls(**fields)


def estimated_seconds(n_params: int, images: int) -> float:
    """How long training on this many images should take, before any step has been timed."""
    return 6 * n_params * images / ESTIMATED_FLOP_PER_S


def training_estimate(config: TrainConfig, n_train: int) -> float:
    return estimated_seconds(config.n_params(), n_train * config.epochs)


def teaching_estimate(model_config: TrainConfig, teach_config: TeachConfig) -> float:
    return estimated_seconds(model_config.n_params(), teach_config.batch_size * teach_config.steps)


def remaining_seconds(progress: Progress) -> float | None:
    """The steps left at the rate measured so far; None before a step has been timed."""
    p = progress
    if not (p.step and p.elapsed and p.total_steps):
        return None
    return max(0.0, (p.total_steps - p.step) * p.elapsed / p.step)


def eta_seconds(progress: Progress, estimate_s: float, max_seconds: float | None) -> float:
    """Seconds a run still needs (what the queue promises the next in line): from its rate once
    it runs, from its size before; never past the server's time limit for a run."""
    limit = max_seconds or float("inf")
    left = remaining_seconds(progress)
    if left is None:
        return min(estimate_s, limit)
    return max(0.0, min(left, limit - progress.elapsed))


class Job(Protocol):
    """What the page, the queue and the run history read from a run, wherever it runs. Kept
    small and free of threads, so that a job on another machine can implement it too.
    model_config is the TrainConfig that rebuilds the weights (what saving stores)."""

    visitor: str
    model_config: TrainConfig

    def start(self, on_done: Callable[[Job], None] | None = None) -> Job: ...
    def stop(self) -> None: ...
    def cancel(self, reason: str) -> None: ...
    @property
    def active(self) -> bool: ...
    @property
    def status(self) -> str: ...
    def snapshot(self) -> JobSnapshot: ...
    def eta_seconds(self) -> float: ...
    def model(self) -> MLP | None: ...


class TrainingJob:
    """One training run. start() returns at once; stop() ends it before the next batch.

    status: queued -> starting -> running -> finished | stopped | diverged | failed
    (or queued -> cancelled). max_seconds, if given, stops the run after that much training.
    """

    def __init__(self, config: TrainConfig, load_data: Callable[[], MnistSplits],
                 visitor: str = "", max_seconds: float | None = None, n_train: int | None = None):
        self.config = self.model_config = config.validate()
        self.load_data = load_data
        self.visitor, self.max_seconds = visitor, max_seconds
        self.n_train = TRAIN_IMAGES - config.val_size if n_train is None else n_train
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.trainer: Trainer | None = None
        self.stop_requested = threading.Event()
        # Everything below is written by the training thread under self.lock.
        self._status, self.message = "queued", ""
        self.loss, self.lr = StepCurve(), StepCurve()
        self.epochs: list[dict] = []
        self.progress = Progress()
        self.estimate_s = training_estimate(self.config, self.n_train)
        self.preview: MLP | None = None  # a CPU copy of the weights, safe to predict with
        self._last_preview = 0.0

    kind = "training"

    @property
    def status(self) -> str:
        with self.lock:
            return self._status

    @status.setter
    def status(self, value: str) -> None:  # callers hold self.lock
        self._status = value

    def start(self, on_done: Callable[[TrainingJob], None] | None = None) -> TrainingJob:
        with self.lock:
            self.status = "starting"
        self.thread = threading.Thread(target=self._run, args=(on_done,), daemon=True,
                                       name="mlp_demo-training")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_requested.set()
        trainer = self.trainer
        if trainer:
            trainer.stop()

    def cancel(self, reason: str) -> None:
        """The queue dropped this job before it started."""
        with self.lock:
            self.status, self.message = "cancelled", reason

    def join(self, timeout: float | None = None) -> None:
        if self.thread:
            self.thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def active(self) -> bool:
        """Queued or training: the tab's one run slot is taken."""
        return self.running or (self.thread is None and self._status == "queued")

    def eta_seconds(self) -> float:
        with self.lock:
            progress = self.progress
        return eta_seconds(progress, self.estimate_s, self.max_seconds)

    def snapshot(self) -> JobSnapshot:
        """A consistent copy of the history."""
        with self.lock:
            return JobSnapshot(
                status=self._status, kind=self.kind, settings=self.settings(),
                message=self.message, progress=self.progress,
                epochs=tuple(dict(e) for e in self.epochs),
                loss_steps=tuple(self.loss.steps), loss=tuple(self.loss.values),
                lr_steps=tuple(self.lr.steps), lr=tuple(self.lr.values), teach=self._taught())

    def _taught(self) -> dict | None:
        return None

    def settings(self) -> dict:
        """The settings this run used."""
        return self.config.to_dict()

    def _run(self, on_done) -> None:
        lower_priority(TRAINING_NICENESS)
        try:
            trainer = Trainer(self.config, self.load_data())
            with self.lock:
                self.trainer = trainer
                self.progress = replace(self.progress, total_steps=trainer.total_steps)
            if self.stop_requested.is_set():
                trainer.stop()
            trainer.on("step", self._on_step)
            trainer.on("epoch", self._on_epoch)
            trainer.run()
            self._refresh_preview(force=True)
            with self.lock:
                self.status, self.message = trainer.status, self.message or trainer.message
        except Exception as e:  # shown in the UI; the server and other sessions go on
            with self.lock:
                self.status, self.message = "failed", str(e)
        finally:
            self._release()
            if on_done:
                on_done(self)

    def _release(self) -> None:
        """Keep only what the page needs (the CPU weights and the history): the trainer, its
        optimizer state, weight snapshot and device copy of the data go."""
        with self.lock:
            self.trainer = None
        self.load_data = None
        gc.collect()  # the trainer and its callbacks form reference cycles
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        _return_freed_memory()

    def _on_step(self, m: dict) -> None:
        with self.lock:
            self.status = "running"
            self.loss.add(m["step"], m["loss"])
            self.lr.add(m["step"], m["lr"])
            self.progress = replace(self.progress, epoch=m["epoch"], step=m["step"],
                                    samples_per_s=m["samples_per_s"], elapsed=m["elapsed"])
        if self.max_seconds and m["elapsed"] > self.max_seconds:
            with self.lock:
                self.message = (f"stopped at the server's limit of {self.max_seconds:g} s per run "
                                "(MLP_DEMO_MAX_RUN_SECONDS); the weights trained so far are kept")
            self.trainer.stop()
        self._refresh_preview()

    def _on_epoch(self, m: dict) -> None:
        with self.lock:
            self.epochs.append(dict(m))

    def _refresh_preview(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_preview < PREVIEW_EVERY_S:
            return
        self._last_preview = now
        weights = {k: v.detach().to("cpu", copy=True)
                   for k, v in self.trainer.model.state_dict().items()}
        if self.preview is None:
            preview = MLP(self.model_config).eval()
            preview.load_state_dict(weights)
            with self.lock:
                self.preview = preview
            return
        with self.lock:
            self.preview.load_state_dict(weights)

    def model(self) -> MLP | None:
        """A copy of the current weights (in eval mode), or None before the first step."""
        with self.lock:
            return copy.deepcopy(self.preview) if self.preview is not None else None

    @property
    def has_weights(self) -> bool:
        return self.preview is not None


class TeachingJob(TrainingJob):
    """Teaching (teach.teach) as a job: queued, stopped, limited and watched like a training
    run. Its settings are its TeachConfig and its curves run over steps; model_config is the
    architecture of the model it started from, which the taught weights keep.

    Until the taught weights are ready the pad reads with the starting model. When done,
    .result holds each example's prediction and the MNIST test accuracy, before and after."""

    def __init__(self, model: MLP, images: torch.Tensor, labels: torch.Tensor,
                 load_data: Callable[[], MnistSplits], visitor: str = "",
                 max_seconds: float | None = None, teach_config: TeachConfig = TeachConfig()):
        super().__init__(model.config, load_data, visitor, max_seconds)
        self.config = self.teach_config = teach_config.validate()
        self.images, self.labels = images, labels
        self.preview = copy.deepcopy(model).cpu().eval()  # the starting model
        self.progress = Progress(total_steps=teach_config.steps)
        self.estimate_s = teaching_estimate(self.model_config, self.teach_config)
        self.result: dict | None = None

    kind = "teaching"

    def settings(self) -> dict:
        return dataclasses.asdict(self.teach_config)

    def _taught(self) -> dict | None:  # with self.lock held
        return copy.deepcopy(self.result)

    def _run(self, on_done) -> None:
        lower_priority(TRAINING_NICENESS)
        start = time.perf_counter()
        try:
            data, base = self.load_data(), self.preview
            before = predictions(base, self.images)
            test_before = accuracy(base, data.test_x, data.test_y)
            with self.lock:
                self.status = "running"
            taught = teach(base, self.images, self.labels, data.train_x, data.train_y,
                           self.teach_config, stop=self.stop_requested,
                           on_step=lambda step, loss: self._on_teach_step(step, loss, start))
            after = predictions(taught, self.images)
            test_after = accuracy(taught, data.test_x, data.test_y)
            labels = self.labels.tolist()
            with self.lock:
                self.preview = taught
                step = self.progress.step
                self.epochs.append({
                    "epoch": 1, "step": step, "samples_seen": step * self.teach_config.batch_size,
                    "elapsed": time.perf_counter() - start,
                    "train_loss": self.loss.values[-1] if self.loss.values else None,
                    "train_acc": _share_right(after, labels), "val_loss": None, "val_acc": None,
                    "test_loss": None, "test_acc": test_after})
                self.result = {"images": self.images.numpy(), "labels": labels,
                               "before": before, "after": after,
                               "examples_accuracy_before": _share_right(before, labels),
                               "examples_accuracy_after": _share_right(after, labels),
                               "test_accuracy_before": test_before, "test_accuracy_after": test_after}
                self.status = "stopped" if self.stop_requested.is_set() else "finished"
        except Diverged as e:  # the loss became NaN: the starting model stays
            with self.lock:
                self.status, self.message = "diverged", str(e)
        except Exception as e:
            with self.lock:
                self.status, self.message = "failed", str(e)
        finally:
            with self.lock:
                self.progress = replace(self.progress, elapsed=time.perf_counter() - start)
            self._release()
            if on_done:
                on_done(self)

    def _on_teach_step(self, step: int, loss: float, start: float) -> None:
        elapsed = time.perf_counter() - start
        with self.lock:
            self.loss.add(step, loss)
            self.lr.add(step, self.teach_config.lr)
            self.progress = replace(self.progress, epoch=1, step=step, elapsed=elapsed,
                                    samples_per_s=step * self.teach_config.batch_size / elapsed)
        if self.max_seconds and elapsed > self.max_seconds:
            with self.lock:
                self.message = (f"stopped at the server's limit of {self.max_seconds:g} s per run "
                                "(MLP_DEMO_MAX_RUN_SECONDS); the weights taught so far are kept")
            self.stop_requested.set()


class LocalJobs:
    """Makes the jobs a Session submits: in this process, in threads (cluster.RayJobs makes
    them on a Ray cluster instead). raw is MNIST as loaded: (train_x, train_y, test_x, test_y)."""

    def training(self, config: TrainConfig, raw: tuple, visitor: str,
                 max_seconds: float | None) -> TrainingJob:
        return TrainingJob(config, lambda: split_mnist(*raw, config.val_size, config.seed),
                           visitor=visitor, max_seconds=max_seconds, n_train=len(raw[0]) - config.val_size)

    def teaching(self, model: MLP, images: torch.Tensor, labels: torch.Tensor, raw: tuple,
                 visitor: str, max_seconds: float | None, teach_config: TeachConfig) -> TeachingJob:
        data = MnistSplits.without_validation(*raw)
        return TeachingJob(model, images, labels, lambda: data, visitor=visitor,
                           max_seconds=max_seconds, teach_config=teach_config)


def _share_right(predicted: list[int], labels: list[int]) -> float:
    return sum(p == y for p, y in zip(predicted, labels)) / max(len(labels), 1)


def lower_priority(niceness: int) -> None:
    """Renice the calling thread (on Linux a thread is its own task); the OpenMP workers it
    starts for torch inherit it. Raising one's niceness needs no privilege."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):  # not Linux
        pass


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS, so the server's RSS falls after a run."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc
        pass
