"""Classes: a room's runs as one experiment. A teacher starts a class (a join code and a secret
teacher key), students join it under a display name, their finished runs go on the class's
board, and the teacher hides entries, locks, clears, closes and exports it. Students may add
their labelled drawings to the class's handwriting set, a second test set every run on the
board is scored on; a teacher's lesson fixes settings for the whole class (lessons.py).

Plain data in and out, kept in the database (db.py); the limits come from Limits. Everything a
visitor sends (a code, a name, a key) is checked here before the database sees it.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..config import PRESETS
from . import db
from .lessons import Lesson
from .limits import Limits

# 30 symbols without look-alikes (no 0/O, 1/I/L, U); 9 of them are 44 random bits.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 9
MAX_NAME = 24
MAX_CURVE_POINTS = 100
MAX_SETTINGS_CHARS = 4000  # a run's settings are ~400 characters of JSON
IMAGE_BYTES = 28 * 28  # a handwriting drawing: uint8, as the network sees it
NO_SUCH_CLASS = "No such class: check the code (it is on the projector)."
DATABASE_DOWN = ("The class board's database is not answering; try again in a moment (your runs "
                 "are kept in this tab).")


class ClassError(ValueError):
    """A class action that cannot be done; the message says why and what to do."""


class NoSuchClass(ClassError):
    """A code that names no open class (a wrong guess counts against the guesser)."""

    def __init__(self, message: str = NO_SUCH_CLASS):
        super().__init__(message)


class ClassesDown(ClassError, db.NotAnswering):
    """The database is not answering: the visitor's runs wait in the tab, nothing is lost."""


class Joined(NamedTuple):
    name: str  # the name on the board (made unique in the class)
    seat: str  # the seat token: the browser keeps it, the class keeps only its hash


@dataclass(frozen=True)
class NewClass:
    code: str
    teacher_key: str

    @property
    def join_path(self) -> str:
        return f"?class={self.code}"

    @property
    def teacher_path(self) -> str:
        return f"?class={self.code}&view=board&teacher={self.teacher_key}"

    def to_dict(self) -> dict:
        return {"code": self.code, "join_path": self.join_path, "teacher_path": self.teacher_path}


@dataclass
class Entry:
    id: int
    name: str  # the student's display name: plain text, never markup
    kind: str
    settings: dict
    val_acc: float | None
    test_acc: float | None
    seconds: float
    status: str
    curves: dict
    hidden: bool
    handwriting_acc: float | None = None  # on the class's handwriting when the run ended
    handwriting_n: int | None = None  # the set's size then; both None while it was empty
    mine: bool = False

    def to_json(self) -> dict:
        """The CLI's line for this entry."""
        return {"name": self.name, "settings": self.settings, "val_accuracy": self.val_acc,
                "test_accuracy": self.test_acc, "class_handwriting_accuracy": self.handwriting_acc,
                "class_handwriting_n": self.handwriting_n, "seconds": self.seconds,
                "status": self.status, "hidden": self.hidden}


@dataclass
class Board:
    code: str
    students: int
    locked: bool
    defaults: dict  # the Default preset's values when the class was made
    entries: list[Entry] = field(default_factory=list)
    lesson: Lesson = field(default_factory=Lesson)
    handwriting_n: int = 0  # drawings in the class's handwriting set


