"""The database: SQLAlchemy engine and schema, with a version.

SQLite by default (a file beside the models folder, nothing to set up); PostgreSQL, or any
database SQLAlchemy speaks, through MLP_DEMO_DATABASE_URL, which several server processes can
share. Nothing here is SQLite-only. Every query takes parameters (SQLAlchemy Core
expressions); every write is one transaction (`with engine.begin()`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

SCHEMA_VERSION = 4
# What turns each older version into the next, run once by the first process to meet it.
MIGRATIONS = {
    1: ("ALTER TABLE entries ADD COLUMN handwriting_acc FLOAT",  # issue 18: the class's own
        "ALTER TABLE entries ADD COLUMN handwriting_n INTEGER"),  # handwriting as a test set
    2: ("ALTER TABLE models ADD COLUMN file VARCHAR(80)",),  # issue 20: files by content hash
    3: ("ALTER TABLE students ADD COLUMN seat_hash VARCHAR(64)",),  # issue 33: a seat survives a reload
}
SQLITE_BUSY_TIMEOUT_S = 30  # a write waits this long for another process's write to end
CONNECT_TIMEOUT_S = 2  # a network database: opening a connection (libpq's least)
STATEMENT_DEADLINE_S = 2.0  # a statement, or the pool's ping, that takes longer: silence
QUIET_AFTER_SILENCE_S = 10.0  # then the database is not asked again for this long
WATCHDOG_LINGER_S = 30.0  # the watchdog thread waits this long for the next statement

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

classes = Table(
    "classes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(16), nullable=False, unique=True),
    Column("teacher_key_hash", String(64), nullable=False),  # sha256 of the key, never the key
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("locked", Boolean, nullable=False, default=False),
    Column("defaults", Text, nullable=False),  # the Default preset's values when it was made (JSON)
    Column("lesson", Text, nullable=False, default="{}"),  # locked and hidden settings (JSON)
    Column("revision", Integer, nullable=False, default=0),  # +1 on every change to the class
)

students = Table(
    "students", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("class_id", Integer, ForeignKey("classes.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("visitor", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("joined_at", Float, nullable=False),
    # sha256 of the seat token the student's browser keeps (never the token): a reloaded tab,
    # a new visitor, shows it to take the seat back. NULL until issued.
    Column("seat_hash", String(64)),
    UniqueConstraint("class_id", "name"),
    UniqueConstraint("class_id", "visitor"),
)

entries = Table(  # one finished run on a class's board
    "entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("class_id", Integer, ForeignKey("classes.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("student_id", Integer, ForeignKey("students.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("kind", String(16), nullable=False),  # training | teaching
    Column("settings", Text, nullable=False),  # JSON
    Column("val_acc", Float),
    Column("test_acc", Float),
    Column("seconds", Float, nullable=False),
    Column("status", String(16), nullable=False),  # finished | stopped
    Column("curves", Text, nullable=False),  # validation and test accuracy by epoch (JSON)
    Column("loss", Text, nullable=False),  # the loss curve, at most 100 points (JSON): not on the
    # projector, so kept apart from what every board refresh reads
    Column("hidden", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("size", Integer, nullable=False),  # bytes stored, for the server's limit
    # Accuracy on the class's handwriting set as it was when the run ended, and the set's size
    # then; NULL while the set was empty.
    Column("handwriting_acc", Float),
    Column("handwriting_n", Integer),
)

handwriting = Table(  # the class's own digits, a second test set (classes.py)
    "handwriting", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("class_id", Integer, ForeignKey("classes.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("student_id", Integer, ForeignKey("students.id", ondelete="CASCADE"), nullable=False),
    Column("image", LargeBinary, nullable=False),  # 784 bytes, a 28x28 uint8 image
    Column("label", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)


models = Table(  # the shared models folder's models (records.py)
    "models", metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),  # the visitor id; "" for nobody
    Column("saved_at", Float, nullable=False),
    # The file in the folder: its content hash for what the store writes, the file's own name
    # for one found there at start; NULL while a save has claimed the name.
    Column("file", String(80)),
)

visitors = Table(  # the last heartbeat of each visitor with an open page, on any app process
    "visitors", metadata,
    Column("visitor", String(64), primary_key=True),
    Column("last_seen", Float, nullable=False),
)


class DatabaseError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


class SchemaMismatch(DatabaseError):
    """The database was made by another version of mlp_demo."""


class NotAnswering(Exception):
    """The database refused, went away or went silent past its deadline. Each user of the
    database raises its own subclass, whose message tells the visitor what it means for them."""


@contextmanager
def answering(down: type[NotAnswering], message: str):
    """The one translation of "the database is not answering": any database error but a lost
    race (IntegrityError, which callers retry) becomes down(message)."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError:
        raise down(message) from None


def connect(url: str) -> Engine:
    """An engine on the database (settings.Settings.database() names it), its schema created if
    missing and its version checked."""
    try:
        engine = _engine(url)
        _create_schema(engine)
        found = _migrate(engine)
    except SQLAlchemyError as e:
        raise DatabaseError(f"the database {shown(url)} cannot be used: "
                            f"{type(e.orig if hasattr(e, 'orig') else e).__name__}: {_first_line(e)}"
                            ) from None
    if found != SCHEMA_VERSION:
        engine.dispose()
        raise SchemaMismatch(
            f"the database {shown(url)} has schema version {found}, and this mlp_demo uses "
            f"version {SCHEMA_VERSION}; point MLP_DEMO_DATABASE_URL at a new database (migrations "
            "come in a later version)")
    return engine


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: say so without repeating it
        return "(a malformed MLP_DEMO_DATABASE_URL)"


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _serialise_sqlite_writes(engine)
        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=connect_args)
    _give_every_statement_a_deadline(engine, Deadlines())
    return engine


