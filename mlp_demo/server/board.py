"""What a class board shows, as plain data: the leaderboard's and the groups' rows, the scatter's
points, the counts line. The page (ui/board.py), the CLI and bench/board.py draw these; nothing
here imports streamlit. Written for a projector: words, not setting keys; a dash, not "None".
"""

from __future__ import annotations

import io

import segno

from .classes import Board, Entry
from .lessons import label

SCATTER_SETTINGS = ("lr", "width", "depth", "batch_size", "optimizer", "epochs", "weight_decay",
                    "dropout", "activation", "scheduler", "augment", "momentum",
                    "label_smoothing", "seconds")
LOG_SETTINGS = {"lr", "width", "batch_size", "weight_decay", "seconds"}
NONE_SHOWN = "–"  # a cell with no value: a projector's back row reads "None" as a result


def setting_name(name: str) -> str:
    """A setting as the room says it: "learning rate", not "lr"."""
    return {"width": "width (first layer)", "depth": "hidden layers", "seconds": "seconds",
            "val_size": "validation images"}.get(name) or label(name).removeprefix("the ")


def setting_value(entry: Entry, name: str):
    """A setting of an entry for the scatter: width and depth come from the hidden layers."""
    hidden = entry.settings.get("hidden") or []
    if name == "width":
        return hidden[0] if hidden else 0
    if name == "depth":
        return len(hidden)
    if name == "seconds":
        return entry.seconds
    return entry.settings.get(name)


def baseline(board: Board) -> dict:
    """What a run that changed nothing has: the class's Default with its lesson applied (a
    setting the teacher locked is the class's choice, not any student's change)."""
    return {**board.defaults, **board.lesson.fixed(board.defaults)}


def changed_from(base: dict, entry: Entry) -> tuple[str, ...]:
    """The settings a training entry changed from the class's baseline."""
    if entry.kind != "training":
        return ("teaching",)
    ignore = {"seed", "device"}
    return tuple(sorted(k for k, v in entry.settings.items()
                        if k not in ignore and k in base and _same(base[k]) != _same(v)))


def _same(value):
    return tuple(value) if isinstance(value, list) else value


def groups(board: Board) -> dict[tuple[str, ...], list[Entry]]:
    """Entries grouped by what they changed from the baseline, the most common change first."""
    base = baseline(board)
    found: dict[tuple[str, ...], list[Entry]] = {}
    for entry in board.entries:
        found.setdefault(changed_from(base, entry), []).append(entry)
    return dict(sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def leaderboard(board: Board, include_teaching: bool = True) -> list[Entry]:
    """Best test accuracy first; runs without one last."""
    shown = [e for e in board.entries if include_teaching or e.kind == "training"]
    return sorted(shown, key=lambda e: (e.test_acc is None, -(e.test_acc or 0), e.id))


def change_text(change: tuple[str, ...], board: Board) -> str:
    if not change:
        return "nothing (the lesson's settings)" if board.lesson else "nothing (Default)"
    return ", ".join(setting_name(name) for name in change)


def percent(value: float | None) -> str:
    return NONE_SHOWN if value is None else f"{value:.2%}"


def leaderboard_rows(board: Board) -> list[dict]:
    """One row per run, best first. Text cells: what a projector shows is what is read."""
    changed = {e.id: change_text(change, board)
               for change, members in groups(board).items() for e in members}
    return [{"rank": rank, "name": e.name, "test accuracy": percent(e.test_acc),
             "class handwriting": (NONE_SHOWN if e.handwriting_acc is None else
                                   f"{e.handwriting_acc:.0%} of {e.handwriting_n}"),
             "validation accuracy": percent(e.val_acc), "time": f"{e.seconds:.1f} s",
             "changed": changed[e.id], "status": e.status, "run": e.id}
            for rank, e in enumerate(leaderboard(board), start=1)]


def group_rows(board: Board) -> list[dict]:
    rows = []
    for change, members in groups(board).items():
        best = max((e.test_acc for e in members if e.test_acc is not None), default=None)
        tried = "; ".join(f"{setting_name(name)}: "
                          + ", ".join(sorted({_show(setting_value(e, name)) for e in members}))
                          for name in change if name != "teaching")
        rows.append({"changed": change_text(change, board), "runs": len(members),
                     "best test accuracy": percent(best), "values tried": tried[:200] or NONE_SHOWN})
    return rows


def scatter_points(board: Board, x: str, colour: str, teaching: bool) -> list[dict]:
    return [{"x": setting_value(e, x), "y": e.test_acc, "colour": setting_value(e, colour),
             "label": f"{e.name} (#{e.id})"}
            for e in board.entries if (e.kind == "training" or teaching)
            and e.test_acc is not None and setting_value(e, x) is not None]


def handwriting_points(board: Board) -> list[dict]:
    return [{"x": e.test_acc, "y": e.handwriting_acc, "label": f"{e.name} (#{e.id})",
             "n": e.handwriting_n} for e in board.entries
            if e.test_acc is not None and e.handwriting_acc is not None]


def counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def counts_line(board: Board) -> str:
    return (f"{counted(len(board.entries), 'run')} in · {counted(board.students, 'student')} · "
            f"{counted(board.handwriting_n, 'drawing')} in the class's handwriting")


def join_qr_png(url: str) -> bytes:
    """The join link as a QR code, for the projector and the teacher's card."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=8, border=2)
    return out.getvalue()


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return NONE_SHOWN if value is None else str(value)
