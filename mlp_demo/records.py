"""The models' owners, in the database: which visitor saved each model of the shared models
folder. Every app process on the database sees the same owners, and a restart keeps them
(in memory they were lost: after a restart every model was read-only and evictable).

A mapping, as ModelStore's in-memory dict was: name -> visitor id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, MutableMapping

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import db

log = logging.getLogger(__name__)
DOWN = ("the server's database is not answering, so models cannot be saved or deleted now; try "
        "again in a moment")


class RecordsDown(ValueError):
    """The database went away; the message says so (a ValueError: the page shows it)."""


class ModelOwners(MutableMapping):
    def __init__(self, engine: Engine):
        self.engine = engine

    def __getitem__(self, name: str) -> str:
        try:
            with db.reading(self.engine) as conn:
                owner = conn.execute(select(db.models.c.owner)
                                     .where(db.models.c.name == name)).scalar()
        except SQLAlchemyError:
            raise RecordsDown(DOWN) from None
        if owner is None:
            raise KeyError(name)
        return owner

    def get(self, name: str, default=None):
        """The owner, or default; also while the database is away (then nothing is anyone's)."""
        try:
            return self[name]
        except KeyError:
            return default
        except RecordsDown:
            log.warning("model owners unavailable: the database is not answering")
            return default

    def __setitem__(self, name: str, visitor: str) -> None:
        try:
            with self.engine.begin() as conn:  # one transaction: never two owners
                conn.execute(delete(db.models).where(db.models.c.name == name))
                conn.execute(db.models.insert().values(name=name, owner=visitor, saved_at=time.time()))
        except SQLAlchemyError:
            raise RecordsDown(DOWN) from None

    def setdefault(self, name: str, visitor: str) -> str:
        """Claim a name for a visitor unless someone has it; returns its owner (one insert: of
        two processes claiming at once, one wins)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(db.models.insert().values(name=name, owner=visitor, saved_at=time.time()))
            return visitor
        except IntegrityError:
            return self[name]
        except SQLAlchemyError:
            raise RecordsDown(DOWN) from None

    def __delitem__(self, name: str) -> None:
        try:
            with self.engine.begin() as conn:
                gone = conn.execute(delete(db.models).where(db.models.c.name == name)).rowcount
        except SQLAlchemyError:
            raise RecordsDown(DOWN) from None
        if not gone:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        with db.reading(self.engine) as conn:
            return iter(list(conn.execute(select(db.models.c.name)).scalars()))

    def __len__(self) -> int:
        with db.reading(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(db.models)).scalar()
