"""A tab's run history and its exports, and settings restored from a shared link."""

import csv
import io
import json
from dataclasses import replace

import pytest

from mlp_demo.config import TrainConfig
from mlp_demo.server.jobs import JobSnapshot, Progress, TrainingJob
from mlp_demo.server.limits import Limits
from mlp_demo.server.runs import RunHistory, settings_table, to_csv, to_json


class DoneJob:
    def __init__(self, config, epochs=2, active=False):
        self.model_config, self.active, self.epochs = config, active, epochs

    def snapshot(self):
        return JobSnapshot(
            status="finished", progress=Progress(elapsed=3.0, step=10, total_steps=10),
            epochs=tuple({"epoch": e, "step": 5 * e, "samples_seen": 100 * e, "elapsed": 1.5 * e,
                          "train_loss": 1 / e, "train_acc": 0.9, "val_loss": 0.5, "val_acc": 0.8 + e / 100,
                          "test_loss": 0.5, "test_acc": 0.85} for e in range(1, self.epochs + 1)),
            loss_steps=(1, 2), loss=(2.0, 1.0), lr_steps=(1, 2), lr=(0.1, 0.1),
            kind="training", settings=self.model_config.to_dict())


def test_runs_are_numbered_and_the_oldest_unpinned_is_dropped():
    history = RunHistory(limit=3)
    runs = [history.add(DoneJob(TrainConfig(lr=0.001 * (i + 1))))[0] for i in range(3)]
    assert [r.name for r in runs] == ["Run 1", "Run 2", "Run 3"]
    runs[0].pinned = True
    run4, dropped = history.add(DoneJob(TrainConfig()))
    assert run4.name == "Run 4" and [r.name for r in dropped] == ["Run 2"]
    assert [r.name for r in history.runs] == ["Run 1", "Run 3", "Run 4"]
    history.rename(3, "  lr   0.003 ")
    assert history.get(3).name == "lr 0.003"
    with pytest.raises(ValueError):
        history.rename(4, "lr 0.003")


def test_a_training_run_is_never_dropped():
    history = RunHistory(limit=1)
    history.add(DoneJob(TrainConfig(), active=True))
    _, dropped = history.add(DoneJob(TrainConfig()))
    assert dropped == [] and len(history.runs) == 2


def test_settings_table_highlights_what_differs():
    history = RunHistory()
    a, _ = history.add(DoneJob(TrainConfig(lr=0.001)))
    b, _ = history.add(DoneJob(TrainConfig(lr=0.01, hidden=(64,))))
    rows, differ = settings_table([a, b])
    assert differ == ["hidden", "lr"]
    by = {r["setting"]: r for r in rows}
    assert by["lr"]["Run 1"] == "0.001" and by["hidden"]["Run 2"] == "64"
    assert by["final validation accuracy"]["Run 1"] == "82.00%" and by["training seconds"]["Run 2"] == "3.0"


def test_csv_has_one_row_per_epoch_per_run_and_json_everything():
    history = RunHistory()
    history.add(DoneJob(TrainConfig(), epochs=2))
    history.add(DoneJob(TrainConfig(epochs=3), epochs=3))
    rows = list(csv.DictReader(io.StringIO(to_csv(history.runs))))
    assert len(rows) == 5 and rows[0]["run"] == "Run 1" and rows[-1]["epoch"] == "3"
    assert rows[0]["kind"] == "training"
    assert rows[2]["val_acc"] == "0.81"
    data = json.loads(to_json(history.runs))
    assert [r["name"] for r in data["runs"]] == ["Run 1", "Run 2"]
    assert data["runs"][1]["settings"]["epochs"] == 3 and len(data["runs"][1]["epochs"]) == 3


def test_a_real_job_in_the_history(tiny_data, small_config):
    history = RunHistory()
    run, _ = history.add(TrainingJob(small_config, lambda: tiny_data).start())
    run.job.join(60)
    assert json.loads(to_json([run]))["runs"][0]["summary"]["test_acc"] > 0.5


class TeachJob(DoneJob):
    def snapshot(self):
        h = super().snapshot()
        return replace(h, kind="teaching", epochs=h.epochs[:1], settings={
            "steps": 150, "lr": 5e-4, "replay": 0.75, "batch_size": 64, "seed": 0})


def test_a_teaching_run_is_described_by_its_own_settings():
    history = RunHistory()
    train, _ = history.add(DoneJob(TrainConfig(hidden=(64,))))
    teach, _ = history.add(TeachJob(TrainConfig(hidden=(256,), epochs=60)))
    rows, differ = settings_table([train, teach])
    by = {r["setting"]: r for r in rows}
    assert by["teach steps"]["Run 2"] == "150" and by["teach steps"]["Run 1"] == "n/a"
    assert by["epochs"]["Run 2"] == "n/a"  # not the 60 epochs of the model it started from
    assert by["taught model"]["Run 2"] == "256"
    rows = list(csv.DictReader(io.StringIO(to_csv(history.runs))))
    assert [r["kind"] for r in rows] == ["training", "training", "teaching"]
    assert rows[-1]["teach steps"] == "150" and rows[-1]["epochs"] == "n/a"
    data = json.loads(to_json([teach]))["runs"][0]
    assert data["kind"] == "teaching" and data["x_axis"] == "step" and data["settings"]["teach steps"] == 150


def test_settings_from_a_link_are_checked_and_snapped():
    from mlp_demo.server.links import parse_query, to_query
    limits = Limits()
    applied, preset, ignored = parse_query(
        {"preset": "fast", "lr": "0.004", "hidden": "500-100", "batch_size": "300", "epochs": "7",
         "momentum": "0.95"}, limits)
    assert preset == "fast" and ignored == []
    assert applied == {"lr": 0.003, "hidden": (512, 128), "batch_size": 256, "epochs": 7, "momentum": 0.95}
    applied, preset, ignored = parse_query(
        {"preset": "nope", "lr": "-1", "epochs": "1e9", "optimizer": "<script>", "evil": "1",
         "hidden": "4096-4096-4096"}, limits)
    assert preset is None and applied == {} and len(ignored) == 6, ignored
    config = TrainConfig(hidden=(256, 64), lr=0.002)
    back, _, ignored = parse_query(to_query(config, "default"), limits)
    assert ignored == [] and TrainConfig(**{**TrainConfig().to_dict(), **back}) == config


def test_the_class_the_view_and_a_teacher_key_are_not_settings():
    from mlp_demo.server.links import parse_query
    applied, preset, ignored = parse_query(
        {"class": "K7QM4XR2P", "view": "board", "teacher": "secret", "lr": "0.01"}, Limits())
    assert applied == {"lr": 0.01} and preset is None and ignored == []  # never "ignored"
