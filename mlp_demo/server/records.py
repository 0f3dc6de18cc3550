"""The shared models' records: each model's name, owner (a visitor id, "" for nobody) and file
(its content hash). In the database (ModelRecords) every app process on it sees the same
records and a restart keeps them; without one (MemoryRecords) they last as long as the process.
Also who is present across processes (Presence), for the store's eviction.

The files themselves live in the shared models folder (store.py); a record names its file, so
the listing, the owners and the quotas come from the records, never from scanning the folder.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import db

log = logging.getLogger(__name__)
DOWN = ("the server's database is not answering, so models cannot be saved or deleted now; try "
        "again in a moment")
NOBODY = ""  # the owner of a model nobody may replace or delete (found in the folder at start)


class RecordsDown(db.NotAnswering, ValueError):
    """The database went away; the message says so (a ValueError: the page shows it)."""


@dataclass(frozen=True)
class Record:
    name: str
    owner: str
    file: str | None  # None while a save has claimed the name and not yet written the file
    saved_at: float


class MemoryRecords:
    """The records in this process's memory: the server without a database."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: dict[str, Record] = {}

    def get(self, name: str) -> Record | None:
        with self.lock:
            return self.rows.get(name)

    def claim(self, name: str, visitor: str) -> str:
        """Claim a free name for a visitor; returns the name's owner, whoever it is."""
        with self.lock:
            return self.rows.setdefault(name, Record(name, visitor, None, time.time())).owner

    def set_file(self, name: str, file: str) -> None:
        with self.lock:
            self.rows[name] = replace(self.rows[name], file=file, saved_at=time.time())

    def remove(self, name: str) -> None:
        with self.lock:
            self.rows.pop(name, None)

    def all(self) -> list[Record]:
        with self.lock:
            return list(self.rows.values())


class ModelRecords:
    """The records in the database's `models` table; the same methods as MemoryRecords. Each
    write is one statement or one transaction, so two processes never both own a name."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, name: str) -> Record | None:
        with answering(), db.reading(self.engine) as conn:
            row = conn.execute(select(db.models).where(db.models.c.name == name)).first()
        return None if row is None else Record(row.name, row.owner, row.file, row.saved_at)

    def claim(self, name: str, visitor: str) -> str:
        """One insert: of two processes claiming a name at once, one wins."""
        try:
            with answering(), self.engine.begin() as conn:
                conn.execute(db.models.insert().values(name=name, owner=visitor, file=None,
                                                       saved_at=time.time()))
            return visitor
        except IntegrityError:
            record = self.get(name)
            return visitor if record is None else record.owner  # None: deleted meanwhile

    def set_file(self, name: str, file: str) -> None:
        with answering(), self.engine.begin() as conn:
            conn.execute(update(db.models).where(db.models.c.name == name)
                         .values(file=file, saved_at=time.time()))

    def remove(self, name: str) -> None:
        with answering(), self.engine.begin() as conn:
            conn.execute(delete(db.models).where(db.models.c.name == name))

    def all(self) -> list[Record]:
        with answering(), db.reading(self.engine) as conn:
            rows = conn.execute(select(db.models)).all()
        return [Record(r.name, r.owner, r.file, r.saved_at) for r in rows]


def answering():
    return db.answering(RecordsDown, DOWN)


class Presence:
    """Which visitors have an open page on any app process: each process writes its visitors'
    heartbeats (at most one write per visitor every WRITE_EVERY_S), and a visitor is present
    while their last heartbeat is younger than the session TTL. The store asks before it evicts
    a model, so a student on another replica keeps theirs. Rows older than the TTL are deleted
    along the way (every tab without the proxy's cookie is a new visitor: the table would grow)."""
    WRITE_EVERY_S = 30

    def __init__(self, engine: Engine, ttl_s: float, clock=time.time):
        self.engine, self.ttl_s, self.clock = engine, ttl_s, clock
        self.written: dict[str, float] = {}  # visitor -> when this process last wrote it
        self.pruned = -float("inf")  # when this process last deleted the departed
        self.lock = threading.Lock()

    def seen(self, visitor: str) -> None:
        now = self.clock()
        with self.lock:
            if now - self.written.get(visitor, -float("inf")) < self.WRITE_EVERY_S:
                return
            self.written[visitor] = now
            for gone in [v for v, t in self.written.items() if now - t > self.ttl_s]:
                del self.written[gone]
            prune = now - self.pruned >= self.WRITE_EVERY_S
            if prune:
                self.pruned = now
        try:
            with db.answering(db.NotAnswering, "presence"), self.engine.begin() as conn:
                done = conn.execute(update(db.visitors).where(db.visitors.c.visitor == visitor)
                                    .values(last_seen=now)).rowcount
                if not done:
                    conn.execute(db.visitors.insert().values(visitor=visitor, last_seen=now))
                if prune:
                    conn.execute(delete(db.visitors).where(db.visitors.c.last_seen < now - self.ttl_s))
        except IntegrityError:  # another process inserted it first: it is present
            pass
        except db.NotAnswering:
            # Tried again after WRITE_EVERY_S, not on the next rerun: each try may wait out the
            # connect timeout. Meanwhile is_present says yes to everyone, so nobody loses a model.
            log.warning("presence not recorded: the database is not answering")

    def is_present(self, visitor: str) -> bool:
        """True while the database is away too: nothing is evicted on a guess."""
        if not visitor:
            return False
        try:
            with db.answering(db.NotAnswering, "presence"), db.reading(self.engine) as conn:
                last = conn.execute(select(db.visitors.c.last_seen)
                                    .where(db.visitors.c.visitor == visitor)).scalar()
        except db.NotAnswering:
            return True
        return last is not None and self.clock() - last <= self.ttl_s
