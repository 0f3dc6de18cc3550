"""Checkpoints as safetensors: weights, with the config and metrics in the metadata.

A file alone rebuilds its model. Nothing is ever unpickled: the safetensors header is
JSON, and a file that is not a valid safetensors file of an MLP we could have written
is refused with a CheckpointError, whatever its name or extension.

Every file, whether uploaded, listed, loaded by the app or by the CLI, goes through one
strict reader, read_header(), before anything is allocated from what it claims: the header's
size is bounded, its settings validated, its tensors' names, dtypes, shapes and offsets
compared with what those settings build, its metrics cut down to known finite numbers.
"""

from __future__ import annotations

import json
import math
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
from .model import MLP, parameter_shapes

FORMAT = "mlp_demo/1"
MAX_BYTES = 512 * 2**20  # the largest model the config allows (6 x 4096 wide) is about 350 MB
MAX_HEADER_BYTES = 64 * 2**10  # ours are about 1.5 KB; a bigger header is not one of ours
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.safetensors"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
METRIC_KEYS = ("epoch", "step", "samples_seen", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
               "test_acc", "epoch_seconds", "elapsed")


class CheckpointError(ValueError):
    """Not a checkpoint this app can load; the message says why."""


@dataclass
class CheckpointInfo:
    name: str
    path: Path
    config: TrainConfig
    metrics: dict  # only METRIC_KEYS, only finite numbers
    train_seconds: float | None
    own_name: str | None = None  # the name the file carries in its metadata (a usable one)


