"""A visitor's classes: the one they joined as a student (their Seat: the runs they finish go on
its board, their drawings may join its handwriting) and the ones this tab teaches (the teacher
keys it holds, and the teacher's actions on a board). No streamlit: the page reaches it as
`session.membership`, and tests call it the same way.

Each action returns what to tell the visitor, or raises SessionError with the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..examples import read_zip, to_zip
from ..insight import predict_all
from .classes import (
    DATABASE_DOWN,
    Board,
    ClassError,
    Classes,
    ClassesDown,
    HandwritingSet,
    NewClass,
    NoSuchClass,
    normalise_code,
)
from .errors import SessionError
from .lessons import Lesson
from .limits import Guesses
from .runs import Run, RunHistory, summary

TOO_MANY_TRIES = "Too many tries: wait a minute, then check the code."


@dataclass
class Seat:
    """This tab's place in a class: the runs it finishes after joining go on the board."""
    code: str
    name: str
    after_run: int  # runs numbered above this go on the board
    posted: dict[int, int] = field(default_factory=dict)  # run number -> board entry id
    refused: set[int] = field(default_factory=set)  # runs the board would not take (said once)
    contributed: list = field(default_factory=list)  # Your examples now in the class's handwriting
    lesson: Lesson = field(default_factory=Lesson)  # as last read: kept while the database is away
    defaults: dict = field(default_factory=dict)  # the class's Default, which hidden settings keep
    token: str | None = None  # what the browser keeps to take this seat back after a reload


