"""A lesson: what a class fixes for its students, so a room varies one thing together
("everyone: change only the learning rate"), as TensorFlow Playground's `*_hide` parameters do.

A teacher *locks* settings at values (the students see them, disabled) and *hides* settings
(the students do not see them; each keeps its lock, else the class's Default value). The
values a teacher types are read by the settings link's strict reader. The server refuses a
run that differs from what the lesson fixes, whatever the browser sent. Pure, no streamlit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..config import TrainConfig, field_names
from .limits import Limits
from .links import parse_query, to_query

# Every setting but the device, which is the server's to offer.
LESSON_SETTINGS = tuple(name for name in field_names() if name != "device")


@dataclass(frozen=True)
class Lesson:
    lock: dict = field(default_factory=dict)  # setting -> value
    hide: tuple[str, ...] = ()
    problem: str | None = None  # a stored lesson that failed the reader: the teacher is told

    def __bool__(self) -> bool:
        return bool(self.lock or self.hide)

    def fixed(self, defaults: dict) -> dict:
        """Every setting the lesson fixes, and its value: the locks, and each hidden setting
        at the class's Default value."""
        return {**{name: defaults[name] for name in self.hide if name in defaults}, **self.lock}

    def refusal(self, config: TrainConfig, defaults: dict) -> str | None:
        """Why a run with these settings is not part of the lesson, or None."""
        values = config.to_dict()
        for name, wanted in self.fixed(defaults).items():
            if not same(values.get(name), wanted):
                how = "hides" if name in self.hide and name not in self.lock else "locks"
                return (f"your class's lesson {how} {label(name)} at {shown(name, wanted)} (the "
                        f"teacher's choice, so that the class compares one change); this run has "
                        f"{shown(name, values.get(name))}. Set it back, or leave the class.")
        return None

    def overrides(self, asked: dict, defaults: dict) -> list[str]:
        """What the lesson replaces among the settings a link asked for, one line each."""
        return [f"your class's lesson fixes {label(name)} at {shown(name, wanted)}, so the link's "
                f"{shown(name, asked[name])} is not used"
                for name, wanted in self.fixed(defaults).items()
                if name in asked and not same(asked[name], wanted)]

    def describe(self) -> str:
        parts = [f"{label(n)} locked at {shown(n, v)}" for n, v in self.lock.items()]
        parts += [f"{label(n)} hidden" for n in self.hide if n not in self.lock]
        return "; ".join(parts)

    def to_json(self) -> str:
        lock = {n: list(v) if isinstance(v, tuple) else v for n, v in self.lock.items()}
        return json.dumps({"lock": lock, "hide": list(self.hide)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, limits: Limits) -> Lesson:
        """A lesson as stored, read as strictly as the teacher's form (read_lesson): what the
        database holds is input too. One that fails is no lesson, with `problem` saying why."""
        try:
            data = json.loads(text or "{}")
            if not isinstance(data, dict) or not isinstance(data.get("lock", {}), dict):
                raise ValueError("not a lesson")
            typed = {name: link_text(value) for name, value in data.get("lock", {}).items()}
            return read_lesson(typed, data.get("hide", []), limits)
        except (ValueError, TypeError, AttributeError, RecursionError) as e:
            return cls(problem=f"the class's stored lesson could not be read ({str(e)[:200]}), so "
                               "the class runs without one: save the lesson again")


def link_text(value) -> str:
    """A stored value as the lesson form would have it typed: 128-64, true, 0.001."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and all(type(v) is int for v in value):
        return "-".join(map(str, value))
    if type(value) in (int, float, str):
        return str(value)
    raise ValueError(f"{str(value)[:30]!r} is not a setting's value")


def read_lesson(lock: dict, hide, limits: Limits) -> Lesson:
    """A teacher's lesson from untrusted text: {setting: value as typed} and the settings to
    hide. ValueError naming what is wrong."""
    if not isinstance(lock, dict) or not isinstance(hide, (list, tuple)):
        raise ValueError("a lesson is settings to lock (with values) and settings to hide")
    unknown = [str(n)[:30] for n in [*lock, *hide] if n not in LESSON_SETTINGS]
    if unknown:
        raise ValueError(f"not a setting a lesson can fix: {', '.join(unknown)}")
    texts = {name: str(value).strip()[:100] for name, value in lock.items()}
    applied, _, ignored = parse_query(texts, limits)
    if ignored:
        raise ValueError("; ".join(ignored))
    return Lesson({name: applied[name] for name in LESSON_SETTINGS if name in applied},
                  tuple(name for name in LESSON_SETTINGS if name in hide))


def as_text(name: str, value) -> str:
    """A value as the lesson form (and a settings link) writes it: 0.001, 128-64, true."""
    config = TrainConfig().replace(**{name: tuple(value) if name == "hidden" else value})
    return to_query(config, "default")[name]


def same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
    return a == b


def label(name: str) -> str:
    names = {"lr": "the learning rate", "hidden": "the hidden layers"}
    return names.get(name, f"the {name.replace('_', ' ')}")


def shown(name: str, value) -> str:
    if name == "hidden" and isinstance(value, (list, tuple)):
        return " x ".join(map(str, value)) + " neurons" if value else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
