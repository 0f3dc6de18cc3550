"""Checkpoints as safetensors: weights, with the config and metrics in the metadata.

A file alone rebuilds its model. Nothing is ever unpickled: the safetensors header is
JSON, and a file that is not a valid safetensors file of an MLP we could have written
is refused with a CheckpointError, whatever its name or extension.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .config import TrainConfig
from .model import MLP

FORMAT = "mlp_demo/1"
MAX_BYTES = 512 * 2**20  # the largest model the config allows (6 x 4096 wide) is about 350 MB
MAX_HEADER_BYTES = 2**20
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.safetensors"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


class CheckpointError(ValueError):
    """Not a checkpoint this app can load; the message says why."""


@dataclass
class CheckpointInfo:
    name: str
    path: Path
    config: TrainConfig
    metrics: dict
    train_seconds: float


def to_bytes(model: MLP, config: TrainConfig, metrics: dict, train_seconds: float) -> bytes:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(config.to_dict()),
                "metrics": json.dumps(metrics), "train_seconds": repr(float(train_seconds))}
    return save_tensors(tensors, metadata=metadata)


def save(path: str | Path, model: MLP, config: TrainConfig, metrics: dict,
         train_seconds: float) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename, so a crash
    never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_bytes(model, config, metrics, train_seconds)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def from_bytes(data: bytes, name: str = "checkpoint") -> tuple[MLP, CheckpointInfo]:
    """Rebuild the model; refuse anything but a finite float32 MLP matching its own config."""
    info = _info(_read_metadata(data, name), name)
    config = info.config
    try:
        tensors = load_tensors(data)
    except Exception as e:  # safetensors raises its own error type for corrupt data
        raise CheckpointError(f"{name} is damaged: {e}") from None
    model = MLP(config)
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise CheckpointError(f"{name} does not match its settings: it holds "
                              f"{sorted(tensors)}, expected {sorted(expected)}")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape or got.dtype != torch.float32:
            raise CheckpointError(f"{name}: {key} is {got.dtype} {tuple(got.shape)}, "
                                  f"expected float32 {tuple(want.shape)}")
        if not torch.isfinite(got).all():
            raise CheckpointError(f"{name}: {key} holds NaN or infinite values")
    model.load_state_dict(tensors)
    model.eval()
    return model, info


def _info(metadata: dict, name: str) -> CheckpointInfo:
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name} is a safetensors file, but not an mlp_demo checkpoint")
    try:
        config = TrainConfig.from_dict(json.loads(metadata["config"]))
        metrics = json.loads(metadata.get("metrics", "{}"))
        train_seconds = float(metadata.get("train_seconds", "nan"))
    except (KeyError, ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise CheckpointError(f"{name} has unreadable settings: {e}") from None
    return CheckpointInfo(name, Path(name), config, metrics, train_seconds)


def read_info(path: str | Path) -> CheckpointInfo:
    """A checkpoint's settings and metrics from its header alone, without reading the weights."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            head += f.read(min(size, MAX_HEADER_BYTES))
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    info = _info(_read_metadata(head, path.stem), path.stem)
    info.path = path
    return info


def load(path: str | Path) -> tuple[MLP, CheckpointInfo]:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CheckpointError(f"{path} is {size / 2**20:.0f} MB, larger than any checkpoint")
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    model, info = from_bytes(data, path.stem)
    info.path = path
    return model, info


def saved_dir() -> Path:
    """Where users' models are saved: MLP_DEMO_CHECKPOINTS, else beside the shipped model."""
    return Path(os.environ.get("MLP_DEMO_CHECKPOINTS", CHECKPOINT_DIR))


def path_for_name(name: str, folder: str | Path | None = None) -> Path:
    """The file a user-chosen name saves to; only letters, digits, '-' and '_' are allowed,
    so a name can never reach outside the folder or overwrite the shipped model."""
    if not SAFE_NAME.fullmatch(name) or name == DEFAULT_CHECKPOINT.stem:
        raise CheckpointError(f"{name!r} is not a usable name: use 1 to 40 letters, digits, "
                              "'-' or '_' (and not 'default')")
    return Path(folder or saved_dir()) / f"{name}.safetensors"


def list_checkpoints(folder: str | Path | None = None) -> list[CheckpointInfo]:
    """The shipped model, then every loadable checkpoint in the folder; broken files are skipped."""
    infos = []
    paths = {DEFAULT_CHECKPOINT, *Path(folder or saved_dir()).glob("*.safetensors")}
    for path in sorted(paths):
        try:
            infos.append(read_info(path))
        except CheckpointError:
            continue
    return sorted(infos, key=lambda i: (i.name != "default", i.name))


def _read_metadata(data: bytes, name: str) -> dict:
    """Parse the safetensors header (8-byte length, then JSON) without touching the tensors."""
    if len(data) < 8:
        raise CheckpointError(f"{name} is not a checkpoint (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(f"{name} is not a safetensors checkpoint, or it is truncated")
    try:
        header = json.loads(data[8:8 + header_len])
        metadata = header.get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise CheckpointError(f"{name} is not a safetensors checkpoint") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{name} has malformed metadata")
    return metadata