class Membership:
    def __init__(self, visitor: str, classes: Classes | None, history: RunHistory,
                 guesses: Guesses | None = None, client: str | None = None):
        self.visitor, self.history = visitor, history
        self.guesses = guesses or Guesses()  # the server's, shared by every tab
        self.client = client or visitor  # whose wrong codes these are (limits.Guesses)
        self.classes = classes  # None while the database cannot be opened
        self.seat: Seat | None = None
        self.teacher_keys: dict[str, str] = {}  # class code -> its teacher key, for this tab
        self.forget_kept = False  # the browser's kept seat is gone (left, or no longer valid)
        self._kept_seen = None

    def __repr__(self) -> str:
        return f"Membership(seat={self.seat and self.seat.code}, teaches={list(self.teacher_keys)})"

    def _classes(self) -> Classes:
        if self.classes is None:
            raise SessionError(DATABASE_DOWN)
        return self.classes

    # -- the student
    def join(self, code: str, name: str) -> str:
        """Join a class: the runs this tab finishes from now on go on its board."""
        self._no_more_guesses()
        try:
            given, token = self._classes().join(code, self.visitor, name)
        except NoSuchClass as e:
            self.guesses.failed(self.client)
            raise SessionError(str(e)) from None
        except ClassError as e:
            raise SessionError(str(e)) from None
        self.seat = Seat(normalise_code(code), given, self.history.counter, token=token)
        self.forget_kept = False
        return (f"You are on the board of class {self.seat.code} as {given}: every run you "
                "finish in this tab from now on goes on it.")

    def activity(self) -> tuple:
        """What the Class section shows of this tab's own doing."""
        seat = self.seat
        return (seat.code, len(seat.contributed), len(seat.posted)) if seat else (None, 0, 0)

    def _no_more_guesses(self) -> None:
        if not self.guesses.allowed(self.client):
            raise SessionError(TOO_MANY_TRIES)

    def resume(self, code, token) -> bool:
        """Take back the seat a browser kept (after a reload, or a phone that dropped the tab):
        the same name, and the lesson in force at once. False, quietly, for a seat that is gone
        or a token the class never issued (a forged one joins nobody, and counts as a guess)."""
        if self.seat is not None or self.classes is None or not self.guesses.allowed(self.client):
            return False  # not now: the browser keeps its seat for the next try
        try:
            name = self.classes.resume(code, token, self.visitor)
        except NoSuchClass:
            self.guesses.failed(self.client)
            self.forget_kept = True  # gone, or never issued: the browser forgets it
            return False
        except ClassError:  # the database is away: tried again at the next report or reload
            return False
        self.seat = Seat(normalise_code(code), name, self.history.counter, token=token)
        self.lesson()
        return True

    def from_browser(self, kept) -> None:
        """A seat the browser kept ({"code", "token"}): taken back if this tab has none; one that
        cannot be taken back is forgotten by the browser too."""
        if self.seat is not None or kept == self._kept_seen:  # each kept seat is tried once
            return
        self._kept_seen = kept
        if isinstance(kept, dict) and isinstance(kept.get("code"), str):
            self.resume(kept["code"][:40], kept.get("token"))
        else:
            self.forget_kept = True

    def from_cookie(self, text) -> None:
        """The seat cookie ("CODE.TOKEN"), read on a reloaded tab's first run, before any widget."""
        if isinstance(text, str) and 0 < len(text) <= 120 and "." in text:
            code, token = text.split(".", 1)
            self.from_browser({"code": code, "token": token})

    def for_browser(self) -> dict:
        """What the browser should keep: this tab's seat; nothing once it left (or its kept seat
        was refused); else no word, so that a fresh tab never wipes a seat kept for a reload."""
        seat = self.seat
        if seat is not None and seat.token:
            return {"keep": {"code": seat.code, "token": seat.token}}
        return {"keep": None} if self.forget_kept else {}

    def leave(self) -> None:
        self.seat = None
        self.forget_kept = True

    def lesson(self) -> tuple[Lesson, dict]:
        """The class's lesson, read afresh (the teacher may change it mid-class), and the Default
        values its hidden settings keep. While the database is away, the last one read."""
        seat = self.seat
        if seat is None:
            return Lesson(), {}
        try:
            seat.lesson, seat.defaults = self._classes().lesson(seat.code)
        except (ClassError, SessionError):
            pass
        return seat.lesson, seat.defaults

    def contribute(self, examples: list) -> str:
        """Your examples not yet given join the class's handwriting set (the visitor's choice,
        each time): through the examples reader, as an upload would be."""
        seat = self._seat()
        new = self.not_contributed(examples)
        if not new:
            raise SessionError("label some drawings first: those in Your examples that the class "
                               "does not have yet are added", "info")
        try:
            images, labels = read_zip(to_zip([e.image for e in new], [e.label for e in new]))
            mine = self._classes().contribute(seat.code, self.visitor,
                                              [i.tobytes() for i in images], labels)
        except (ValueError, ClassError) as e:
            raise SessionError(str(e)) from None
        seat.contributed += new
        return (f"Added {len(new)} drawings to the class's handwriting: {mine} of yours are in it. "
                "Every run on the board is now scored on them too.")

    def not_contributed(self, examples: list) -> list:
        """Your examples that the class's handwriting set does not have yet."""
        given = self.seat.contributed if self.seat else []
        return [e for e in examples if not any(e is g for g in given)]

    def withdraw_handwriting(self) -> str:
        seat = self._seat()
        try:
            gone = self._classes().withdraw_handwriting(seat.code, self.visitor)
        except ClassError as e:
            raise SessionError(str(e)) from None
        seat.contributed = []
        return f"Took your {gone} drawings out of the class's handwriting."

    def handwriting_counts(self) -> tuple[int, int]:
        """(this visitor's drawings, all drawings) in the class's handwriting set."""
        try:
            return self._classes().handwriting_counts(self._seat().code, self.visitor)
        except ClassError as e:
            raise SessionError(str(e)) from None

    def handwriting_score(self, run: Run) -> tuple[float | None, int | None]:
        """A run's accuracy on its class's handwriting set as it is now, and the set's size;
        (None, None) while the set is empty or the run has no weights."""
        found = self._classes().handwriting_set(self._seat().code)
        model = run.model()
        if not len(found) or model is None:
            return None, None
        return handwriting_accuracy(model, found), len(found)

    def _seat(self) -> Seat:
        if self.seat is None:
            raise SessionError("join a class first")
        return self.seat

    def post_finished_runs(self) -> list[str]:
        """Put this tab's newly ended runs on its class's board (finished or stopped ones;
        failed, diverged and cancelled runs are not posted). Returns what to tell the visitor.
        A database that does not answer is tried again at the next call."""
        seat = self.seat
        if seat is None or self.classes is None:
            return []
        said = []
        for run in self.history.runs:
            if (run.number <= seat.after_run or run.number in seat.posted
                    or run.number in seat.refused or run.job.active):
                continue
            entry = board_entry(run)
            if entry is None:
                seat.refused.add(run.number)
                continue
            try:
                entry["handwriting_acc"], entry["handwriting_n"] = self.handwriting_score(run)
                seat.posted[run.number] = self.classes.post(seat.code, self.visitor, **entry)
            except ClassesDown as e:
                return said + [str(e)]
            except ClassError as e:
                seat.refused.add(run.number)
                said.append(f"{run.name} is not on the board: {e}")
            else:
                scored = ("" if entry["handwriting_n"] is None else
                          f" It read {entry['handwriting_acc']:.0%} of the class's "
                          f"{entry['handwriting_n']} drawings.")
                said.append(f"{run.name} is on the class board.{scored}")
        return said

    def withdraw(self, run_number: int) -> None:
        seat = self.seat
        if seat is None or run_number not in seat.posted:
            raise SessionError("that run is not on the board")
        try:
            self._classes().withdraw(seat.code, self.visitor, seat.posted[run_number])
        except ClassError as e:
            raise SessionError(str(e)) from None
        del seat.posted[run_number]
        seat.refused.add(run_number)  # not posted again

    # -- the teacher
    def start_class(self) -> NewClass:
        """A new class; this tab holds its teacher key."""
        try:
            new = self._classes().create()
        except ClassError as e:
            raise SessionError(str(e)) from None
        self.teacher_keys[new.code] = new.teacher_key
        return new

    def remember_teacher(self, code, key) -> bool:
        """A teacher link's key, kept in this tab if it is the class's."""
        if self.classes is None or not self.classes.is_teacher(code, key):
            return False
        self.teacher_keys[normalise_code(code)] = key
        return True

    def teacher_key(self, code) -> str | None:
        return self.teacher_keys.get(normalise_code(code) or "")

    def board(self, code: str) -> Board:
        """A class's board as this tab may see it: with the hidden entries for its teacher."""
        self._no_more_guesses()
        try:
            return self._classes().board(code, include_hidden=self.teacher_key(code) is not None,
                                         visitor=self.visitor)
        except NoSuchClass as e:
            self.guesses.failed(self.client)
            raise SessionError(str(e), "info") from None
        except ClassError as e:
            raise SessionError(str(e), "info") from None

    def loss_curve(self, code: str, entry_id: int) -> list:
        return self._board_call("loss_curve", code, entry_id)

    def class_lesson(self, code: str) -> tuple[Lesson, dict]:
        return self._board_call("lesson", code)

    def handwriting_set(self, code: str) -> HandwritingSet:
        return self._board_call("handwriting_set", code)

    def hide(self, code: str, entry_ids, hidden: bool) -> None:
        for entry_id in entry_ids:
            self._teacher_call("hide", code, entry_id, hidden)

    def set_locked(self, code: str, locked: bool) -> None:
        self._teacher_call("set_locked", code, locked)

    def set_lesson(self, code: str, lesson: Lesson) -> None:
        self._teacher_call("set_lesson", code, lesson)

    def clear(self, code: str) -> None:
        self._teacher_call("clear", code)

    def clear_handwriting(self, code: str) -> None:
        self._teacher_call("clear_handwriting", code)

    def to_csv(self, code: str) -> str:
        return self._teacher_call("to_csv", code)

    def close(self, code: str) -> None:
        self._teacher_call("close", code)
        self.teacher_keys.pop(normalise_code(code) or "", None)

    def _board_call(self, action: str, *args):
        try:
            return getattr(self._classes(), action)(*args)
        except ClassError as e:
            raise SessionError(str(e)) from None

    def _teacher_call(self, action: str, code: str, *args):
        """A teacher's action, with the key this tab holds for the class (none: refused)."""
        key = self.teacher_key(code)
        if key is None:
            raise SessionError("open the teacher link first: this tab does not teach that class")
        return self._board_call(action, code, key, *args)


