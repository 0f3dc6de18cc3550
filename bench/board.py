"""A class board under a full lecture: python -m bench.board [--students 60] [--runs 300]

Puts a class of N students and R runs (varied settings, 100-point curves) into a database
(a fresh SQLite file, or --url) and times, in this process, what the board's fragment does
every 3 s: read the board from the database, build its leaderboard and groups (as the Arrow
tables st.dataframe sends) and its scatter and curves figures (as JSON). Median of --repeats,
for a board unchanged since the last refresh and for one that changed (a run came in). A
baseline in the same process: the same work for a class with one run.

Also: scoring a finished run (the shipped model) on a class's handwriting set of --drawings
drawings, read afresh from the database as when the set has just changed, against a set of 10.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from mlp_demo.server.settings import Settings


def fill(classes, students: int, runs: int, seed: int = 0) -> tuple[str, str]:
    from mlp_demo.config import TrainConfig

    rng = random.Random(seed)
    new = classes.create()
    visitors = [f"visitor-{i}" for i in range(students)]
    for i, visitor in enumerate(visitors):
        classes.join(new.code, visitor, f"Student {i}")
    for i in range(runs):
        settings = TrainConfig(lr=rng.choice([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
                               hidden=(rng.choice([32, 128, 512]),) * rng.choice([1, 2]),
                               optimizer=rng.choice(["sgd", "adam", "adamw"]),
                               batch_size=rng.choice([32, 64, 256]), epochs=5).to_dict()
        acc = 0.9 + rng.random() * 0.09
        classes.post(new.code, visitors[i % students], kind="training", settings=settings,
                     val_acc=acc - 0.005, test_acc=acc, seconds=rng.uniform(5, 60), status="finished",
                     curves={"val_acc": [[e, acc - 0.02 / e] for e in range(1, 6)],
                             "test_acc": [[e, acc - 0.02 / e] for e in range(1, 6)],
                             "loss": [[s / 20, 2 / (s + 1)] for s in range(100)]})
    return new.code, new.teacher_key


def refresh_once(classes, code: str) -> None:
    """What the board's fragment computes on the server for one refresh."""
    import pandas
    import pyarrow

    from mlp_demo.plots import board_curves, board_scatter
    from mlp_demo.server.board import LOG_SETTINGS, group_rows, leaderboard_rows, setting_value
    from mlp_demo.server.classes import Board

    board = classes.board(code)
    shown = Board(board.code, board.students, board.locked, board.defaults,
                  [e for e in board.entries if not e.hidden])
    points = [{"x": setting_value(e, "lr"), "y": e.test_acc, "colour": setting_value(e, "optimizer"),
               "label": f"{e.name} (#{e.id})"} for e in shown.entries if e.test_acc is not None]
    board_scatter(points, "lr", "optimizer", "lr" in LOG_SETTINGS).to_json()
    for rows in (leaderboard_rows(shown), group_rows(shown)):  # as st.dataframe sends them
        pyarrow.Table.from_pandas(pandas.DataFrame(rows))
    board_curves([(e.name, e.curves.get("val_acc", [])) for e in shown.entries]).to_json()


def fill_handwriting(classes, drawings: int):
    """A class whose students gave `drawings` drawings (MNIST's test digits when MNIST_ROOT is
    set, else random ones: the time does not depend on what they show)."""
    import numpy as np

    from mlp_demo.data import load_mnist

    try:
        _, _, images, labels = load_mnist(Settings.from_env().mnist_root, download=False)
        images, labels = images[:drawings].numpy(), labels[:drawings].tolist()
    except Exception:  # noqa: BLE001 - no MNIST here: any digits will do
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (drawings, 28, 28), np.uint8)
        labels = rng.integers(0, 10, drawings).tolist()
    new = classes.create()
    per = classes.limits.class_handwriting_per_student
    for start in range(0, drawings, per):
        visitor = f"writer-{start}"
        classes.join(new.code, visitor, visitor)
        classes.contribute(new.code, visitor, [i.tobytes() for i in images[start:start + per]],
                           labels[start:start + per])

    def touch():  # a student joins: the class changes, so the next score reads the set anew
        classes.join(new.code, f"late-{time.perf_counter()}", "late")
    return new.code, touch


