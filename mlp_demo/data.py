"""MNIST as uint8 tensors held on the training device, batching by index, batched augmentation.

The whole dataset is 55 MB as uint8, so it lives on the device and a batch is an index
into it: no DataLoader, no per-sample PIL transforms in the training hot path.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

FIELD = 28
BOX = 20  # MNIST fits each digit's longer side into 20 of the field's 28 pixels
TRAIN_IMAGES = 60_000  # MNIST's training set (its test set: 10,000)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training pixels scaled to [0, 1]
_SHIFT = torch.tensor(-MNIST_MEAN / MNIST_STD)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataMissing(FileNotFoundError):
    """MNIST is neither on disk nor downloadable; the message says where it was looked for."""


DEFAULT_ROOT = "./data"  # the app and the CLI take MNIST_ROOT instead (server/settings.py)


@dataclass
class MnistSplits:
    """uint8 images (N, 28, 28) and int64 labels (N,) of the train, validation and test splits."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def without_validation(cls, train_x, train_y, test_x, test_y) -> MnistSplits:
        """Every training image in the training split (teaching replays them), none held out."""
        return cls(train_x, train_y, train_x[:0], train_y[:0], test_x, test_y)

    def to(self, device) -> MnistSplits:
        return MnistSplits(*(t.to(device) for t in vars(self).values()))


def load_mnist(root: str = DEFAULT_ROOT, download: bool = True):
    """(train_x, train_y, test_x, test_y) as CPU tensors, downloading where the files are missing."""
    from torchvision import datasets  # deferred: torchvision's import costs a second at start-up

    try:
        train = datasets.MNIST(root, train=True, download=download)
        test = datasets.MNIST(root, train=False, download=download)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, ... alike
        log.warning("MNIST could not be loaded from %s: %r", root, e)
        raise DataMissing(
            f"MNIST is not in {os.path.abspath(root)}/MNIST/raw, and this server could not "
            f"download it (no internet, or the folder cannot be written). To fix it: copy "
            f"{', '.join(MNIST_FILES)} there, or set MNIST_ROOT to a folder that holds "
            "MNIST/raw, then press Train again.") from None
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


@dataclass(frozen=True)
class Augmentation:
    """How far each random transform may go; every strength at 0 leaves the digits as they are.

    Rotation, scale and shift are MNIST's own variation; slant (shear), elastic distortion
    (Simard et al. 2003) and stroke width are how people's handwriting differs from it."""
    rotate_deg: float = 12.0
    scale: float = 0.15  # scale factor in 1 +- scale
    shift_px: float = 2.5
    slant: float = 0.15  # horizontal shear: x moves by slant * y
    elastic_px: float = 1.2  # typical displacement of a smooth random warp, in pixels
    stroke: float = 0.5  # share of digits made thicker or thinner (half each)
    aspect: float = 0.0  # width times e^u, u uniform in +-aspect: narrow and wide writers


NO_AUGMENTATION = Augmentation(0, 0, 0, 0, 0, 0, 0)
ELASTIC_GRID = 4  # the warp is random on a 4x4 grid, interpolated smoothly to 28x28


def augment(images: torch.Tensor, generator: torch.Generator,
            strength: Augmentation = Augmentation(), refit: bool = False) -> torch.Tensor:
    """Random affine (rotation, scale, shift, slant, aspect), elastic warp and stroke width,
    per sample, as a batch: uint8 (N, 28, 28) in, float [0, 1] (N, 28, 28) out. refit: then
    fit each digit back into the field as the pad's preprocessing would (fit_to_box)."""
    x = images.unsqueeze(1).float().mul_(1 / 255)
    grid = affine_grid(len(x), generator, strength, x.device)
    grid = grid + elastic_offsets(len(x), generator, strength.elastic_px, x.device)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    x = vary_stroke(x, generator, strength.stroke)
    return (fit_to_box(x) if refit else x).squeeze(1)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def affine_grid(n: int, generator: torch.Generator, s: Augmentation, device) -> torch.Tensor:
    """Sampling grids (N, 28, 28, 2) of a random rotation, scale, shift and slant each."""
    def uniform(limit):
        return _uniform(n, -limit, limit, generator, device)

    angle, scale = uniform(s.rotate_deg) * (math.pi / 180), 1 + uniform(s.scale)
    # affine_grid maps output to input coordinates in [-1, 1]; one pixel is 2/28 there.
    dx, dy, slant = uniform(s.shift_px) * (2 / 28), uniform(s.shift_px) * (2 / 28), uniform(s.slant)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    width = torch.exp(uniform(s.aspect))  # x is read from x / width: the digit grows wider
    # rotation-and-scale, then the shear x += slant * y, then the width
    theta = torch.stack([torch.stack([(cos + slant * sin) / width, (-sin + slant * cos) / width,
                                      dx], 1),
                         torch.stack([sin, cos, dy], 1)], 1)
    return F.affine_grid(theta, [n, 1, FIELD, FIELD], align_corners=False)


def fit_to_box(x: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Scale each digit so its ink's longer side is BOX pixels and move its centre of mass to
    the field's centre, as drawing.preprocess does to a drawing, and bring its brightest pixel
    to 1: an augmented example then looks like what the pad would send the model.
    x: float (N, 1, 28, 28) in [0, 1]; a blank image stays blank."""
    ink, pixels = x[:, 0], torch.arange(FIELD, device=x.device)
    mass = ink.sum((1, 2)).clamp_min(1e-6)
    centres = pixels + 0.5
    cy, cx = (ink.sum(2) @ centres) / mass, (ink.sum(1) @ centres) / mass

    def extent(has_ink):  # (N, 28) bool -> ink's length along that axis, in pixels
        first = torch.where(has_ink, pixels, FIELD).amin(1)
        last = torch.where(has_ink, pixels, -1).amax(1)
        return (last - first + 1).clamp_min(1)

    marked = ink > threshold
    size = torch.maximum(extent(marked.any(2)), extent(marked.any(1))).float()
    # affine_grid maps output to input in [-1, 1] (pixel centre c at c / 14 - 1): the output's
    # centre reads the centre of mass, and BOX output pixels read `size` input pixels.
    step, zero = size / BOX, torch.zeros_like(size)
    theta = torch.stack([torch.stack([step, zero, cx / (FIELD / 2) - 1], 1),
                         torch.stack([zero, step, cy / (FIELD / 2) - 1], 1)], 1)
    grid = F.affine_grid(theta, [len(x), 1, FIELD, FIELD], align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return out / out.amax((2, 3), keepdim=True).clamp_min(1e-6)


def elastic_offsets(n: int, generator: torch.Generator, pixels: float, device) -> torch.Tensor:
    """A smooth random displacement (N, 28, 28, 2) in grid units: Gaussian on a coarse grid,
    upsampled bicubically, so that neighbouring pixels move together and strokes bend."""
    coarse = torch.randn(n, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator).to(device)
    field = F.interpolate(coarse * (pixels * 2 / FIELD), size=(FIELD, FIELD), mode="bicubic",
                          align_corners=True)
    return field.permute(0, 2, 3, 1)


def vary_stroke(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """A 2x2 dilation for share/2 of the digits and a 2x2 erosion for another share/2;
    x: float (N, 1, 28, 28)."""
    thick = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    thin = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, stride=1)
    pick = _uniform(len(x), 0, 1, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(pick < share / 2, thick, torch.where(pick > 1 - share / 2, thin, x))
