"""One visitor's state and actions: their runs, Your examples, the chosen model, the live
trace, the messages the page shows and the link state. No streamlit: the page calls it, and
tests call it the same way.

Each action returns what the page should show, or raises SessionError with the message. The
server's shared objects (the run queue, the model store, the limits, MNIST) are handed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from . import weights
from .checkpoints import CheckpointError, CheckpointInfo, to_bytes
from .classes import (
    DATABASE_DOWN,
    NO_SUCH_CLASS,
    ClassError,
    Classes,
    HandwritingSet,
    NewClass,
    normalise_code,
)
from .config import TrainConfig
from .data import DataMissing, normalize
from .drawing import DrawingRefused, predict_field, predict_steps, read_drawing, read_field
from .examples import read_zip, to_zip
from .insight import predict_all
from .jobs import LocalJobs
from .lessons import Lesson
from .limits import Busy, Limits, RunQueue
from .runs import Run, RunHistory, summary
from .store import ModelStore
from .teach import MAX_EXAMPLES, TeachConfig

LIVE = "Live: the model you train here"  # the latest run, as it trains and after
SHIPPED = "Shipped model"
MNIST_MISSING = "Drawing still works, with the shipped model."
LIVE_WEIGHTS_S = 2.0  # how often a tab watching its run train gets its newer weights
JOIN_TRIES, JOIN_WINDOW_S = 5, 60  # wrong codes a tab may try in a minute


class SessionError(ValueError):
    """What a visitor asked for cannot be done; the message says why and what to do. kind:
    "error", or "info" for what is not a mistake (a drawing that was not read)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Example:
    image: np.ndarray  # uint8 28x28, as the network sees it
    label: int


@dataclass
class Prediction:
    steps: dict[str, np.ndarray]  # each preprocessing stage; "centred" is the network's input
    probs: np.ndarray  # (10,)
    model: object  # the weights that read it (a live run's are a copy): its explanation uses them

    @property
    def field(self) -> np.ndarray:
        return self.steps["centred"]

    @property
    def digit(self) -> int:
        return int(self.probs.argmax())


@dataclass
class LiveTrace:
    """The live model's ten probabilities for one drawing, step by step from when it was drawn."""
    key: tuple
    steps: list[int] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)


@dataclass
class LinkState:
    read: bool = False  # a shared link's settings are applied once, on the first run
    notice: str | None = None  # what the link asked for that could not be applied
    settings: dict = field(default_factory=dict)  # the sidebar's values, to restore dropped widgets


@dataclass
class Membership:
    """This tab's place in a class: the runs it finishes after joining go on the board."""
    code: str
    name: str
    after_run: int  # runs numbered above this go on the board
    posted: dict[int, int] = field(default_factory=dict)  # run number -> board entry id
    refused: set[int] = field(default_factory=set)  # runs the board would not take (said once)
    contributed: list = field(default_factory=list)  # Your examples now in the class's handwriting
    lesson: Lesson = field(default_factory=Lesson)  # as last read: kept while the database is away
    defaults: dict = field(default_factory=dict)  # the class's Default, which hidden settings keep


