"""Shared fixtures: a tiny MNIST written as real IDX files, and the real MNIST where present."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_demo.config import TrainConfig
from mlp_demo.data import load_mnist, split_mnist

REPO = Path(__file__).resolve().parent.parent


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images whose class k is a bright 6x6 block at one of ten places, plus noise:
    easy enough that a small MLP learns it in one epoch, so tests can check that learning works."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        top, left = 4 + 10 * (k // 5) + rng.integers(-1, 2), 2 + 5 * (k % 5) + rng.integers(-1, 2)
        images[i, top:top + 6, max(left, 0):left + 6] = 255
    return images, labels


def write_idx(folder: Path, name: str, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0, 0, dtype 0x08, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    (folder / name).write_bytes(header + array.astype(np.uint8).tobytes())


def make_tiny_mnist(root: Path, n_train: int = 1200, n_test: int = 300) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw, f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw, f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="session")
def tiny_raw(tiny_root):
    return load_mnist(str(tiny_root), download=False)


@pytest.fixture
def tiny_data(tiny_raw):
    return split_mnist(*tiny_raw, val_size=200, seed=0)


@pytest.fixture
def small_config() -> TrainConfig:
    return TrainConfig(hidden=(32,), epochs=1, batch_size=32, val_size=200, device="cpu")


@pytest.fixture(scope="session")
def real_raw():
    """The full MNIST from MNIST_ROOT. In CI (CI=true) its absence fails the test, not skips it."""
    root = os.environ.get("MNIST_ROOT")
    if not root or not (Path(root) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI expects the full MNIST under MNIST_ROOT={root!r}")
        pytest.skip("the full MNIST is not available (set MNIST_ROOT)")
    return load_mnist(root, download=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
