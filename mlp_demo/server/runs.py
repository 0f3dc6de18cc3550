"""A visitor's run history: every run kept with its settings, curves, metrics and CPU weights,
named Run 1, Run 2, ...; a comparison table and CSV/JSON export. Plain data, no streamlit.

A run is a Job (jobs.py: training or teaching) with a name; it reads the job only through
the Job protocol.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

EPOCH_COLUMNS = ("epoch", "step", "samples_seen", "elapsed", "train_loss", "train_acc",
                 "val_loss", "val_acc", "test_loss", "test_acc")
MAX_NAME = 40


@dataclass(eq=False)
class Run:
    number: int
    job: object  # a jobs.Job
    name: str = ""
    pinned: bool = False
    _final: object = field(default=None, repr=False)  # the weights once the job has ended

    def __post_init__(self):
        self.name = self.name or f"Run {self.number}"

    def model(self):
        """The run's weights: a fresh copy while it runs, one read-only copy once it ended;
        None before its first step."""
        if self.job.active:
            return self.job.model()
        if self._final is None:
            model = self.job.model()
            self._final = model.requires_grad_(False).eval() if model is not None else None
        return self._final

    @property
    def settings(self) -> dict:
        """The settings the run used: a training run's TrainConfig, a teaching run's
        TeachConfig (with the architecture it taught), as plain values."""
        h = self.job.snapshot()
        settings = h.settings
        if h.kind == "teaching":
            hidden = self.job.model_config.hidden
            return {"taught model": " x ".join(map(str, hidden)) or "none",
                    **{f"teach {k}": v for k, v in settings.items()}}
        return settings


@dataclass
class RunHistory:
    limit: int = 8  # Limits.max_runs (MLP_DEMO_MAX_RUNS)
    runs: list[Run] = field(default_factory=list)
    counter: int = 0

    def add(self, job) -> tuple[Run, list[Run]]:
        """Keep a new run; returns it and the runs dropped to stay within the limit (the
        oldest that are neither pinned nor still training)."""
        self.counter += 1
        run = Run(self.counter, job)
        self.runs.append(run)
        dropped = []
        while len(self.runs) > self.limit:
            victim = next((r for r in self.runs if not r.pinned and not r.job.active and r is not run),
                          None)
            if victim is None:
                break
            self.runs.remove(victim)
            dropped.append(victim)
        return run, dropped

    def get(self, number: int) -> Run | None:
        return next((r for r in self.runs if r.number == number), None)

    def rename(self, number: int, name: str) -> None:
        name = " ".join(str(name).split())[:MAX_NAME]
        if not name:
            raise ValueError("a run's name cannot be empty")
        if any(r.name == name and r.number != number for r in self.runs):
            raise ValueError(f"another run is already called {name!r}")
        run = self.get(number)
        if run is None:
            raise ValueError("that run is no longer kept")
        run.name = name

    @property
    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None


def summary(run: Run) -> dict:
    """Final numbers of a run: validation and test accuracy, training time, status."""
    h = run.job.snapshot()
    last = h.epochs[-1] if h.epochs else {}
    return {"status": h.status, "val_acc": last.get("val_acc"), "test_acc": last.get("test_acc"),
            "seconds": h.seconds, "epochs_done": len(h.epochs)}


def settings_table(runs: list[Run]) -> tuple[list[dict], list[str]]:
    """One row per setting (and the final numbers), one column per run; and the names of the
    settings that differ between the runs. A setting a run does not have (a teaching run has
    no epochs) reads n/a."""
    settings = [r.settings for r in runs]
    names = list(dict.fromkeys(name for s in settings for name in s))
    rows, differ = [], []
    for name in names:
        values = [_show(s.get(name)) for s in settings]
        rows.append({"setting": name, **{r.name: v for r, v in zip(runs, values)}})
        if len(set(values)) > 1:
            differ.append(name)
    for key, label in (("val_acc", "final validation accuracy"), ("test_acc", "final test accuracy"),
                       ("seconds", "training seconds"), ("status", "status")):
        values = [summary(r)[key] for r in runs]
        rows.append({"setting": label, **{r.name: _show(v, key) for r, v in zip(runs, values)}})
    return rows, differ


def _show(value, key: str = "") -> str:
    if value is None:
        return "n/a"
    if key.endswith("acc"):
        return f"{value:.2%}"
    if key == "seconds":
        return f"{value:.1f}"
    if isinstance(value, list):
        return " x ".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_csv(runs: list[Run]) -> str:
    """One row per epoch per run (a teaching run's one row is its end): the run, its kind, its
    settings (n/a where it has none), then the epoch's numbers."""
    settings = [r.settings for r in runs]
    names = list(dict.fromkeys(name for s in settings for name in s))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", "kind", *names, *EPOCH_COLUMNS])
    for run, values in zip(runs, settings):
        h = run.job.snapshot()
        for epoch in h.epochs:
            writer.writerow([run.name, h.kind, *(_show(values.get(n)) for n in names),
                             *(epoch.get(c) for c in EPOCH_COLUMNS)])
    return out.getvalue()


def to_json(runs: list[Run]) -> str:
    """Each run's kind, settings, per-step and per-epoch curves and final metrics."""
    def one(run):
        h = run.job.snapshot()
        return {"name": run.name, "kind": h.kind, "settings": run.settings,
                "status": h.status, "summary": summary(run), "x_axis": h.x_axis,
                "epochs": h.epochs,
                "steps": {"step": h.loss_steps, "loss": h.loss, "lr_step": h.lr_steps,
                          "lr": h.lr}}
    return json.dumps({"runs": [one(r) for r in runs]}, indent=1)
