"""The CUDA path, against the CPU path. Skipped where no GPU is present (CI has none);
run on a GPU machine with: python -m pytest tests/test_cuda.py"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlp_demo import checkpoints
from mlp_demo.data import augment
from mlp_demo.drawing import predict_image
from mlp_demo.server.jobs import TrainingJob
from mlp_demo.train import Trainer, evaluate, resolve_device

from helpers import drawn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def _exact_float32():
    # TF32 would make GPU and CPU differ by more than float32 rounding.
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


def step_losses(config, data) -> tuple[Trainer, list[float]]:
    trainer, losses = Trainer(config, data), []
    trainer.on("step", lambda m: losses.append(m["loss"]))
    assert trainer.run() == "finished"
    return trainer, losses


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"


def test_cuda_training_follows_cpu_training(tiny_data, small_config):
    """Same seed, same batches, same initial weights: the GPU run's losses track the CPU run's."""
    cpu, cpu_losses = step_losses(small_config, tiny_data)
    gpu, gpu_losses = step_losses(small_config.replace(device="cuda"), tiny_data)
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert gpu.data.train_x.device.type == "cuda"
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3, atol=1e-4)
    assert abs(gpu.metrics["test_acc"] - cpu.metrics["test_acc"]) <= 0.01


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_and_augmentation_train_on_cuda(tiny_data, small_config, optimizer):
    lr = {"sgd": 0.05, "rmsprop": 1e-3}.get(optimizer, 3e-3)  # as in test_train.py
    config = small_config.replace(device="cuda", optimizer=optimizer, lr=lr, augment=True,
                                  dropout=0.2, scheduler="onecycle", epochs=2)
    _, losses = step_losses(config, tiny_data)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_augment_on_cuda_matches_cpu(tiny_data):
    images = tiny_data.train_x[:64]
    cpu = augment(images, torch.Generator().manual_seed(3))
    gpu = augment(images.cuda(), torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


def test_cuda_model_saves_loads_and_predicts_on_cpu(tiny_data, small_config, tmp_path):
    trainer, _ = step_losses(small_config.replace(device="cuda"), tiny_data)
    path = checkpoints.save(tmp_path / "gpu.safetensors", trainer.model, trainer.config,
                            trainer.metrics, trainer.train_seconds)
    model, info = checkpoints.load(path)
    assert next(model.parameters()).device.type == "cpu"
    _, accuracy = evaluate(model, tiny_data.test_x, tiny_data.test_y)
    assert accuracy == pytest.approx(trainer.metrics["test_acc"], abs=0.01)
    gpu_probs, _ = predict_image(trainer.model, drawn("1"))
    cpu_probs, _ = predict_image(model, drawn("1"))
    np.testing.assert_allclose(gpu_probs, cpu_probs, atol=1e-4)


def test_job_trains_on_cuda_and_previews_on_cpu(tiny_data, small_config):
    job = TrainingJob(small_config.replace(device="cuda", epochs=2), lambda: tiny_data).start()
    job.join(timeout=120)
    snap = job.snapshot()
    assert snap.status == "finished", snap.message
    assert len(snap.epochs) == 2
    assert next(job.model().parameters()).device.type == "cpu"
    probs, _ = job.predict(drawn("1"))
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-5
