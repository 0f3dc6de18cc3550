"""ModelStore: the server's shared models folder, safe for anonymous visitors.

Every saved or uploaded model is listed for everyone (a class shares them) and belongs to
the visitor that made it: nobody else can overwrite or delete it, and the shipped model belongs
to no one. Quotas bound files and bytes per visitor and for the whole store; when the store is
full, the oldest models of visitors who have left make room first.

The records (records.py) say which models exist, whose they are and which file holds each: in
the database when the server has one (shared by every app process on it, kept across restarts),
else in this process's memory. Files are named by their content's SHA-256 and carry their model's
name, so replicas sharing the folder never write to the same name, and a save is one new file
and one record. At start, files the records do not know (a copied-in file, an older store's
`<name>.safetensors`, this store's own files when the records are in memory) are read by the
strict reader and recorded, or left out and listed as unreadable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import checkpoints
from ..checkpoints import DEFAULT_CHECKPOINT, CheckpointError, CheckpointInfo
from .limits import Limits
from .records import NOBODY, MemoryRecords, ModelRecords, Record, RecordsDown

log = logging.getLogger(__name__)
SUFFIX = ".safetensors"
CONTENT_NAMED = re.compile(r"[0-9a-f]{64}\.safetensors")
MODELS_CACHED = 16  # loaded models kept for every visitor; each at most the parameter cap
LISTING_TTL_S = 1.0  # the page asks on every stroke; another replica's save shows within this
# While the database is not answering, the last listing is kept this long before asking again:
# each try may wait out the connect timeout, and every page of every visitor asks.
DOWN_RETRY_S = 10.0


class StoreError(ValueError):
    """A save, upload or delete that cannot be done; the message says why and what to do."""


@dataclass
class Listing:
    models: list[CheckpointInfo]  # the shipped model first, then by name
    unreadable: list[str]  # file names left out, each logged once with its reason


class ModelStore:
    def __init__(self, folder: str | Path, limits: Limits,
                 is_present: Callable[[str], bool] = lambda visitor: True,
                 shipped: Path = DEFAULT_CHECKPOINT,
                 records: MemoryRecords | ModelRecords | None = None):
        self.folder, self.limits, self.is_present = Path(folder), limits, is_present
        self.shipped = shipped
        self.records = MemoryRecords() if records is None else records
        self.lock = threading.Lock()
        self.refused: dict[str, str] = {}  # files found at start that are not listed -> why
        self._headers: dict[str, tuple] = {}  # file path -> ((mtime_ns, size), info or error)
        self._listed: tuple = (-float("inf"), None)  # (time.monotonic() it expires at, Listing)
        self._models: OrderedDict = OrderedDict()  # (path, mtime_ns, size) -> read-only MLP
        self._remove_stale_temporaries()
        self.import_unknown_files()

    def _remove_stale_temporaries(self) -> None:
        """A save killed midway leaves its .tmp behind; at start none can be in progress."""
        try:
            for entry in os.scandir(self.folder):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    os.unlink(entry.path)
        except OSError:  # no folder yet, or read-only: nothing to clean
            pass

    def import_unknown_files(self) -> None:
        """Record each model file in the folder that no record names, once the strict reader
        (checkpoints.load: header, shapes, finite weights) has read it: under the name the file
        carries, else its file name; owned by nobody, except where a record of an older version
        names the model without a file (then its owner keeps it). The newest file of a name wins."""
        try:
            known = {r.file for r in self.records.all() if r.file}
        except RecordsDown:
            log.warning("models folder not imported: the database is not answering")
            return
        unknown = [self.folder / f for f in self._entries() if f not in known]
        for path in sorted(unknown, key=_mtime, reverse=True):
            if path.resolve() == self.shipped.resolve():
                continue
            try:
                info = checkpoints.load(path, self.limits.max_params)[1]
                content_named = CONTENT_NAMED.fullmatch(path.name)
                name = info.own_name if content_named else checkpoints.own_name(path.stem)
                if name is None:
                    raise CheckpointError(f"{path.name} does not say which model it is")
                self._record_found(name, path.name)
            except (CheckpointError, StoreError, RecordsDown) as e:
                log.warning("left out of the model list: %s", e)
                self.refused[path.name] = str(e)

    def _record_found(self, name: str, file: str) -> None:
        record = self.records.get(name)
        if record is None and self.records.claim(name, NOBODY) == NOBODY:
            self.records.set_file(name, file)
        elif record is not None and record.file in (None, file):
            # A version-2 database's row (its owner keeps it), a save that died between its
            # file and its record, or another replica starting at the same moment.
            self.records.set_file(name, file)
        else:
            raise StoreError(f"{file}: the name {name} is another file's")

    def _entries(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.folder)
                    if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()]
        except OSError:
            return []

    # -- reading
    def listing(self) -> Listing:
        """Every readable model, from the records. Kept for LISTING_TTL_S (this process's
        own saves and deletes renew it at once); each file's header is read once."""
        expires, listed = self._listed
        if listed is not None and time.monotonic() < expires:
            return listed
        try:
            listing, keep_s = self._read_all(self.records.all()), LISTING_TTL_S
        except RecordsDown:
            log.warning("model list unchanged: the database is not answering")
            listing = listed if listed is not None else self._read_all([])
            keep_s = DOWN_RETRY_S
        self._listed = (time.monotonic() + keep_s, listing)
        return listing

    def _read_all(self, records: list[Record]) -> Listing:
        models, unreadable = [], sorted(self.refused)
        shipped = self._read(self.shipped.name, self.shipped, None)
        if isinstance(shipped, CheckpointInfo):
            models.append(shipped)
        else:
            unreadable.append(self.shipped.name)
        paths = set()
        for record in sorted(records, key=lambda r: r.name):
            if record.file is None:  # being saved
                continue
            path = self.folder / record.file
            paths.add(str(path))
            info = self._read(record.file, path, self.limits.max_params)
            if isinstance(info, CheckpointInfo):
                models.append(dataclasses.replace(info, name=record.name))
            else:
                unreadable.append(record.file)
        kept = paths | {str(self.shipped)}
        self._headers = {k: v for k, v in self._headers.items() if k in kept}  # deleted files go
        return Listing(models, unreadable)

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
        """The visitor who may replace or delete the model; None for nobody, and while the
        database is away (then nothing is anyone's)."""
        try:
            record = self.records.get(name)
        except RecordsDown:
            log.warning("model owners unavailable: the database is not answering")
            return None
        return (record.owner or None) if record else None

    # -- writing
    def save(self, name: str, visitor: str, model, config, metrics: dict,
             train_seconds: float) -> Path:
        """Save a model under a name only this visitor may then replace or delete."""
        checkpoints.path_for_name(name, self.folder)  # refuses a name no user may choose
        data = checkpoints.to_bytes(model, config, metrics, train_seconds, name=name)  # no NaN
        taken = StoreError(f"a model named {name} already exists and belongs to someone else: "
                           "choose another name")
        with self.lock:
            record = self.records.get(name)
            mine = record is not None and record.owner == visitor
            if record is not None and not mine:
                raise taken
            # Claim a new name before writing: one insert, so of two app processes saving the
            # same name one gets it (and a database that is away fails here, not after the file).
            if record is None and self.records.claim(name, visitor) != visitor:
                raise taken
            try:
                self._make_room(visitor, len(data), replacing=record.file if mine else None)
                file = self._write(data)
                self.records.set_file(name, file)
            except OSError as e:
                self._release(name, mine)
                log.exception("saving %s failed", name)
                raise StoreError(f"the server could not save the model ({e.strerror or e}); "
                                 "try again later") from None
            except (StoreError, RecordsDown):
                self._release(name, mine)
                raise
            if mine and record.file not in (None, file):
                self._remove_if_unused(record.file)
        self._listed = (-float("inf"), None)
        return self.folder / file

    def _write(self, data: bytes) -> str:
        """Write the bytes under their content's hash, unless that file is there already."""
        file = hashlib.sha256(data).hexdigest() + SUFFIX
        if not (self.folder / file).exists():
            checkpoints.write_atomic(self.folder / file, data)
        return file

    def _release(self, name: str, mine: bool) -> None:
        """Give back a name claimed for a save that failed."""
        if not mine:
            try:
                self.records.remove(name)
            except RecordsDown:
                log.warning("%s stays claimed: the database is not answering", name)

    def _remove_if_unused(self, file: str) -> None:
        """Delete a file no record names any more (never the shipped model)."""
        path = self.folder / file
        if path.resolve() == self.shipped.resolve() or \
                any(r.file == file for r in self.records.all()):
            return
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            log.warning("cannot delete %s: %s", file, e.strerror)

    def add_upload(self, file_name: str, data: bytes, visitor: str) -> Path:
        """Check an uploaded file with the strict reader, rebuild it, and save it afresh
        (our own metadata, nothing of the file's beyond its settings, weights and metrics)."""
        name = upload_name(file_name)
        model, info = checkpoints.from_bytes(data, name, self.limits.max_params)
        return self.save(name, visitor, model, info.config, info.metrics, info.train_seconds or 0.0)

    def delete(self, name: str, visitor: str) -> None:
        with self.lock:
            record = self.records.get(name)
            if record is None or record.owner != visitor:
                raise StoreError(f"{name} is not yours to delete: only the tab that saved a model "
                                 "can delete it")
            self.records.remove(name)
            if record.file:
                self._remove_if_unused(record.file)
        self._listed = (-float("inf"), None)

    def _make_room(self, visitor: str, size: int, replacing: str | None) -> None:
        """Check the quotas for a new file of size bytes (with self.lock held); evict the
        oldest models of visitors who have left when the whole store is full."""
        lim, mb = self.limits, 2**20
        stored = {r.name: r for r in self.records.all() if r.file and r.file != replacing}
        sizes = {name: _size(self.folder / r.file) for name, r in stored.items()}
        mine = [name for name, r in stored.items() if r.owner == visitor]
        if len(mine) + 1 > lim.session_max_files:
            raise StoreError(f"you have {len(mine)} models here, the most one visitor may keep "
                             f"(MLP_DEMO_SESSION_MAX_FILES): delete one first")
        if sum(sizes[n] for n in mine) + size > lim.session_max_mb * mb:
            raise StoreError(f"your models would take more than {lim.session_max_mb} MB, the most "
                             "one visitor may keep (MLP_DEMO_SESSION_MAX_MB): delete one first")

        def full():
            return len(sizes) + 1 > lim.store_max_files or sum(sizes.values()) + size > lim.store_max_mb * mb

        evictable = sorted((r for r in stored.values() if not self.is_present(r.owner)),
                           key=lambda r: r.saved_at)
        while full() and evictable:
            victim = evictable.pop(0)
            self.records.remove(victim.name)
            self._remove_if_unused(victim.file)
            log.info("evicted %s to make room", victim.name)
            del sizes[victim.name]
        if full():
            raise StoreError("the shared model store is full (MLP_DEMO_STORE_MAX_FILES, "
                             "MLP_DEMO_STORE_MAX_MB): try again later, or delete one of yours")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def upload_name(file_name: str) -> str:
    """A usable model name from an uploaded file's name: 'my model (2).safetensors' -> 'my-model-2'."""
    stem = str(file_name).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem[:-len(SUFFIX)] if stem.lower().endswith(SUFFIX) else stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:40].strip("-_")
    return stem if stem and stem.lower() != "default" else "uploaded"
