"""Trainer: the six-step training loop, its optimizers and schedulers, evaluation and events.

The trainer knows nothing of who watches it (minGPT style): the CLI's progress bar and
the app's live curves subscribe with trainer.on(event, callback) and receive plain
numbers. Events: "step", "epoch", "end", "cancel", "error".
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict

import torch
from torch import nn

from .config import ConfigError, TrainConfig
from .data import MnistSplits, augment, batch_indices, normalize
from .model import MLP

SNAPSHOT_EVERY = 50  # steps between copies of known-good weights (a copy costs ~1 step)


def _accelerators() -> dict[str, bool]:
    return {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}


def device_choices() -> list[str]:
    """What the device setting may name on this machine: auto, cpu and each accelerator found."""
    return ["auto", "cpu"] + [name for name, ok in _accelerators().items() if ok]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; asking for a missing device is a ConfigError."""
    available = _accelerators()
    if name == "auto":
        name = next((d for d, ok in available.items() if ok), "cpu")
    elif name != "cpu" and not available.get(name, False):
        raise ConfigError(f"device {name!r} is not available on this machine; choose auto or cpu")
    return torch.device(name)


def make_optimizer(config: TrainConfig, params, device: torch.device) -> torch.optim.Optimizer:
    c = config
    # fused kernels do the whole update in one pass over the weights (CPU and CUDA).
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay, **fused)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
    return torch.optim.RMSprop(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def make_scheduler(config: TrainConfig, optimizer, total_steps: int):
    """A per-step learning-rate schedule over the whole run (None for a constant rate)."""
    s = torch.optim.lr_scheduler
    if config.scheduler == "step":  # divide by 10 after each third of the run
        return s.StepLR(optimizer, step_size=max(1, total_steps // 3), gamma=0.1)
    if config.scheduler == "cosine":
        return s.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.scheduler == "onecycle":
        return s.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    return None


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             chunk: int = 5000) -> tuple[float | None, float | None]:
    """(mean cross-entropy, accuracy) of the model on uint8 images, in eval mode;
    (None, None) for no images (no validation split), which JSON can carry and NaN cannot."""
    if len(images) == 0:
        return None, None
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for x, y in zip(images.split(chunk), labels.split(chunk)):
        logits = model(normalize(x))
        loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return loss / len(images), correct / len(images)


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the message says what to change."""


class Trainer:
    def __init__(self, config: TrainConfig, data: MnistSplits, model: MLP | None = None):
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.data = data.to(self.device)
        # Every random draw of this run comes from its own generators, seeded from the config:
        # torch's global generator is shared by every run in the process.
        self.model = (model or MLP(config)).to(self.device)
        self.generator = torch.Generator().manual_seed(config.seed)  # shuffling, augmentation
        self.dropout_generator = torch.Generator(self.device).manual_seed(config.seed)
        self.model.set_dropout_generator(self.dropout_generator)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = make_optimizer(config, self.model.parameters(), self.device)
        self.steps_per_epoch = math.ceil(len(self.data.train_x) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = make_scheduler(config, self.optimizer, self.total_steps)
        self.stop_requested = threading.Event()
        self.callbacks = defaultdict(list)
        self.step = self.epoch = self.samples_seen = 0
        self.metrics: dict = {}  # the last epoch's numbers
        self.good_weights: list[torch.Tensor] | None = None  # restored if the loss turns NaN
        self.train_seconds = 0.0
        self.status = "ready"  # -> running -> finished | stopped | diverged | failed
        self.message = ""

    def on(self, event: str, callback) -> None:
        self.callbacks[event].append(callback)

    def emit(self, event: str, **numbers) -> None:
        for callback in self.callbacks[event]:
            callback(numbers)

    def stop(self) -> None:
        """Ask the loop to stop; it does so before the next batch."""
        self.stop_requested.set()

    def run(self) -> str:
        """Train for config.epochs; returns the final status. Never raises for a diverged run."""
        self.status, start = "running", time.perf_counter()
        try:
            for epoch in range(1, self.config.epochs + 1):
                self.epoch = epoch
                if not self.train_one_epoch(start):
                    self.status = "stopped"
                    break
                self.evaluate_epoch(start)
            else:
                self.status = "finished"
            self.check_weights_finite()  # the last update may have made them NaN
            if self.status == "stopped":
                self.emit("cancel", step=self.step, epoch=self.epoch)
            else:
                self.emit("end", **self.metrics)
        except Diverged as e:
            self.status, self.message = "diverged", str(e)
            self.emit("error", message=self.message, step=self.step)
        except Exception as e:
            self.status, self.message = "failed", f"{type(e).__name__}: {e}"
            self.emit("error", message=self.message, step=self.step)
            raise
        finally:
            self.train_seconds = time.perf_counter() - start
        return self.status

    def check_weights_finite(self) -> None:
        """Raise Diverged (after restoring the last good weights) if any weight is NaN or inf."""
        if all(torch.isfinite(p).all() for p in self.model.parameters()):
            return
        self.restore_snapshot()
        raise Diverged(f"the weights became NaN or infinite by step {self.step} "
                       f"(lr {self.config.lr:g}): lower the learning rate")

    def train_one_epoch(self, start: float) -> bool:
        """One pass over the shuffled training set; False if a stop was requested."""
        c, data, model = self.config, self.data, self.model
        model.train()
        epoch_start, seen = time.perf_counter(), 0
        loss_sum, correct = 0.0, torch.zeros((), dtype=torch.long, device=self.device)
        for idx in batch_indices(len(data.train_x), c.batch_size, self.generator, self.device):
            if self.stop_requested.is_set():
                return False
            # 1. fetch a batch: gather the device-resident uint8 images, augment, normalise.
            # index_select copies whole rows; x[idx] goes element by element, 10x slower on CPU.
            images, labels = data.train_x.index_select(0, idx), data.train_y.index_select(0, idx)
            x = normalize(augment(images, self.generator) if c.augment else images)
            # 2. reset gradients
            self.optimizer.zero_grad(set_to_none=True)
            # 3. forward
            logits = model(x)
            # 4. loss
            loss = self.loss_fn(logits, labels)
            loss_value = loss.item()  # a CPU-GPU sync point, needed for the finiteness check
            if not math.isfinite(loss_value):
                self.restore_snapshot()
                lr = self.optimizer.param_groups[0]["lr"]
                raise Diverged(f"loss became {loss_value} at step {self.step + 1} (lr {lr:g}): "
                               "lower the learning rate")
            if self.step % SNAPSHOT_EVERY == 0:
                self.take_snapshot()  # these weights just gave a finite loss
            # 5. backward
            loss.backward()
            # 6. step
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this update uses
            self.optimizer.step()
            if self.scheduler:
                self.scheduler.step()

            self.step += 1
            seen += len(idx)
            self.samples_seen += len(idx)
            loss_sum += loss_value * len(idx)
            correct += (logits.argmax(1) == labels).sum()
            self.emit("step", step=self.step, epoch=self.epoch, loss=loss_value,
                      lr=lr, samples_seen=self.samples_seen,
                      samples_per_s=seen / max(time.perf_counter() - epoch_start, 1e-9),
                      elapsed=time.perf_counter() - start)
        self.metrics = {"train_loss": loss_sum / seen, "train_acc": correct.item() / seen,
                        "epoch_seconds": time.perf_counter() - epoch_start}
        return True

    def evaluate_epoch(self, start: float) -> None:
        val_loss, val_acc = evaluate(self.model, self.data.val_x, self.data.val_y)
        test_loss, test_acc = evaluate(self.model, self.data.test_x, self.data.test_y)
        self.metrics.update(epoch=self.epoch, step=self.step, samples_seen=self.samples_seen,
                            val_loss=val_loss, val_acc=val_acc,
                            test_loss=test_loss, test_acc=test_acc,
                            elapsed=time.perf_counter() - start)
        self.emit("epoch", **self.metrics)

    def take_snapshot(self) -> None:
        params = [p.detach() for p in self.model.parameters()]
        if self.good_weights is None:
            self.good_weights = [p.clone() for p in params]
        else:
            torch._foreach_copy_(self.good_weights, params)

    def restore_snapshot(self) -> None:
        if self.good_weights is not None:
            with torch.no_grad():
                torch._foreach_copy_(list(self.model.parameters()), self.good_weights)