def board_entry(run: Run) -> dict | None:
    """What a class board keeps of an ended run, or None for a run it does not take (failed,
    diverged, cancelled): its settings (a teaching run's: the architecture it taught and its
    teaching settings), final accuracies, seconds, and its curves (at most 100 points each, on
    the run's own x-axis: epochs for training, steps for teaching)."""
    h = run.job.snapshot()
    if h.status not in ("finished", "stopped"):
        return None
    if h.kind == "teaching":
        config = run.job.model_config
        settings = {"hidden": list(config.hidden), "activation": config.activation,
                    "teach": h.settings}
        per_x = 1.0
    else:
        settings = h.settings
        per_x = max(h.progress.total_steps / max(settings["epochs"], 1), 1)
    at = h.x_axis
    last = summary(run)
    return {"kind": h.kind, "settings": settings, "val_acc": last["val_acc"],
            "test_acc": last["test_acc"], "seconds": last["seconds"], "status": h.status,
            "curves": {
                "val_acc": [[e[at], e["val_acc"]] for e in h.epochs if e.get("val_acc") is not None],
                "test_acc": [[e[at], e["test_acc"]] for e in h.epochs if e.get("test_acc") is not None],
                "loss": [[round(s / per_x, 4), v] for s, v in zip(h.loss_steps, h.loss)]}}


def handwriting_accuracy(model, found: HandwritingSet) -> float:
    """The share of a class's handwriting set a model reads right."""
    images = torch.frombuffer(bytearray(found.images), dtype=torch.uint8).view(-1, 28, 28)
    predicted = predict_all(model, images).argmax(1)
    return (predicted == torch.tensor(found.labels)).float().mean().item()