def score_ms(classes, code: str, touch, model, repeats: int) -> float:
    from mlp_demo.server.membership import handwriting_accuracy

    times = []
    for _ in range(repeats):
        touch()
        start = time.perf_counter()
        handwriting_accuracy(model, classes.handwriting_set(code))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def median_ms(classes, code: str, repeats: int, change=None) -> float:
    times = []
    for _ in range(repeats):
        if change:
            change()
        start = time.perf_counter()
        refresh_once(classes, code)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--url", default=None, help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--drawings", type=int, default=2000, help="the class's handwriting set")
    args = parser.parse_args(argv)

    from mlp_demo.server import db
    from mlp_demo.server.classes import Classes
    from mlp_demo.server.limits import Limits

    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'board.sqlite3'}"
        engine = db.connect(url)
        classes = Classes(engine, Limits(class_max_runs=10**6, student_max_runs=10**6))
        start = time.perf_counter()
        code, teacher_key = fill(classes, args.students, args.runs)
        fill_s = time.perf_counter() - start
        small, _ = fill(classes, 1, 1, seed=1)
        refresh_once(classes, code)  # imports and first-use costs out of the timings
        baseline = median_ms(classes, small, args.repeats)
        full = median_ms(classes, code, args.repeats)
        board = classes.board(code, include_hidden=True)
        hidden = [False]

        def a_run_changes():  # the teacher hides and shows an entry: the board is read anew
            hidden[0] = not hidden[0]
            classes.hide(code, teacher_key, board.entries[0].id, hidden[0])
        changed = median_ms(classes, code, args.repeats, change=a_run_changes)

        from mlp_demo.checkpoints import DEFAULT_CHECKPOINT, load
        model = load(DEFAULT_CHECKPOINT)[0].eval()
        classes.limits = Limits(class_handwriting_max=10**6, class_handwriting_per_student=100,
                                max_classes=10**3, class_max_students=10**6)
        big, touch_big = fill_handwriting(classes, args.drawings)
        ten, touch_ten = fill_handwriting(classes, 10)
        score_ms(classes, ten, touch_ten, model, 2)  # first-use costs out of the timings
        scored_ten = score_ms(classes, ten, touch_ten, model, args.repeats)
        scored = score_ms(classes, big, touch_big, model, args.repeats)
        engine.dispose()
    result = {"database": db.shown(url).split(":", 1)[0], "students": args.students, "runs": args.runs,
              "fill_s": round(fill_s, 2), "refresh_ms_one_run": round(baseline, 1),
              "refresh_ms": round(full, 1), "refresh_ms_changed": round(changed, 1),
              "ratio": round(full / baseline, 2), "drawings": args.drawings,
              "score_ms": round(scored, 1), "score_ms_10_drawings": round(scored_ten, 1)}
    print(f"| board refresh (server side) | median of {args.repeats} |")
    print("|---|---|")
    print(f"| 1 student, 1 run (baseline) | {baseline:.1f} ms |")
    print(f"| {args.students} students, {args.runs} runs, unchanged | {full:.1f} ms "
          f"({full / baseline:.1f}x) |")
    print(f"| {args.students} students, {args.runs} runs, changed since the last refresh | {changed:.1f} ms "
          f"({changed / baseline:.1f}x) |")
    print(f"| putting them in ({args.runs} transactions) | {fill_s:.2f} s |")
    print(f"| scoring a finished run on the class's handwriting, 10 drawings (baseline) | "
          f"{scored_ten:.1f} ms |")
    print(f"| the same on {args.drawings:,} drawings, read afresh | {scored:.1f} ms "
          f"({scored / scored_ten:.1f}x) |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