class Deadlines:
    """A network database that accepts connections but never answers (a stalled network, a
    failover, a frozen server) would hold every page that asks it for as long as it is silent:
    the driver waits for an answer without a timeout, and TCP keepalives are answered by any
    proxy on the way. So each statement gets a deadline: a watchdog thread shuts the socket of
    one that runs past it, and the driver fails at once. After that the database is not asked
    again for QUIET_AFTER_SILENCE_S (a small circuit breaker): a silent database costs a page
    one deadline, not one per query."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running: dict[int, tuple[float, int]] = {}  # id(connection) -> (deadline, socket)
        self.cut: set[int] = set()  # connections whose statement the watchdog ended
        self.quiet_until = 0.0
        self.watching = False  # the watchdog runs while statements do, and a little after

    def start(self, connection) -> None:
        with self.lock:
            self.running[id(connection)] = (time.monotonic() + STATEMENT_DEADLINE_S, connection.fileno())
            if not self.watching:
                self.watching = True
                threading.Thread(target=self._watch, daemon=True, name="database-deadlines").start()

    def end(self, connection) -> bool:
        """Whether the statement ran past its deadline (the watchdog cut it)."""
        with self.lock:
            self.running.pop(id(connection), None)
            if id(connection) in self.cut:
                self.cut.discard(id(connection))
                return True
            return False

    def quiet(self) -> bool:
        return time.monotonic() < self.quiet_until

    def _watch(self) -> None:
        last_busy = time.monotonic()
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self.lock:
                if self.running:
                    last_busy = now
                elif now - last_busy > WATCHDOG_LINGER_S:  # not one thread per statement
                    self.watching = False
                    return
                overdue = [(key, fd) for key, (deadline, fd) in self.running.items() if now > deadline]
                for key, _ in overdue:
                    del self.running[key]
                    self.cut.add(key)
                if overdue:
                    self.quiet_until = now + QUIET_AFTER_SILENCE_S
            for _, fd in overdue:
                try:  # on a duplicate of the descriptor: the driver's own stays valid, and fails
                    with socket.socket(fileno=os.dup(fd)) as s:
                        s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _give_every_statement_a_deadline(engine: Engine, deadlines: Deadlines) -> None:
    def silent() -> OperationalError:
        return OperationalError("(the database did not answer)", None,
                                TimeoutError("the database did not answer in time"))

    @event.listens_for(engine, "do_connect")
    def connecting(_dialect, _record, _args, _kwargs):
        if deadlines.quiet():  # a new connection would wait out the connect timeout
            raise silent()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection, _record, _proxy):
        """Each checkout asks SELECT 1 first (pool_pre_ping's job, with a deadline)."""
        if deadlines.quiet():
            raise silent()
        deadlines.start(dbapi_connection)
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception:
            if deadlines.end(dbapi_connection):
                raise silent() from None
            raise DisconnectionError() from None  # a stale connection: the pool opens a new one
        deadlines.end(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def started(conn, _cursor, _statement, _parameters, _context, _many):
        deadlines.start(conn.connection.dbapi_connection)

    @event.listens_for(engine, "after_cursor_execute")
    def finished(conn, _cursor, _statement, _parameters, _context, _many):
        deadlines.end(conn.connection.dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def failed(context):
        try:
            deadlines.end(context.connection.connection.dbapi_connection)
        except Exception:  # no connection, or one already invalidated: nothing is running
            pass


def _serialise_sqlite_writes(engine: Engine) -> None:
    """SQLite takes its write lock when a transaction first writes; two transactions that read
    first then both try to write fail at once instead of waiting. So a transaction begins
    IMMEDIATE (taking the lock, or waiting for it up to the busy timeout); WAL lets readers
    go on meanwhile."""
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ours below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def reading(engine: Engine):
    """A connection for reads only (on SQLite it does not take the write lock)."""
    return engine.connect().execution_options(read_only=True)


def _create_schema(engine: Engine) -> None:
    """Create what is missing. Two processes starting at once may race: the loser finds the
    tables made and goes on."""
    for attempt in range(3):
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                if conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() is None:
                    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == 2:
                raise


def _migrate(engine: Engine) -> int | str:
    """Bring an older schema up to this version; returns the version found at the end. Each
    step is one transaction that first locks the version row, so of two processes starting at
    once one migrates and the other then finds the new version."""
    while True:
        with engine.begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")
                               .with_for_update()).scalar()
            found = _as_version(row)
            if found not in MIGRATIONS:
                return found
            for statement in MIGRATIONS[found]:
                conn.exec_driver_sql(statement)
            conn.execute(meta.update().where(meta.c.key == "schema_version")
                         .values(value=str(found + 1)))


def _as_version(value) -> int | str:
    try:
        return int(value)
    except (TypeError, ValueError):
        return repr(value)


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0][:200] if text else ""
