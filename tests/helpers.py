"""Shared test helpers: a tiny MNIST written as real IDX files, drawn digits, canvas PNGs.
Tests import this module, never conftest or another test file."""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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


def drawn(shape: str, box=(90, 40, 190, 240), width=20, size=280) -> np.ndarray:
    """A white-on-black greyscale canvas with a '1' (a line), '0' (an ellipse) or '7'."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = box
    if shape == "1":
        d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=255, width=width)
    elif shape == "0":
        d.ellipse(box, outline=255, width=width)
    elif shape == "7":
        d.line([(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=255, width=width, joint="curve")
    return np.asarray(im)


def png_data_url(image: np.ndarray | Image.Image) -> str:
    """What the pad sends: a PNG as a data URL."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def crafted(path, metadata=None, config=None, tensors=None):
    """A checkpoint file with the given metadata strings, config and tensors."""
    from safetensors.torch import save_file

    from mlp_demo import checkpoints
    from mlp_demo.config import TrainConfig
    from mlp_demo.model import MLP
    config = config or TrainConfig(hidden=(16,))
    meta = {"format": checkpoints.FORMAT, "config": json.dumps(config.to_dict()), **(metadata or {})}
    tensors = tensors if tensors is not None else MLP(config).state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def hostile_files(folder):
    """Files a hostile visitor could have put in the folder (the browser test uploads them too)."""
    crafted(folder / "bad-metrics.safetensors", {"metrics": "[]"})
    crafted(folder / "bad-acc.safetensors", {"metrics": '{"test_acc": "x"}'})
    crafted(folder / "huge-meta.safetensors", {"pad": "x" * 2**21})
    import torch

    from mlp_demo.config import TrainConfig
    crafted(folder / "claims-big.safetensors", config=TrainConfig(hidden=(4096,) * 6),
            tensors={"0.weight": torch.zeros(4)})
    good = crafted(folder / "good.safetensors", {"metrics": '{"test_acc": 0.9}'})
    (folder / "truncated.safetensors").write_bytes(good.read_bytes()[:300])
