"""The weights the browser's pad runs: checkpoint files published under their content hash in
Streamlit's static folder (`server.enableStaticServing`, served at app/static/), so a browser
fetches each model once, and fetches it again only when the choice changes.

Imports neither torch nor Streamlit: the shipped model is published for the first paint.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "checkpoints" / "default.safetensors"  # checkpoints.DEFAULT_CHECKPOINT, without torch
STATIC = REPO / "static"  # beside app.py, where Streamlit serves it
FOLDER = STATIC / "models"
URL = "app/static/models/"  # relative to the page, so a proxy's path prefix is kept
RUN_PREFIX = "run-"  # a tab's own runs (Live included): swept when old
MAX_RUN_FILE_AGE_S = 3600


def publish(data: bytes, prefix: str = "") -> str:
    """The URL of these checkpoint bytes, written once under their hash."""
    name = f"{prefix}{hashlib.sha256(data).hexdigest()[:32]}.safetensors"
    path = FOLDER / name
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=FOLDER, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # a browser never sees half a file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return URL + name


def publish_file(path: str | Path) -> str:
    """The URL of a checkpoint file (a listed model: already checked by the strict reader)."""
    stat = os.stat(path)
    return _published(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)  # hashing 4 MB takes ~10 ms: once per file version
def _published(path: str, mtime_ns: int, size: int) -> str:
    return publish(Path(path).read_bytes())


def withdraw(url: str | None) -> None:
    """Remove a run's file that no page needs any more (a Live model's older weights)."""
    if url and url.startswith(URL + RUN_PREFIX):
        (FOLDER / url[len(URL):]).unlink(missing_ok=True)


def sweep(now: float | None = None) -> int:
    """Remove runs' files older than an hour (tabs long gone) and half-written ones."""
    now, removed = now or time.time(), 0
    for path in FOLDER.glob("*") if FOLDER.exists() else ():
        stale = path.name.startswith(RUN_PREFIX) and now - path.stat().st_mtime > MAX_RUN_FILE_AGE_S
        if stale or (path.name.startswith(".") and now - path.stat().st_mtime > 60):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
