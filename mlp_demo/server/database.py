"""The one handle on the server's database: it opens the engine (on first use, and after a
failure at most every RETRY_S, so a database that is down does not slow every page by its
timeout) and hands out the three things that use it: the class boards (Classes), the shared
models' records (ModelRecords) and who is present on any replica (Presence). Each of them says
"not answering" the one way db.answering does."""

from __future__ import annotations

import logging
import threading
import time

from . import db
from .classes import Classes
from .limits import Limits
from .records import ModelRecords, Presence

log = logging.getLogger(__name__)


class Database:
    RETRY_S = 30

    def __init__(self, url: str, limits: Limits):
        self.url, self.limits = url, limits
        self.lock = threading.Lock()
        self._classes: Classes | None = None
        self._records: ModelRecords | None = None
        self._presence: Presence | None = None
        self.problem: db.DatabaseError | None = None  # why it could not be opened, if it could not
        self.tried = -float("inf")

    def open(self) -> bool:
        """Connected (now, or before); False while it cannot be opened."""
        with self.lock:
            if self._classes is None and time.monotonic() - self.tried > self.RETRY_S:
                self.tried = time.monotonic()
                try:
                    engine = db.connect(self.url)
                except db.DatabaseError as e:
                    log.warning("the database is unavailable: %s", e)
                    self.problem = e
                else:
                    self._classes = Classes(engine, self.limits)
                    self._records = ModelRecords(engine)
                    self._presence = Presence(engine, self.limits.session_ttl_s)
                    self.problem = None
            return self._classes is not None

    def classes(self) -> Classes | None:
        return self._classes if self.open() else None

    def records(self) -> ModelRecords | None:
        return self._records if self.open() else None

    def presence(self) -> Presence | None:
        return self._presence if self.open() else None
