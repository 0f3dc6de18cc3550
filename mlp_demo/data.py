"""MNIST as uint8 tensors held on the training device, batching by index, batched augmentation.

The whole dataset is 55 MB as uint8, so it lives on the device and a batch is an index
into it: no DataLoader, no per-sample PIL transforms in the training hot path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training pixels scaled to [0, 1]
_SHIFT = torch.tensor(-MNIST_MEAN / MNIST_STD)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataMissing(FileNotFoundError):
    """MNIST is neither on disk nor downloadable; the message says where it was looked for."""


def mnist_root() -> str:
    return os.environ.get("MNIST_ROOT", "./data")


@dataclass
class MnistSplits:
    """uint8 images (N, 28, 28) and int64 labels (N,) of the train, validation and test splits."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device) -> MnistSplits:
        return MnistSplits(*(t.to(device) for t in vars(self).values()))


def load_mnist(root: str | None = None, download: bool = True):
    """(train_x, train_y, test_x, test_y) as CPU tensors, downloading where the files are missing."""
    from torchvision import datasets  # deferred: torchvision's import costs a second at start-up

    root = root or mnist_root()
    try:
        train = datasets.MNIST(root, train=True, download=download)
        test = datasets.MNIST(root, train=False, download=download)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, ... alike
        raise DataMissing(
            f"MNIST not found in {os.path.abspath(root)}/MNIST/raw and it could not be "
            f"downloaded ({type(e).__name__}). Put {', '.join(MNIST_FILES)} there, or set "
            f"MNIST_ROOT to the folder that holds MNIST/raw.") from None
    return train.data, train.targets, test.data, test.targets


def split_mnist(train_x, train_y, test_x, test_y, val_size: int, seed: int = 0) -> MnistSplits:
    """Hold out val_size training images, chosen by a seeded permutation, for validation."""
    if not 0 <= val_size < len(train_x):
        raise ValueError(f"val_size must be between 0 and {len(train_x) - 1}, not {val_size}")
    perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:val_size], perm[val_size:]
    return MnistSplits(train_x[train], train_y[train], train_x[val], train_y[val], test_x, test_y)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images (N, 28, 28) -> flat float32 model inputs (N, 784)."""
    x = images.reshape(len(images), -1)
    scale = 1 / MNIST_STD / (255 if x.dtype == torch.uint8 else 1)
    # (x / 255 - mean) / std as one kernel that reads uint8 and writes float32: a third of
    # the time of four separate passes, and this runs on every training batch.
    return torch.add(_SHIFT, x, alpha=scale)


def batch_indices(n: int, batch_size: int, generator: torch.Generator, device) -> list[torch.Tensor]:
    """A fresh shuffle of range(n), cut into batches; the last, smaller batch is kept."""
    perm = torch.randperm(n, generator=generator).to(device)
    return list(perm.split(batch_size))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rotation (+-12 deg), scale (0.85-1.15), shift (+-2.5 px) and stroke thickness,
    per sample, as a batch: uint8 (N, 28, 28) in, float [0, 1] (N, 28, 28) out."""
    n, device = len(images), images.device

    def uniform(low, high):
        return (torch.rand(n, generator=generator) * (high - low) + low).to(device)

    angle = uniform(-12, 12) * (math.pi / 180)
    scale = uniform(0.85, 1.15)
    shift = uniform(-2.5, 2.5), uniform(-2.5, 2.5)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output to input coordinates in [-1, 1]; one pixel is 2/28 there.
    theta = torch.stack([torch.stack([cos, -sin, shift[0] * (2 / 28)], 1),
                         torch.stack([sin, cos, shift[1] * (2 / 28)], 1)], 1)
    x = images.unsqueeze(1).float().mul_(1 / 255)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    # Stroke thickness: a quarter of the digits get a 2x2 dilation, a quarter a 2x2 erosion.
    thick = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    thin = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, stride=1)
    pick = uniform(0, 1).view(n, 1, 1, 1)
    x = torch.where(pick < 0.25, thick, torch.where(pick > 0.75, thin, x))
    return x.squeeze(1)