class Session:
    def __init__(self, visitor: str, queue: RunQueue, store: ModelStore, limits: Limits,
                 load_mnist: Callable[[], tuple], classes: Classes | None = None,
                 jobs: LocalJobs | None = None):
        self.visitor, self.queue, self.store, self.limits = visitor, queue, store, limits
        self.jobs = jobs or LocalJobs()  # where runs train: this process, or a Ray cluster
        self.classes = classes  # None when the database could not be opened
        self.membership: Membership | None = None
        self.teacher_keys: dict[str, str] = {}  # class code -> its teacher key, for this tab
        self._join_failures: list[float] = []
        self.load_mnist = load_mnist  # -> (train_x, train_y, test_x, test_y), shared read-only
        self.history = RunHistory(limits.max_runs)
        self.examples: list[Example] = []
        self.chosen: str | None = None  # a label of choices(); None: the first (shipped) model
        self.trace: LiveTrace | None = None
        self.messages: dict[str, tuple[str, str]] = {}
        self.link = LinkState()
        self.upload_version = 0  # a new examples uploader after each upload
        self.page_saw: tuple = self.activity()  # when the whole page was last drawn
        self.compare_seen = 0  # the last run number Compare runs has offered
        self._test_probs: tuple = (None, None)  # (run, step) -> a run's test probabilities
        self._choices: tuple = (None, (), {})  # (the listing, the runs, label -> source)
        self._browser_weights: tuple = ((None, False), None, 0.0)  # (run, active), URL, when
        self.test_picks = 0
        self.test_digit: dict | None = None  # an MNIST test image for the pad to show and read

    def __repr__(self) -> str:
        return (f"Session(visitor={self.visitor[:8]}, runs={len(self.history.runs)}, "
                f"examples={len(self.examples)}, chosen={self.chosen!r})")

    # -- messages
    def say(self, where: str, kind: str, text: str) -> None:
        """A message for one section of the page, shown once."""
        self.messages[where] = (kind, text)

    def take_message(self, where: str) -> tuple[str, str] | None:
        return self.messages.pop(where, None)

    # -- runs
    @property
    def job(self):
        """The latest run's job (queued, running or done), or None before the first run."""
        latest = self.history.latest
        return latest.job if latest else None

    def activity(self) -> tuple:
        """What the whole page depends on: which run is latest and whether it is active. When
        it changes under a fragment, the page is redrawn (buttons, run lists, refresh rates)."""
        latest = self.history.latest
        return (latest.number, latest.job.active) if latest else (None, False)

    def mark_page_drawn(self) -> None:
        """A whole-page run is drawing what activity() says now."""
        self.page_saw = self.activity()

    def page_is_stale(self) -> bool:
        """A run started or ended since the whole page was drawn: a fragment should redraw it."""
        return self.activity() != self.page_saw

    def train(self, config: TrainConfig) -> list[str]:
        """Queue a training run with these settings; returns notes for the page."""
        self._no_active_run("stop it first")
        try:
            config = config.validate()
        except ValueError as e:
            raise SessionError(str(e)) from None
        problems = self.limits.problems(config)
        if problems:
            raise SessionError("; ".join(problems))
        if self.membership is not None:  # whatever the widgets or the link said
            lesson, defaults = self.lesson()
            refusal = lesson.refusal(config, defaults)
            if refusal:
                raise SessionError(refusal[0].upper() + refusal[1:])
        raw = self.mnist(MNIST_MISSING)
        job = self.jobs.training(config, raw, self.visitor, self.limits.max_run_seconds)
        run, place, dropped = self._submit(job)
        notes = []
        if place:
            notes.append(f"All {self.limits.max_jobs} training slots are busy: {run.name} is queued "
                         "and starts by itself.")
        if dropped:
            notes.append(f"{', '.join(r.name for r in dropped)} dropped: a tab keeps at most "
                         f"{self.history.limit} runs (pin a run in Compare runs to keep it).")
        return notes

    def teach(self, config: TeachConfig = TeachConfig()) -> list[str]:
        """Fine-tune the chosen model on Your examples, as this tab's next run."""
        self._no_active_run("wait for it or stop it first")
        if not self.examples:
            raise SessionError("label a few drawings first (ten of each digit you care about is "
                               "plenty)")
        source = self.source()
        if isinstance(source, Run) and source.job.active:
            raise SessionError(f"{source.name} is still training: teach it once it ends, or pick "
                               "another model")
        model = self.model()
        if model is None:
            raise SessionError("the chosen model has no weights yet: pick another")
        raw = self.mnist("Teaching mixes in MNIST's images.")
        images = torch.from_numpy(np.stack([e.image for e in self.examples]))
        labels = torch.tensor([e.label for e in self.examples])
        try:
            job = self.jobs.teaching(model, images, labels, raw, self.visitor,
                                     self.limits.max_run_seconds, config)
        except ValueError as e:
            raise SessionError(str(e)) from None
        run, place, _ = self._submit(job)  # Live: the taught model answers the pad when ready
        self.history.rename(run.number, f"{run.name}: taught")
        if place:
            return [f"All {self.limits.max_jobs} training slots are busy: teaching is queued and "
                    "starts by itself."]
        return []

    def stop(self, wait_s: float = 5.0) -> None:
        """Stop this tab's run (or take it out of the queue), and wait a moment for it to end:
        a stop takes effect before the next batch, milliseconds later."""
        job = self.job
        if job is None or not job.active:
            return
        if not self.queue.cancel(job):
            job.stop()
            _wait_until(lambda: not job.active, wait_s)

    def rename(self, number: int, name: str) -> None:
        try:
            self.history.rename(number, name)
        except ValueError as e:
            raise SessionError(str(e)) from None

    def toggle_pin(self, number: int) -> None:
        run = self.history.get(number)
        if run is not None:
            run.pinned = not run.pinned

    def saveable(self) -> dict[str, Run]:
        """Run name -> run, for the runs that have ended with weights, latest first."""
        return {r.name: r for r in reversed(self.history.runs)
                if not r.job.active and r.model() is not None}

    def save(self, run_name: str, name: str):
        """Save an ended run's weights in the shared store, owned by this visitor."""
        run = self.saveable().get(run_name)
        if run is None:
            raise SessionError("choose a run that has finished or been stopped")
        h = run.job.snapshot()
        try:
            return self.store.save(name.strip(), self.visitor, run.model(), run.job.model_config,
                                   h["epochs"][-1] if h["epochs"] else {}, h["progress"]["elapsed"])
        except ValueError as e:
            raise SessionError(str(e)) from None

    def _no_active_run(self, fix: str) -> None:
        if self.job is not None and self.job.active:
            raise SessionError(f"this tab already has a run: {fix}")

    def _submit(self, job) -> tuple[Run, int, list[Run]]:
        """Queue a job as this tab's next run, keep it in the history and make it the model
        behind the pad: (its run, its place in the queue, the runs dropped)."""
        try:
            place = self.queue.submit(job)
        except Busy as e:
            raise SessionError(str(e)) from None
        run, dropped = self.history.add(job)
        self.chosen = LIVE
        return run, place, dropped

    def mnist(self, consequence: str) -> tuple:
        """MNIST's tensors (train_x, train_y, test_x, test_y); SessionError when missing."""
        try:
            return self.load_mnist()
        except DataMissing as e:
            raise SessionError(f"{e} {consequence}") from None

    # -- models
    def choices(self) -> dict[str, CheckpointInfo | Run]:
        """Label -> source for every model the pad can use: the listed files (the shipped model
        first), this tab's ended runs, and the latest run as Live. An entry that cannot be
        labelled is left out, never the whole list. A stroke asks several times: the list is
        made again only when the models folder or this tab's runs changed."""
        listing = self.store.listing()  # the same object while the folder is unchanged
        runs = tuple((r.number, r.name, r.job.active) for r in self.history.runs)
        made_from, runs_then, found = self._choices
        if made_from is not listing or runs_then != runs:
            self._choices = (listing, runs, found := self._list_choices(listing))
        return found

    def _list_choices(self, listing) -> dict[str, CheckpointInfo | Run]:
        found = {}
        for i, info in enumerate(listing.models):
            shipped = i == 0 and info.name == "default"
            acc = info.metrics.get("test_acc")
            label = SHIPPED if shipped else f"Saved: {info.name}"
            if isinstance(acc, float):
                label += f" ({acc:.2%} test)"
            found[label] = info
        for run in self.history.runs[:-1]:
            if run.model() is not None:
                acc = summary(run)["test_acc"]
                found[run.name + (f" ({acc:.2%} test)" if acc else "")] = run
        if self.history.latest:
            found[LIVE] = self.history.latest
        return found

    def choose(self, label: str) -> None:
        if label not in self.choices():
            raise SessionError("that model is no longer listed: choose another")
        self.chosen = label

    def chosen_label(self) -> str | None:
        """The chosen model's label, or the first listed if that one is gone."""
        choices = self.choices()
        if self.chosen in choices:
            return self.chosen
        return next(iter(choices), None)

    def source(self) -> CheckpointInfo | Run | None:
        return self.choices().get(self.chosen_label())

    def model(self):
        """The chosen model, or None for a run before its first step; SessionError if its
        file cannot be loaded."""
        return self.model_of(self.source())

    def model_of(self, source):
        if source is None:
            raise SessionError("no model is listed: train one first")
        if isinstance(source, Run):
            return source.model()
        try:
            return self.store.model(source)
        except (CheckpointError, OSError) as e:
            raise SessionError(f"This model cannot be loaded: {e}") from None

    def is_live(self) -> bool:
        """The pad follows the run that is training now."""
        source = self.source()
        return isinstance(source, Run) and source is self.history.latest and source.job.active

    def browser_model(self) -> dict:
        """What the pad's browser side runs: {"model": the URL of the chosen model's weights},
        or {"note": why there are none yet}. A run's weights are published when it is chosen
        and again when it ends; the live run's at most every LIVE_WEIGHTS_S, each newer file
        replacing the older (a Default run's weights are 1.6 MB)."""
        try:
            source = self.source()
        except SessionError as e:
            return {"note": str(e)}
        if source is None:
            return {"note": "No model is listed: train one first."}
        if not isinstance(source, Run):
            return {"model": weights.publish_file(source.path), "show": self.test_digit}
        key, now = (source.number, source.job.active), time.monotonic()
        seen_key, url, at = self._browser_weights
        if seen_key == key and (not key[1] or now - at < LIVE_WEIGHTS_S):
            return {"model": url, "show": self.test_digit}
        model = source.model()
        if model is None:
            return {"note": "The live model appears after its first training step."}
        try:
            published = weights.publish(to_bytes(model, model.config, {}, 0.0), weights.RUN_PREFIX)
        except CheckpointError as e:
            return {"note": f"This run's weights cannot be used: {e}."}
        if seen_key[1] and url != published:
            weights.withdraw(url)  # the live run's older weights: no page needs them now
        self._browser_weights = (key, published, now)
        return {"model": published, "show": self.test_digit}

    def pick_test_digit(self, digit: int) -> None:
        """Put one of MNIST's test images of this digit on the pad (a way to give the network a
        digit without drawing): the pad shows it and reads it like a drawing."""
        if digit not in range(10):
            raise SessionError("pick a digit from 0 to 9")
        _, _, test_x, test_y = self.mnist("Pick a test digit needs MNIST's test images.")
        which = torch.nonzero(test_y == digit).flatten()
        self.test_picks += 1
        image = test_x[which[(self.test_picks * 7919) % len(which)]]  # a different one each time
        self.test_digit = {"field": (image.float() / 255).flatten().tolist(), "n": self.test_picks}

    def predict(self, drawing_url: str | None) -> Prediction | None:
        """What the chosen model reads in an image (a PNG data URL, untrusted): None for none;
        SessionError(kind="info") for a refused or blank drawing or a model not ready,
        SessionError for a model that cannot be loaded."""
        return self._read(lambda: (read_drawing(drawing_url), None))

    def predict_pad(self, values) -> Prediction | None:
        """The same for what the pad sends when the pen lifts: the 28x28 field the browser
        preprocessed (784 numbers in [0, 1], untrusted; read again here, never its probabilities)."""
        return self._read(lambda: (None, read_field(values)))

    def _read(self, decode) -> Prediction | None:
        try:
            image, field = decode()
        except DrawingRefused as e:
            raise SessionError(f"This drawing was not read: {e}. Clear the pad and draw again.",
                               "info") from None
        if image is None and field is None:
            return None
        model = self.model()
        if model is None:
            raise SessionError("The live model appears after its first training step.", "info")
        if field is not None:
            found = None if field.sum() < 1 else ({"centred": field}, predict_field(model, field))
        else:
            found = predict_steps(model, image)
        if found is None:
            raise SessionError("The pad looks blank: draw a digit (a bigger one, if you already "
                               "did).", "info")
        prediction = Prediction(*found, model)
        if self.is_live():
            self._follow(prediction)
        return prediction

    def _follow(self, prediction: Prediction) -> None:
        run = self.history.latest
        key = (run.number, hash(prediction.field.tobytes()))
        if self.trace is None or self.trace.key != key:
            self.trace = LiveTrace(key)
        step = run.job.snapshot()["progress"]["step"]
        if not self.trace.steps or step > self.trace.steps[-1]:
            self.trace.steps.append(step)
            self.trace.probs.append(prediction.probs.tolist())

    def run_test_probabilities(self, run: Run) -> np.ndarray:
        """A run's probabilities (10000, 10) on MNIST's test images, kept for its latest step
        (one at a time: 10,000 x 10 floats each)."""
        key = (run.number, run.job.snapshot()["progress"]["step"])
        if self._test_probs[0] != key:
            model = run.model()
            if model is None:
                raise SessionError("this run has no weights yet", "info")
            test_x = self.mnist("The confusion matrix needs MNIST's test images.")[2]
            self._test_probs = (key, predict_all(model, test_x).numpy())
        return self._test_probs[1]

    # -- Your examples
    def add_example(self, image: np.ndarray, label: int) -> str:
        """Label a 28x28 image (floats in [0, 1] or uint8) as a digit."""
        if not isinstance(label, int) or not 0 <= label <= 9:
            raise SessionError("a label is a digit from 0 to 9")
        image = np.asarray(image)
        if image.shape != (28, 28):
            raise SessionError("an example is a 28x28 image")
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        if any(e.label == label and np.array_equal(e.image, image) for e in self.examples):
            raise SessionError(f"this drawing is already in Your examples as a {label}")
        if len(self.examples) >= MAX_EXAMPLES:
            raise SessionError(f"Your examples hold at most {MAX_EXAMPLES}: remove some first")
        self.examples.append(Example(image, label))
        return (f"Added as a {label}: {len(self.examples)} in Your examples, below. Clear the pad "
                "and draw the next one.")

    def remove_examples(self, indices) -> None:
        chosen = set(indices)
        self.examples = [e for i, e in enumerate(self.examples) if i not in chosen]

    def clear_examples(self) -> None:
        self.examples = []

    def add_examples_zip(self, data: bytes, name: str) -> str:
        """An uploaded examples zip (untrusted) joins Your examples."""
        self.upload_version += 1  # a fresh uploader: the same file can be chosen again
        try:
            images, labels = read_zip(data)
        except ValueError as e:
            raise SessionError(str(e)) from None
        total = len(self.examples) + len(images)
        if total > MAX_EXAMPLES:
            raise SessionError(f"{len(images)} more would make {total}; Your examples hold at most "
                               f"{MAX_EXAMPLES}")
        self.examples += [Example(i, y) for i, y in zip(images, labels)]
        return f"Added {len(images)} examples from {name[:80]}."

    def latest_teaching(self) -> Run | None:
        return next((r for r in reversed(self.history.runs) if r.job.snapshot()["kind"] == "teaching"),
                    None)

    # -- the class
    def _classes(self) -> Classes:
        if self.classes is None:
            raise SessionError(DATABASE_DOWN)
        return self.classes

    def start_class(self) -> NewClass:
        """A new class; this tab holds its teacher key."""
        try:
            new = self._classes().create()
        except ClassError as e:
            raise SessionError(str(e)) from None
        self.teacher_keys[new.code] = new.teacher_key
        return new

    def join(self, code: str, name: str) -> str:
        """Join a class: the runs this tab finishes from now on go on its board."""
        now = time.monotonic()
        self._join_failures = [t for t in self._join_failures if now - t < JOIN_WINDOW_S]
        if len(self._join_failures) >= JOIN_TRIES:
            raise SessionError("Too many tries: wait a minute, then check the code.")
        try:
            given = self._classes().join(code, self.visitor, name)
        except ClassError as e:
            if str(e) == NO_SUCH_CLASS:
                self._join_failures.append(now)
            raise SessionError(str(e)) from None
        self.membership = Membership(normalise_code(code), given, self.history.counter)
        return (f"You are on the board of class {self.membership.code} as {given}: every run you "
                "finish in this tab from now on goes on it.")

    def leave(self) -> None:
        self.membership = None

    def lesson(self) -> tuple[Lesson, dict]:
        """The class's lesson, read afresh (the teacher may change it mid-class), and the Default
        values its hidden settings keep. While the database is away, the last one read."""
        member = self.membership
        if member is None:
            return Lesson(), {}
        try:
            member.lesson, member.defaults = self._classes().lesson(member.code)
        except (ClassError, SessionError):
            pass
        return member.lesson, member.defaults

    def contribute(self) -> str:
        """Your examples not yet given join the class's handwriting set (the visitor's choice,
        each time): through the examples reader, as an upload would be."""
        member = self._member()
        new = self.not_contributed()
        if not new:
            raise SessionError("label some drawings first: those in Your examples that the class "
                               "does not have yet are added", "info")
        try:
            images, labels = read_zip(to_zip([e.image for e in new], [e.label for e in new]))
            mine = self._classes().contribute(member.code, self.visitor,
                                              [i.tobytes() for i in images], labels)
        except (ValueError, ClassError) as e:
            raise SessionError(str(e)) from None
        member.contributed += new
        return (f"Added {len(new)} drawings to the class's handwriting: {mine} of yours are in it. "
                "Every run on the board is now scored on them too.")

    def not_contributed(self) -> list[Example]:
        """Your examples that the class's handwriting set does not have yet."""
        given = self.membership.contributed if self.membership else []
        return [e for e in self.examples if not any(e is g for g in given)]

    def withdraw_handwriting(self) -> str:
        member = self._member()
        try:
            gone = self._classes().withdraw_handwriting(member.code, self.visitor)
        except ClassError as e:
            raise SessionError(str(e)) from None
        member.contributed = []
        return f"Took your {gone} drawings out of the class's handwriting."

    def handwriting_score(self, run: Run) -> tuple[float | None, int | None]:
        """A run's accuracy on its class's handwriting set as it is now, and the set's size;
        (None, None) while the set is empty or the run has no weights."""
        found = self._classes().handwriting_set(self._member().code)
        model = run.model()
        if not len(found) or model is None:
            return None, None
        return handwriting_accuracy(model, found), len(found)

    def _member(self) -> Membership:
        if self.membership is None:
            raise SessionError("join a class first")
        return self.membership

    def remember_teacher(self, code, key) -> bool:
        """A teacher link's key, kept in this tab if it is the class's."""
        if self.classes is None or not self.classes.is_teacher(code, key):
            return False
        self.teacher_keys[normalise_code(code)] = key
        return True

    def teacher_key(self, code) -> str | None:
        return self.teacher_keys.get(normalise_code(code) or "")

    def post_finished_runs(self) -> list[str]:
        """Put this tab's newly ended runs on its class's board (finished or stopped ones;
        failed, diverged and cancelled runs are not posted). Returns what to tell the visitor.
        A database that does not answer is tried again at the next call."""
        member = self.membership
        if member is None or self.classes is None:
            return []
        said = []
        for run in self.history.runs:
            if (run.number <= member.after_run or run.number in member.posted
                    or run.number in member.refused or run.job.active):
                continue
            entry = board_entry(run)
            if entry is None:
                member.refused.add(run.number)
                continue
            try:
                entry["handwriting_acc"], entry["handwriting_n"] = self.handwriting_score(run)
                member.posted[run.number] = self.classes.post(member.code, self.visitor, **entry)
            except ClassError as e:
                if str(e) == DATABASE_DOWN:
                    return said + [str(e)]
                member.refused.add(run.number)
                said.append(f"{run.name} is not on the board: {e}")
            else:
                scored = ("" if entry["handwriting_n"] is None else
                          f" It read {entry['handwriting_acc']:.0%} of the class's "
                          f"{entry['handwriting_n']} drawings.")
                said.append(f"{run.name} is on the class board.{scored}")
        return said

    def withdraw(self, run_number: int) -> None:
        member = self.membership
        if member is None or run_number not in member.posted:
            raise SessionError("that run is not on the board")
        try:
            self._classes().withdraw(member.code, self.visitor, member.posted[run_number])
        except ClassError as e:
            raise SessionError(str(e)) from None
        del member.posted[run_number]
        member.refused.add(run_number)  # not posted again


