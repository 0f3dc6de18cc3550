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

from ..checkpoints import CheckpointError, CheckpointInfo, to_bytes
from ..config import TrainConfig
from ..data import DataMissing, normalize
from ..drawing import DrawingRefused, predict_field, predict_steps, read_drawing, read_field
from ..examples import read_zip
from ..insight import predict_all
from ..teach import MAX_EXAMPLES, TeachConfig
from . import weights
from .classes import Classes
from .errors import SessionError
from .jobs import LocalJobs
from .limits import Busy, Guesses, Limits, RunQueue
from .membership import Membership
from .runs import Run, RunHistory, summary
from .store import ModelStore

LIVE = "Live: the model you train here"  # the latest run, as it trains and after
SHIPPED = "Shipped model"
MNIST_MISSING = "Drawing still works, with the shipped model."
LIVE_WEIGHTS_S = 2.0  # how often a tab watching its run train gets its newer weights


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
    asked: dict = field(default_factory=dict)  # the settings the link itself named, as read




class Session:
    def __init__(self, visitor: str, queue: RunQueue, store: ModelStore, limits: Limits,
                 load_mnist: Callable[[], tuple], classes: Classes | None = None,
                 jobs: LocalJobs | None = None, guesses: Guesses | None = None,
                 client: str | None = None):
        self.visitor, self.queue, self.store, self.limits = visitor, queue, store, limits
        self.jobs = jobs or LocalJobs()  # where runs train: this process, or a Ray cluster
        self.load_mnist = load_mnist  # -> (train_x, train_y, test_x, test_y), shared read-only
        self.history = RunHistory(limits.max_runs)
        self.membership = Membership(visitor, classes, self.history, guesses, client)
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
        """The section's message, gone once shown; kept while the page is about to be redrawn
        whole (page_is_stale), so that the redrawn page shows it too."""
        if self.page_is_stale():
            return self.messages.get(where)
        return self.messages.pop(where, None)

    # -- runs
    @property
    def job(self):
        """The latest run's job (queued, running or done), or None before the first run."""
        latest = self.history.latest
        return latest.job if latest else None

    def activity(self) -> tuple:
        """What the whole page depends on: which run is latest and whether it is active, and
        this tab's place in its class. When it changes under a fragment (Teach, a run's end, the
        class's handwriting added from beside the pad), the page is redrawn (buttons, run lists,
        refresh rates, the Class section)."""
        latest = self.history.latest
        run = (latest.number, latest.job.active) if latest else (None, False)
        return run + self.membership.activity()

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
        if self.membership.seat is not None:  # whatever the widgets or the link said
            lesson, defaults = self.membership.lesson()
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
                                   h.last_epoch, h.seconds)
        except ValueError as e:
            raise SessionError(str(e)) from None

    def models(self):
        """The shared models folder's listing (store.Listing): every visitor's saved models."""
        return self.store.listing()

    def owns(self, model_name: str) -> bool:
        return self.store.owner(model_name) == self.visitor

    def add_upload(self, file_name: str, data: bytes) -> None:
        """An uploaded checkpoint (untrusted) joins the shared models, owned by this visitor."""
        self.store.add_upload(file_name, data, self.visitor)

    def delete_model(self, model_name: str) -> None:
        self.store.delete(model_name, self.visitor)

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
        step = run.job.snapshot().progress.step
        if not self.trace.steps or step > self.trace.steps[-1]:
            self.trace.steps.append(step)
            self.trace.probs.append(prediction.probs.tolist())

    def run_test_probabilities(self, run: Run) -> np.ndarray:
        """A run's probabilities (10000, 10) on MNIST's test images, kept for its latest step
        (one at a time: 10,000 x 10 floats each)."""
        key = (run.number, run.job.snapshot().progress.step)
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
        return next((r for r in reversed(self.history.runs) if r.job.snapshot().kind == "teaching"),
                    None)





def blank_input() -> torch.Tensor:
    """The normalised blank pad (784,): the baseline Why this prediction compares against."""
    return normalize(torch.zeros(1, 28, 28))[0]


def _wait_until(condition, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