def to_bytes(model: MLP, config: TrainConfig, metrics: dict, train_seconds: float,
             name: str | None = None) -> bytes:
    """The checkpoint's bytes; with a name, the file carries it (the models folder names its
    files by content, so a file found there alone still says which model it is)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"not saved: {key} holds NaN or infinite values (the run diverged)")
    metadata = {"format": FORMAT, "config": json.dumps(config.to_dict()),
                "metrics": json.dumps(clean_metrics(metrics)),
                "train_seconds": repr(float(train_seconds or 0.0))}
    if name is not None:
        metadata["name"] = name
    return save_tensors(tensors, metadata=metadata)


def save(path: str | Path, model: MLP, config: TrainConfig, metrics: dict,
         train_seconds: float, replace: bool = True) -> Path:
    """Write a checkpoint atomically (write_atomic)."""
    return write_atomic(path, to_bytes(model, config, metrics, train_seconds), replace)


def write_atomic(path: str | Path, data: bytes, replace: bool = True) -> Path:
    """A temporary file in the same folder, then a rename, so a crash never leaves a
    half-written file under the final name. With replace=False an existing file is never
    overwritten (a hard link fails where the name exists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError where the name exists
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_header(data: bytes, name: str = "checkpoint", file_size: int | None = None,
                max_params: int | None = None) -> CheckpointInfo:
    """Check a checkpoint from its header alone: data is the file, or at least its first
    8 + header-length bytes, and file_size the whole file's length where known. Nothing is
    built from the header's claims before they are checked."""
    if len(data) < 8:
        raise CheckpointError(f"{name} is not a checkpoint (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{name} is not a safetensors checkpoint of this app: its header "
                              f"claims {header_len:,} bytes, ours have {MAX_HEADER_BYTES:,} at most")
    if header_len > len(data) - 8:
        raise CheckpointError(f"{name} is not a safetensors checkpoint, or it is truncated")
    try:
        header = json.loads(data[8:8 + header_len])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{name} is not a safetensors checkpoint") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        raise CheckpointError(f"{name} has a malformed header")
    info = _info(header.pop("__metadata__", {}), name)
    if max_params is not None and info.config.n_params() > max_params:
        raise CheckpointError(f"{name} is a model of {info.config.n_params():,} parameters; this "
                              f"server accepts at most {max_params:,}")
    data_size = None if file_size is None else file_size - 8 - header_len
    _check_tensors(header, parameter_shapes(info.config), name, data_size)
    return info


def _check_tensors(entries: dict, expected: dict, name: str, data_size: int | None) -> None:
    """The header's tensors must be exactly the model's: names, float32, shapes, and byte
    ranges that tile the data section."""
    if set(entries) != set(expected):
        raise CheckpointError(f"{name} does not match its settings: it holds "
                              f"{sorted(entries)[:8]}, expected {sorted(expected)}")
    spans = []
    for key, shape in expected.items():
        entry = entries[key]
        if not isinstance(entry, dict) or entry.get("dtype") != "F32" or \
                entry.get("shape") != list(shape):
            got = (entry.get("dtype"), entry.get("shape")) if isinstance(entry, dict) else entry
            raise CheckpointError(f"{name}: {key} is {got}, expected F32 {list(shape)}")
        offsets = entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise CheckpointError(f"{name}: {key} has malformed offsets")
        spans.append(offsets)
        if offsets[1] - offsets[0] != 4 * math.prod(shape):
            raise CheckpointError(f"{name}: {key}'s bytes do not match its shape")
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise CheckpointError(f"{name}: its tensors overlap or leave gaps")
        position = end
    if data_size is not None and position != data_size:
        raise CheckpointError(f"{name} is truncated or has trailing bytes "
                              f"({data_size:,} bytes of tensors, its header says {position:,})")


def from_bytes(data: bytes, name: str = "checkpoint",
               max_params: int | None = None) -> tuple[MLP, CheckpointInfo]:
    """Rebuild the model; refuse anything but a finite float32 MLP matching its own config."""
    info = read_header(data, name, len(data), max_params)
    try:
        tensors = load_tensors(data)
    except Exception as e:  # safetensors raises its own error type for corrupt data
        raise CheckpointError(f"{name} is damaged: {e}") from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{name}: {key} holds NaN or infinite values")
    model = MLP(info.config)
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
    except (KeyError, ValueError, TypeError, RecursionError) as e:  # ConfigError is a ValueError
        raise CheckpointError(f"{name} has unreadable settings: {e}") from None
    seconds = train_seconds if math.isfinite(train_seconds) and train_seconds >= 0 else None
    return CheckpointInfo(name, Path(name), config, clean_metrics(metrics), seconds,
                          own_name(metadata.get("name")))


def own_name(value) -> str | None:
    """The name a file carries in its metadata, if it is one a user could have chosen."""
    usable = isinstance(value, str) and SAFE_NAME.fullmatch(value) and \
        value.lower() != DEFAULT_CHECKPOINT.stem
    return value if usable else None


def clean_metrics(metrics) -> dict:
    """Only the metrics we write, only as finite numbers: a forged file's metrics are display
    text for every visitor, so anything else is dropped."""
    if not isinstance(metrics, dict):
        return {}
    return {k: metrics[k] for k in METRIC_KEYS
            if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics[k], bool)
            and math.isfinite(metrics[k])}


def read_info(path: str | Path, max_params: int | None = None) -> CheckpointInfo:
    """A checkpoint's settings and metrics from its header alone, without reading the weights."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            head += f.read(min(header_len, MAX_HEADER_BYTES))
    except OSError as e:
        raise CheckpointError(f"cannot read {path.name}: {e.strerror}") from None
    info = read_header(head, path.stem, size, max_params)
    info.path = path
    return info


def load(path: str | Path, max_params: int | None = None) -> tuple[MLP, CheckpointInfo]:
    """Read and rebuild a checkpoint; the header is checked before the weights are read."""
    path = Path(path)
    read_info(path, max_params)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CheckpointError(f"{path.name} is {size / 2**20:.0f} MB, larger than any checkpoint")
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path.name}: {e.strerror}") from None
    model, info = from_bytes(data, path.stem, max_params)
    info.path = path
    return model, info


def path_for_name(name: str, folder: str | Path | None = None) -> Path:
    """The file a user-chosen name saves to; only letters, digits, '-' and '_' are allowed,
    so a name can never reach outside the folder or overwrite the shipped model."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or \
            name.lower() == DEFAULT_CHECKPOINT.stem:
        raise CheckpointError(f"{str(name)[:60]!r} is not a usable name: use 1 to 40 letters, "
                              "digits, '-' or '_' (and not 'default')")
    return Path(folder or CHECKPOINT_DIR) / f"{name}.safetensors"