@dataclass(frozen=True)
class HandwritingSet:
    images: bytes  # n x 784 bytes: uint8 28x28 images, one after another
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def normalise_code(text) -> str | None:
    """A code as typed (any case, spaces, dashes) -> its canonical form, or None if it cannot
    be a code: nothing longer is ever sent to the database."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def clean_name(text) -> str:
    """A display name: whitespace collapsed, at most MAX_NAME printable characters."""
    if not isinstance(text, str):
        raise ClassError("your name must be text")
    name = " ".join(text.split())
    if not name:
        raise ClassError("choose a name for the board")
    if len(name) > MAX_NAME:
        raise ClassError(f"a name on the board has at most {MAX_NAME} characters")
    if not name.isprintable():
        raise ClassError("a name on the board has printable characters only")
    return name


SEAT_TOKEN_BYTES = 24
SEAT_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # what token_urlsafe(24) makes, and nothing else


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def downsample(points: list, limit: int = MAX_CURVE_POINTS) -> list:
    """At most `limit` points, evenly spread, the first and last kept."""
    if len(points) <= limit:
        return list(points)
    picks = sorted({round(i * (len(points) - 1) / (limit - 1)) for i in range(limit)})
    return [points[i] for i in picks]


class Classes:
    """The classes of one database. Every method is one transaction, or one read."""

    def __init__(self, engine: Engine, limits: Limits, clock=time.time):
        self.engine, self.limits, self.clock = engine, limits, clock
        self._lock = threading.Lock()
        self._boards: dict[tuple, tuple] = {}  # (class, hidden too) -> (revision, students, rows)
        self._losses: dict[tuple, list] = {}  # (code, entry id) -> loss curve

    # -- teacher
    def create(self) -> NewClass:
        now = self.clock()
        with self._write() as conn:
            self._purge_expired(conn, now)
            alive = conn.execute(select(func.count()).select_from(db.classes)).scalar()
            if alive >= self.limits.max_classes:
                raise ClassError(f"this server already has {alive} classes, its most "
                                 "(MLP_DEMO_MAX_CLASSES); try again when one has closed")
            for _ in range(5):  # a clash of 44 random bits is unlikely; never a silent reuse
                new = NewClass("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
                               secrets.token_urlsafe(24))
                taken = conn.execute(select(db.classes.c.id).where(db.classes.c.code == new.code)).first()
                if taken is None:
                    break
            conn.execute(db.classes.insert().values(
                code=new.code, teacher_key_hash=_hash(new.teacher_key), created_at=now,
                expires_at=now + self.limits.class_lifetime_s, locked=False,
                defaults=json.dumps(PRESETS["default"].to_dict()), lesson="{}", revision=0))
        return new

    def is_teacher(self, code: str, key) -> bool:
        code = normalise_code(code)
        if code is None or not isinstance(key, str) or len(key) > 100:
            return False
        with self._read() as conn:
            row = self._class(conn, code)
        return row is not None and hmac.compare_digest(row.teacher_key_hash, _hash(key))

    def hide(self, code: str, key: str, entry_id: int, hidden: bool = True) -> None:
        with self._write() as conn:
            row = self._teacher_class(conn, code, key)
            conn.execute(update(db.entries).where(db.entries.c.id == entry_id,
                                                  db.entries.c.class_id == row.id).values(hidden=hidden))
            _changed(conn, row.id)

    def set_locked(self, code: str, key: str, locked: bool) -> None:
        with self._write() as conn:
            row = self._teacher_class(conn, code, key)
            conn.execute(update(db.classes).where(db.classes.c.id == row.id).values(locked=locked))
            _changed(conn, row.id)

    def set_lesson(self, code: str, key: str, lesson: Lesson) -> None:
        """The settings the class's students train with (read_lesson checked them)."""
        with self._write() as conn:
            row = self._teacher_class(conn, code, key)
            conn.execute(update(db.classes).where(db.classes.c.id == row.id)
                         .values(lesson=lesson.to_json()))
            _changed(conn, row.id)

    def clear_handwriting(self, code: str, key: str) -> None:
        with self._write() as conn:
            row = self._teacher_class(conn, code, key)
            conn.execute(delete(db.handwriting).where(db.handwriting.c.class_id == row.id))
            _changed(conn, row.id)

    def clear(self, code: str, key: str) -> None:
        """Every entry off the board; the students stay joined."""
        with self._write() as conn:
            row = self._teacher_class(conn, code, key)
            conn.execute(delete(db.entries).where(db.entries.c.class_id == row.id))
            _changed(conn, row.id)

    def close(self, code: str, key: str) -> None:
        """The class and everything in it are deleted; its code no longer answers."""
        with self._write() as conn:
            class_id = self._teacher_class(conn, code, key).id
            self._delete_class(conn, class_id)
        with self._lock:  # and this process's copies of its board and handwriting go too
            for cached in [k for k in self._boards if class_id in k[:2]]:
                del self._boards[cached]

    def _remember(self, key: tuple, value: tuple) -> None:
        """Keep a class's board or handwriting set until it changes; a class that closed or
        expired elsewhere is forgotten by age: at most three entries per live class are kept."""
        with self._lock:
            self._boards.pop(key, None)
            self._boards[key] = value  # the newest last
            while len(self._boards) > 3 * self.limits.max_classes:
                del self._boards[next(iter(self._boards))]

    def to_csv(self, code: str, key: str) -> str:
        if not self.is_teacher(code, key):
            raise NoSuchClass()
        board = self.board(code, include_hidden=True)
        names = sorted({name for e in board.entries for name in e.settings})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["entry", "name", "kind", "status", "val_accuracy", "test_accuracy",
                         "class_handwriting_accuracy", "class_handwriting_n", "seconds",
                         "hidden_by_teacher", *names])
        for e in board.entries:
            writer.writerow([e.id, _csv_safe(e.name), e.kind, e.status, e.val_acc, e.test_acc,
                             e.handwriting_acc, e.handwriting_n, round(e.seconds, 2), e.hidden,
                             *(json.dumps(e.settings[n]) if n in e.settings else "" for n in names)])
        return out.getvalue()

    # -- students
    def join(self, code: str, visitor: str, name) -> Joined:
        """Join a class under a name (made unique with a suffix), with a new seat token for the
        browser to keep, in one transaction: a database that goes silent halfway leaves no
        student without a seat. The same visitor joining again keeps their place and their
        first name, and gets a new token (the old one opens nothing any more)."""
        name = clean_name(name)
        canonical = normalise_code(code)
        if canonical is None:
            raise NoSuchClass()
        token = secrets.token_urlsafe(SEAT_TOKEN_BYTES)
        s = db.students.c
        for attempt in range(20):
            try:
                with self._write() as conn:
                    row = self._class(conn, canonical, for_update=True)
                    if row is None:
                        raise NoSuchClass()
                    me = conn.execute(select(s.id, s.name).where(
                        s.class_id == row.id, s.visitor == visitor)).first()
                    if me is not None:
                        conn.execute(update(db.students).where(s.id == me.id)
                                     .values(seat_hash=_hash(token)))
                        return Joined(me.name, token)
                    joined = conn.execute(select(func.count()).select_from(db.students).where(
                        s.class_id == row.id)).scalar()
                    if joined >= self.limits.class_max_students:
                        raise ClassError(f"this class is full ({joined} students, "
                                         "MLP_DEMO_CLASS_MAX_STUDENTS)")
                    taken = set(conn.execute(select(s.name).where(s.class_id == row.id)).scalars())
                    given = _unique(name, taken)
                    conn.execute(db.students.insert().values(
                        class_id=row.id, visitor=visitor, name=given, joined_at=self.clock(),
                        seat_hash=_hash(token)))
                    _changed(conn, row.id)
                return Joined(given, token)
            except IntegrityError:  # another student took the name meanwhile: pick again
                if attempt == 19:
                    raise ClassError("too many students are joining at once; try again") from None
        raise AssertionError("unreachable")

    def resume(self, code: str, token, visitor: str) -> str:
        """The seat this token holds in this class, moved to this visitor (a reloaded tab is a
        new visitor unless the hall's proxy keeps one); returns its name. NoSuchClass for a
        token this class did not issue, or one that is not a token at all."""
        canonical = normalise_code(code)
        if canonical is None or not isinstance(token, str) or not SEAT_TOKEN.fullmatch(token):
            raise NoSuchClass()
        s = db.students.c
        with self._write() as conn:
            row = self._class(conn, canonical, for_update=True)
            if row is None:
                raise NoSuchClass()
            seat = conn.execute(select(s.id, s.name, s.visitor).where(
                s.class_id == row.id, s.seat_hash == _hash(token))).first()
            if seat is None:
                raise NoSuchClass()
            if seat.visitor != visitor:
                elsewhere = conn.execute(select(s.name).where(
                    s.class_id == row.id, s.visitor == visitor)).first()
                if elsewhere is not None:  # this tab joined again meanwhile: it keeps that seat
                    return elsewhere.name
                conn.execute(update(db.students).where(s.id == seat.id).values(visitor=visitor))
        return seat.name

    def post(self, code: str, visitor: str, kind: str, settings: dict, val_acc, test_acc,
             seconds: float, status: str, curves: dict, handwriting_acc=None,
             handwriting_n: int | None = None) -> int:
        """A finished (or stopped) run of a student onto the board; returns its entry id."""
        if status not in ("finished", "stopped") or kind not in ("training", "teaching"):
            raise ClassError("only finished or stopped runs go on the board")
        settings_json = json.dumps(settings, sort_keys=True)
        if len(settings_json) > MAX_SETTINGS_CHARS:
            raise ClassError("this run's settings are too long for the board")
        curves = {k: downsample(v) for k, v in curves.items()}
        loss_json = json.dumps(curves.pop("loss", []))
        curves_json = json.dumps(curves)
        size = len(settings_json) + len(curves_json) + len(loss_json) + 100
        with self._write() as conn:
            row = self._class(conn, normalise_code(code), for_update=True)
            if row is None:
                raise NoSuchClass()
            if row.locked:
                raise ClassError("the teacher has locked the class: it takes no new runs")
            student = conn.execute(select(db.students.c.id).where(
                db.students.c.class_id == row.id, db.students.c.visitor == visitor)).first()
            if student is None:
                raise ClassError("join the class first")
            in_class = conn.execute(select(func.count()).select_from(db.entries).where(
                db.entries.c.class_id == row.id)).scalar()
            if in_class >= self.limits.class_max_runs:
                raise ClassError(f"the board holds {in_class} runs, its most "
                                 "(MLP_DEMO_CLASS_MAX_RUNS)")
            mine = conn.execute(select(func.count()).select_from(db.entries).where(
                db.entries.c.student_id == student.id)).scalar()
            if mine >= self.limits.student_max_runs:
                raise ClassError(f"you have {mine} runs on the board, the most per student "
                                 "(MLP_DEMO_STUDENT_MAX_RUNS): withdraw one first")
            stored = conn.execute(select(func.coalesce(func.sum(db.entries.c.size), 0))).scalar()
            if stored + size > self.limits.classes_max_mb * 2**20:
                raise ClassError("the server's class boards are full (MLP_DEMO_CLASSES_MAX_MB)")
            entry_id = conn.execute(db.entries.insert().values(
                class_id=row.id, student_id=student.id, kind=kind, settings=settings_json,
                val_acc=_number(val_acc), test_acc=_number(test_acc), seconds=float(seconds),
                status=status, curves=curves_json, loss=loss_json, hidden=False, created_at=self.clock(),
                size=size, handwriting_acc=_number(handwriting_acc),
                handwriting_n=int(handwriting_n) if handwriting_n else None)).inserted_primary_key[0]
            _changed(conn, row.id)
            return entry_id

    def withdraw(self, code: str, visitor: str, entry_id: int) -> None:
        """A student takes one of their own entries off the board."""
        with self._write() as conn:
            row = self._class(conn, normalise_code(code))
            if row is None:
                raise NoSuchClass()
            mine = select(db.students.c.id).where(db.students.c.class_id == row.id,
                                                  db.students.c.visitor == visitor)
            gone = conn.execute(delete(db.entries).where(
                db.entries.c.id == entry_id, db.entries.c.class_id == row.id,
                db.entries.c.student_id.in_(mine))).rowcount
            _changed(conn, row.id)
        if not gone:
            raise ClassError("that run is not yours, or is no longer on the board")

    # -- the class's handwriting
    def contribute(self, code: str, visitor: str, images: list[bytes], labels: list[int]) -> int:
        """A student's drawings (uint8 28x28 bytes, already through the examples reader) into the
        class's handwriting set; returns how many of theirs it holds now."""
        if len(images) != len(labels) or not images:
            raise ClassError("no drawings to add")
        if any(not isinstance(i, bytes) or len(i) != IMAGE_BYTES for i in images) or any(
                not isinstance(y, int) or isinstance(y, bool) or not 0 <= y <= 9 for y in labels):
            raise ClassError("a drawing must be a 28x28 image labelled 0 to 9")
        with self._write() as conn:
            row = self._class(conn, normalise_code(code), for_update=True)
            if row is None:
                raise NoSuchClass()
            student = self._student(conn, row.id, visitor)
            h = db.handwriting.c
            mine = conn.execute(select(func.count()).where(h.student_id == student)).scalar()
            room = self.limits.class_handwriting_per_student - mine
            if len(images) > room:
                raise ClassError(f"you have {mine} drawings in the class's handwriting, and a student "
                                 f"adds at most {self.limits.class_handwriting_per_student} "
                                 f"(MLP_DEMO_CLASS_HANDWRITING_PER_STUDENT): {max(room, 0)} more fit")
            total = conn.execute(select(func.count()).where(h.class_id == row.id)).scalar()
            if total + len(images) > self.limits.class_handwriting_max:
                raise ClassError(f"the class's handwriting holds {total} drawings, and at most "
                                 f"{self.limits.class_handwriting_max} "
                                 "(MLP_DEMO_CLASS_HANDWRITING_MAX)")
            now = self.clock()
            conn.execute(db.handwriting.insert(), [
                {"class_id": row.id, "student_id": student, "image": image, "label": label,
                 "created_at": now} for image, label in zip(images, labels)])
            _changed(conn, row.id)
            return mine + len(images)

    def withdraw_handwriting(self, code: str, visitor: str) -> int:
        """A student takes all their drawings out of the set; returns how many."""
        with self._write() as conn:
            row = self._class(conn, normalise_code(code))
            if row is None:
                raise NoSuchClass()
            student = self._student(conn, row.id, visitor)
            gone = conn.execute(delete(db.handwriting).where(
                db.handwriting.c.student_id == student)).rowcount
            _changed(conn, row.id)
            return gone

    def handwriting_counts(self, code: str, visitor: str) -> tuple[int, int]:
        """(a student's drawings, the class's) in the set."""
        with self._read() as conn:
            row = self._class(conn, normalise_code(code))
            if row is None:
                raise NoSuchClass()
            h = db.handwriting.c
            total = conn.execute(select(func.count()).where(h.class_id == row.id)).scalar()
            mine = conn.execute(select(func.count()).select_from(db.handwriting).join(
                db.students, db.students.c.id == h.student_id).where(
                h.class_id == row.id, db.students.c.visitor == visitor)).scalar()
        return mine, total

    def handwriting_set(self, code: str) -> HandwritingSet:
        """The class's handwriting as it is now, to score a run on (or for the teacher's
        contact sheet). Read again only when the class changed."""
        with self._read() as conn:
            row = self._class(conn, normalise_code(code))
            if row is None:
                raise NoSuchClass()
            key = ("handwriting", row.id, row.code)
            with self._lock:
                cached = self._boards.get(key)
            if cached is None or cached[0] != row.revision:
                h = db.handwriting.c
                rows = conn.execute(select(h.image, h.label).where(h.class_id == row.id)
                                    .order_by(h.label, h.id)).all()
                kept = [r for r in rows if len(r.image) == IMAGE_BYTES and 0 <= r.label <= 9]
                cached = (row.revision, HandwritingSet(b"".join(bytes(r.image) for r in kept),
                                                       [r.label for r in kept]))
                self._remember(key, cached)
        return cached[1]

    # -- the board
    def board(self, code: str, include_hidden: bool = False, visitor: str | None = None) -> Board:
        """The class's board. The projector asks every 3 s: its entries are read and parsed
        again only when the class changed (its revision), else taken from this process's cache."""
        canonical = normalise_code(code)
        if canonical is None:
            raise NoSuchClass()
        with self._read() as conn:
            row = self._class(conn, canonical)
            if row is None:
                raise NoSuchClass()
            key = (row.id, row.code, include_hidden)  # ids can be reused after a close; codes not
            with self._lock:
                cached = self._boards.get(key)
            if cached is None or cached[0] != row.revision:
                cached = (row.revision, *self._read_board(conn, row, include_hidden))
                self._remember(key, cached)
        _, students, handwriting_n, rows = cached
        return Board(canonical, students, bool(row.locked), json.loads(row.defaults), [
            Entry(*fields, mine=visitor is not None and owner == visitor) for owner, fields in rows],
            Lesson.from_json(row.lesson, self.limits), handwriting_n)

    def lesson(self, code: str) -> tuple[Lesson, dict]:
        """The class's lesson and the Default values its hidden settings keep."""
        with self._read() as conn:
            row = self._class(conn, normalise_code(code))
        if row is None:
            raise NoSuchClass()
        return Lesson.from_json(row.lesson, self.limits), json.loads(row.defaults)

    def loss_curve(self, code: str, entry_id: int) -> list[list[float]]:
        """One entry's loss curve ([x, loss], at most 100 points), for the run a board shows.
        The board asks every 3 s; a posted curve never changes, so it is read once."""
        key = (normalise_code(code), entry_id)
        with self._lock:
            if key in self._losses:
                return self._losses[key]
        with self._read() as conn:
            row = self._class(conn, normalise_code(code))
            if row is None:
                raise NoSuchClass()
            found = conn.execute(select(db.entries.c.loss).where(
                db.entries.c.id == entry_id, db.entries.c.class_id == row.id)).scalar()
        curve = json.loads(found) if found else []
        with self._lock:
            self._losses[key] = curve
            while len(self._losses) > 256:
                self._losses.pop(next(iter(self._losses)))
        return curve

    @staticmethod
    def _read_board(conn, row, include_hidden: bool) -> tuple[int, int, list]:
        students = conn.execute(select(func.count()).select_from(db.students).where(
            db.students.c.class_id == row.id)).scalar()
        handwriting_n = conn.execute(select(func.count()).select_from(db.handwriting).where(
            db.handwriting.c.class_id == row.id)).scalar()
        e = db.entries.c
        query = (select(e.id, e.kind, e.settings, e.val_acc, e.test_acc, e.seconds, e.status, e.curves,
                        e.hidden, e.handwriting_acc, e.handwriting_n, db.students.c.name,
                        db.students.c.visitor)
                 .join(db.students, db.students.c.id == db.entries.c.student_id)
                 .where(db.entries.c.class_id == row.id).order_by(db.entries.c.id))
        if not include_hidden:
            query = query.where(db.entries.c.hidden.is_(False))
        return students, handwriting_n, [
            (r.visitor, (r.id, r.name, r.kind, json.loads(r.settings), r.val_acc, r.test_acc,
                         r.seconds, r.status, json.loads(r.curves), bool(r.hidden),
                         r.handwriting_acc, r.handwriting_n))
            for r in conn.execute(query)]

    # -- internals
    def _write(self):
        return _transaction(self.engine)

    def _read(self):
        return _reading(self.engine)

    def _class(self, conn, code: str | None, for_update: bool = False):
        """The class with this code, if it is open (not closed, not expired)."""
        if code is None:
            return None
        query = select(db.classes).where(db.classes.c.code == code,
                                         db.classes.c.expires_at > self.clock())
        if for_update:  # PostgreSQL: the class's writes take turns (SQLite's always do)
            query = query.with_for_update()
        return conn.execute(query).first()

    @staticmethod
    def _student(conn, class_id: int, visitor: str) -> int:
        found = conn.execute(select(db.students.c.id).where(
            db.students.c.class_id == class_id, db.students.c.visitor == visitor)).scalar()
        if found is None:
            raise ClassError("join the class first")
        return found

    def _teacher_class(self, conn, code: str, key):
        row = self._class(conn, normalise_code(code), for_update=True)
        if row is None or not isinstance(key, str) or not hmac.compare_digest(
                row.teacher_key_hash, _hash(key)):
            raise NoSuchClass()
        return row

    def _purge_expired(self, conn, now: float) -> None:
        for (class_id,) in conn.execute(select(db.classes.c.id).where(db.classes.c.expires_at <= now)):
            self._delete_class(conn, class_id)

    @staticmethod
    def _delete_class(conn, class_id: int) -> None:
        for table in (db.entries, db.handwriting, db.students):
            conn.execute(delete(table).where(table.c.class_id == class_id))
        conn.execute(delete(db.classes).where(db.classes.c.id == class_id))


@contextmanager
def _transaction(engine: Engine):
    """One transaction, with a database that went away (or went silent) turned into
    ClassesDown. An IntegrityError passes through: callers retry on it."""
    with db.answering(ClassesDown, DATABASE_DOWN), engine.begin() as conn:
        yield conn


@contextmanager
def _reading(engine: Engine):
    with db.answering(ClassesDown, DATABASE_DOWN), db.reading(engine) as conn:
        yield conn


def _changed(conn, class_id: int) -> None:
    """Every write to a class moves its revision on: readers know their copy is stale."""
    conn.execute(update(db.classes).where(db.classes.c.id == class_id)
                 .values(revision=db.classes.c.revision + 1))


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    for n in range(2, 10_000):
        suffix = f" ({n})"
        candidate = name[:MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise ClassError("choose another name")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _csv_safe(text: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: not a name's."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