def board_entry(run: Run) -> dict | None:
    """What a class board keeps of an ended run, or None for a run it does not take (failed,
    diverged, cancelled): its settings (a teaching run's: the architecture it taught and its
    teaching settings), final accuracies, seconds, and its curves (at most 100 points each, on
    the run's own x-axis: epochs for training, steps for teaching)."""
    h = run.job.snapshot()
    if h["status"] not in ("finished", "stopped"):
        return None
    if h["kind"] == "teaching":
        config = run.job.model_config
        settings = {"hidden": list(config.hidden), "activation": config.activation,
                    "teach": h["settings"]}
        per_x = 1.0
    else:
        settings = h["settings"]
        per_x = max(h["progress"]["total_steps"] / max(settings["epochs"], 1), 1)
    at = "epoch" if h["x_axis"] == "epoch" else "step"
    last = summary(run)
    return {"kind": h["kind"], "settings": settings, "val_acc": last["val_acc"],
            "test_acc": last["test_acc"], "seconds": last["seconds"], "status": h["status"],
            "curves": {
                "val_acc": [[e[at], e["val_acc"]] for e in h["epochs"] if e.get("val_acc") is not None],
                "test_acc": [[e[at], e["test_acc"]] for e in h["epochs"] if e.get("test_acc") is not None],
                "loss": [[round(s / per_x, 4), v] for s, v in zip(h["loss_steps"], h["loss"])]}}


def handwriting_accuracy(model, found: HandwritingSet) -> float:
    """The share of a class's handwriting set a model reads right."""
    images = torch.frombuffer(bytearray(found.images), dtype=torch.uint8).view(-1, 28, 28)
    predicted = predict_all(model, images).argmax(1)
    return (predicted == torch.tensor(found.labels)).float().mean().item()


def blank_input() -> torch.Tensor:
    """The normalised blank pad (784,): the baseline Why this prediction compares against."""
    return normalize(torch.zeros(1, 28, 28))[0]


def _wait_until(condition, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
