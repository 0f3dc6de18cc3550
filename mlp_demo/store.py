"""ModelStore: the server's shared models folder, safe for anonymous visitors.

Every saved or uploaded model is listed for everyone (a class shares them) and belongs to
the visitor (browser session) that made it: nobody else can overwrite or delete it, and the
shipped model belongs to no one. Quotas bound files and bytes per visitor and for the whole
store; when the store is full, the oldest models of visitors who have left make room first.
Owners live in the database when the server has one (records.ModelOwners: shared by every
app process on it, kept across restarts), else in this process's memory.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints
from .checkpoints import DEFAULT_CHECKPOINT, CheckpointError, CheckpointInfo
from .limits import Limits

log = logging.getLogger(__name__)
SUFFIX = ".safetensors"
MODELS_CACHED = 16  # loaded models kept for every visitor; each at most the parameter cap


class StoreError(ValueError):
    """A save, upload or delete that cannot be done; the message says why and what to do."""


@dataclass
class Listing:
    models: list[CheckpointInfo]  # the shipped model first, then by name
    unreadable: list[str]  # file names left out, each logged once with its reason


class ModelStore:
    def __init__(self, folder: str | Path, limits: Limits,
                 is_present: Callable[[str], bool] = lambda visitor: True,
                 shipped: Path = DEFAULT_CHECKPOINT, owners: MutableMapping | None = None):
        self.folder, self.limits, self.is_present = Path(folder), limits, is_present
        self.shipped = shipped
        self.lock = threading.Lock()
        self.owners = {} if owners is None else owners  # model name -> visitor
        self._headers: dict[str, tuple] = {}  # file path -> ((mtime_ns, size), info or error)
        self._listed: tuple = (None, None)  # (folder version, Listing)
        self._models: OrderedDict = OrderedDict()  # (path, mtime_ns, size) -> read-only MLP
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """A save killed midway leaves its .tmp behind; at start none can be in progress."""
        try:
            for entry in os.scandir(self.folder):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    os.unlink(entry.path)
        except OSError:  # no folder yet, or read-only: nothing to clean
            pass

    # -- reading
    def listing(self) -> Listing:
        """Every readable model. The page asks on every stroke, so the folder is scanned again
        only when it changed (its mtime: every save, upload, delete and eviction renames or
        removes a file), and each header is read once per (mtime, size) of its file."""
        version = self._folder_version()
        if version is not None and version == self._listed[0]:
            return self._listed[1]
        with self.lock:
            entries = self._entries()
        listing = self._read_all(entries)
        self._listed = (version, listing)
        return listing

    def _folder_version(self):
        """The folder's and the shipped file's mtimes; None while a change could still be
        within the filesystem's timestamp resolution (then the folder is scanned)."""
        try:
            folder, shipped = self.folder.stat(), self.shipped.stat()
        except OSError:
            return None
        if time.time_ns() - folder.st_mtime_ns < 2 * 10**9:
            return None
        return folder.st_mtime_ns, shipped.st_mtime_ns, shipped.st_size

    def _read_all(self, entries: dict[str, Path]) -> Listing:
        models, unreadable = [], []
        shipped = self._read(self.shipped.name, self.shipped, None)
        if isinstance(shipped, CheckpointInfo):
            models.append(shipped)
        else:
            unreadable.append(self.shipped.name)
        for name, path in sorted(entries.items()):
            if path.resolve() == self.shipped.resolve():
                continue
            info = self._read(name, path, self.limits.max_params)
            if isinstance(info, CheckpointInfo):
                models.append(info)
            else:
                unreadable.append(name)
        kept = {str(p) for p in entries.values()} | {str(self.shipped)}
        self._headers = {k: v for k, v in self._headers.items() if k in kept}  # deleted files go
        return Listing(models, unreadable)

    def _entries(self) -> dict[str, Path]:
        try:
            return {e.name: Path(e.path) for e in os.scandir(self.folder)
                    if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()}
        except OSError:
            return {}

    def _read(self, name: str, path: Path, max_params: int | None):
        try:
            stat = path.stat()
        except OSError as e:
            return CheckpointError(f"cannot read {name}: {e.strerror}")
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._headers.get(str(path))
        if cached and cached[0] == key:
            return cached[1]
        try:
            result = checkpoints.read_info(path, max_params)
        except CheckpointError as e:
            log.warning("left out of the model list: %s", e)
            result = e
        self._headers[str(path)] = (key, result)
        return result

    def load(self, path: Path):
        """The model in a listed file (the shipped one is trusted beyond the size cap)."""
        trusted = path.resolve() == self.shipped.resolve()
        return checkpoints.load(path, None if trusted else self.limits.max_params)[0]

    def model(self, info: CheckpointInfo):
        """A listed model, loaded once per version of its file and shared by every visitor, so
        read-only: no parameter takes a gradient and it stays in eval mode."""
        stat = info.path.stat()
        key = (str(info.path), stat.st_mtime_ns, stat.st_size)
        with self.lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = self.load(info.path).requires_grad_(False).eval()
        with self.lock:
            self._models[key] = model
            while len(self._models) > MODELS_CACHED:
                self._models.popitem(last=False)
        return model

    def owner(self, name: str) -> str | None:
        with self.lock:
            return self.owners.get(name)

    # -- writing
    def save(self, name: str, visitor: str, model, config, metrics: dict,
             train_seconds: float) -> Path:
        """Save a model under a name only this visitor may then replace or delete."""
        path = checkpoints.path_for_name(name, self.folder)
        data = checkpoints.to_bytes(model, config, metrics, train_seconds)  # refuses NaN weights
        taken = StoreError(f"a model named {name} already exists and belongs to someone else: "
                           "choose another name")
        with self.lock:
            mine = self.owners.get(name) == visitor
            if path.exists() and not mine:
                raise taken
            # Claim a new name before writing: one insert, so of two app processes saving the
            # same name one gets it (and a database that is away fails here, not after the file).
            if not mine and self.owners.setdefault(name, visitor) != visitor:
                raise taken
            try:
                self._make_room(visitor, len(data), replacing=path if mine else None)
                checkpoints.save(path, model, config, metrics, train_seconds, replace=mine)
            except FileExistsError:
                self._release(name, mine)
                raise StoreError(f"a model named {name} was just saved by someone else: "
                                 "choose another name") from None
            except OSError as e:
                self._release(name, mine)
                log.exception("saving %s failed", path)
                raise StoreError(f"the server could not save the model ({e.strerror or e}); "
                                 "try again later") from None
            except StoreError:
                self._release(name, mine)
                raise
        return path

    def _release(self, name: str, mine: bool) -> None:
        """Give back a name claimed for a save that failed."""
        if not mine:
            self.owners.pop(name, None)

    def add_upload(self, file_name: str, data: bytes, visitor: str) -> Path:
        """Check an uploaded file with the strict reader, rebuild it, and save it afresh
        (our own metadata, nothing of the file's beyond its settings, weights and metrics)."""
        name = upload_name(file_name)
        model, info = checkpoints.from_bytes(data, name, self.limits.max_params)
        return self.save(name, visitor, model, info.config, info.metrics, info.train_seconds or 0.0)

    def delete(self, name: str, visitor: str) -> None:
        with self.lock:
            if self.owners.get(name) != visitor:
                raise StoreError(f"{name} is not yours to delete: only the tab that saved a model "
                                 "can delete it")
            try:
                checkpoints.path_for_name(name, self.folder).unlink(missing_ok=True)
            except OSError as e:
                raise StoreError(f"the server could not delete {name} ({e.strerror})") from None
            del self.owners[name]

    def _make_room(self, visitor: str, size: int, replacing: Path | None) -> None:
        """Check the quotas for a new file of size bytes (with self.lock held); evict the
        oldest models of visitors who have left when the whole store is full."""
        lim, mb = self.limits, 2**20
        files = {p: p.stat().st_size for p in self._entries().values()
                 if p != replacing and p.resolve() != self.shipped.resolve() and p.exists()}
        mine = [p for p in files if self.owners.get(p.name[:-len(SUFFIX)]) == visitor]
        if len(mine) + 1 > lim.session_max_files:
            raise StoreError(f"you have {len(mine)} models here, the most one visitor may keep "
                             f"(MLP_DEMO_SESSION_MAX_FILES): delete one first")
        if sum(files[p] for p in mine) + size > lim.session_max_mb * mb:
            raise StoreError(f"your models would take more than {lim.session_max_mb} MB, the most "
                             "one visitor may keep (MLP_DEMO_SESSION_MAX_MB): delete one first")

        def full():
            return (len(files) + 1 > lim.store_max_files
                    or sum(files.values()) + size > lim.store_max_mb * mb)

        evictable = sorted((p for p in files if not self.is_present(
            self.owners.get(p.name[:-len(SUFFIX)], ""))), key=lambda p: p.stat().st_mtime)
        while full() and evictable:
            victim = evictable.pop(0)
            try:
                victim.unlink()
                log.info("evicted %s to make room", victim.name)
            except OSError:
                continue
            self.owners.pop(victim.name[:-len(SUFFIX)], None)
            del files[victim]
        if full():
            raise StoreError("the shared model store is full (MLP_DEMO_STORE_MAX_FILES, "
                             "MLP_DEMO_STORE_MAX_MB): try again later, or delete one of yours")


def upload_name(file_name: str) -> str:
    """A usable model name from an uploaded file's name: 'my model (2).safetensors' -> 'my-model-2'."""
    stem = str(file_name).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem[:-len(SUFFIX)] if stem.lower().endswith(SUFFIX) else stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:40].strip("-_")
    return stem if stem and stem.lower() != "default" else "uploaded"
