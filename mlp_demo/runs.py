"""A tab's run history: every run kept with its settings, curves, metrics and CPU weights,
named Run 1, Run 2, ...; a comparison table and CSV/JSON export. Plain data, no streamlit.

A run is a TrainingJob (which keeps its history and CPU weights once it ends) with a name.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field

from .config import TrainConfig, field_names

EPOCH_COLUMNS = ("epoch", "step", "samples_seen", "elapsed", "train_loss", "train_acc",
                 "val_loss", "val_acc", "test_loss", "test_acc")


def max_runs() -> int:
    """Runs kept per tab (MLP_DEMO_MAX_RUNS); each holds at most the server's parameter cap."""
    return max(1, int(os.environ.get("MLP_DEMO_MAX_RUNS", "8")))


@dataclass
class Run:
    number: int
    job: object  # TrainingJob, or anything with .config, .snapshot(), .active, .model()
    name: str = ""
    pinned: bool = False

    def __post_init__(self):
        self.name = self.name or f"Run {self.number}"

    @property
    def config(self) -> TrainConfig:
        return self.job.config


@dataclass
class RunHistory:
    limit: int = field(default_factory=max_runs)
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
        name = " ".join(str(name).split())[:40]
        if not name:
            raise ValueError("a run's name cannot be empty")
        if any(r.name == name and r.number != number for r in self.runs):
            raise ValueError(f"another run is already called {name!r}")
        self.get(number).name = name

    @property
    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None


def summary(run: Run) -> dict:
    """Final numbers of a run: validation and test accuracy, training time, status."""
    h = run.job.snapshot()
    last = h["epochs"][-1] if h["epochs"] else {}
    return {"status": h["status"], "val_acc": last.get("val_acc"), "test_acc": last.get("test_acc"),
            "seconds": h["progress"]["elapsed"], "epochs_done": len(h["epochs"])}


def settings_table(runs: list[Run]) -> tuple[list[dict], list[str]]:
    """One row per setting (and the final numbers), one column per run; and the names of the
    settings that differ between the runs."""
    configs = [r.config.to_dict() for r in runs]
    rows, differ = [], []
    for name in field_names():
        values = [_show(c[name]) for c in configs]
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
    """One row per epoch per run: the run, its settings, then the epoch's numbers."""
    names = field_names()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", *names, *EPOCH_COLUMNS])
    for run in runs:
        config = run.config.to_dict()
        settings = [_show(config[n]) for n in names]
        for epoch in run.job.snapshot()["epochs"]:
            writer.writerow([run.name, *settings, *(epoch.get(c) for c in EPOCH_COLUMNS)])
    return out.getvalue()


def to_json(runs: list[Run]) -> str:
    """Each run's settings, per-step and per-epoch curves and final metrics."""
    def one(run):
        h = run.job.snapshot()
        return {"name": run.name, "settings": run.config.to_dict(), "status": h["status"],
                "summary": summary(run), "epochs": h["epochs"],
                "steps": {"step": h["loss_steps"], "loss": h["loss"], "lr_step": h["lr_steps"],
                          "lr": h["lr"]}}
    return json.dumps({"runs": [one(r) for r in runs]}, indent=1)
