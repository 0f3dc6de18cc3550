"""The sidebar's choices and the settings link: every hyperparameter and the preset as a query
string, so a teacher can hand out "try this" links. What a link says is untrusted input: each
value is checked by TrainConfig and the server's limits, snapped to the sidebar's options, and
anything else ignored with a reason. Pure functions, no streamlit."""

from __future__ import annotations

import math

from ..config import MAX_HIDDEN_LAYERS, PRESETS, TrainConfig, field_meta, field_names
from .limits import Limits

WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
BATCH_SIZES = [2**k for k in range(14)]
WEIGHT_DECAYS = [0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 5e-2, 0.1]


def within(name: str, options: list, low=None) -> list:
    """The options inside a field's range (and above a server's lower limit)."""
    meta = field_meta(name)
    low = meta["low"] if low is None else max(low, meta["low"])
    return [o for o in options if low <= o <= meta["high"]]


def log_steps(name: str) -> list[float]:
    """1, 2, 3, 5 x each power of ten across a log-scaled field's range."""
    meta = field_meta(name)
    exponents = range(math.floor(math.log10(meta["low"])), math.ceil(math.log10(meta["high"])) + 1)
    return within(name, sorted({float(f"{m}e{e}") for e in exponents for m in (1, 2, 3, 5)}))


def options(name: str, limits: Limits) -> list:
    """The choices a select slider offers for a field on this server."""
    return {"lr": lambda: log_steps("lr"),
            "weight_decay": lambda: within("weight_decay", WEIGHT_DECAYS),
            "batch_size": lambda: within("batch_size", BATCH_SIZES, limits.min_batch_size),
            "width": lambda: within("hidden", WIDTHS)}[name]()


MAX_QUERY_CHARS = 2000  # a link with every setting is about 300 characters
# In the query string but not settings: the class to join, the board view, a teacher's key.
NOT_SETTINGS = ("class", "view", "teacher")
SELECT_SLIDERS = ("lr", "weight_decay", "batch_size")


def to_query(config: TrainConfig, preset: str) -> dict[str, str]:
    values = {"preset": preset}
    for name, value in config.to_dict().items():
        values[name] = ("-".join(map(str, value)) if name == "hidden"
                        else str(value).lower() if isinstance(value, bool) else f"{value:g}"
                        if isinstance(value, float) else str(value))
    return values


def nearest(value, choices):
    return min(choices, key=lambda c: abs(c - value))


def parse_query(query: dict[str, str], limits: Limits) -> tuple[dict, str | None, list[str]]:
    """(settings to apply, preset or None, what was ignored and why) from untrusted text."""
    query = {k: v for k, v in query.items() if k not in NOT_SETTINGS}
    if sum(len(k) + len(v) for k, v in query.items()) > MAX_QUERY_CHARS:
        return {}, None, ["the link is too long"]
    applied, ignored = {}, []
    preset = query.get("preset")
    if preset is not None and preset not in PRESETS:
        ignored.append(f"preset={preset[:30]!r}")
        preset = None
    base = PRESETS[preset or "default"].to_dict()
    for name in field_names():
        if name not in query:
            continue
        raw = query[name]
        try:
            value = parse_value(name, raw, base[name])
            TrainConfig.from_dict({**base, name: value})  # in range, by the one source of truth
            applied[name] = snap(name, value, limits)
        except (ValueError, TypeError) as e:
            ignored.append(f"{name}={raw[:30]!r} ({e})")
    unknown = sorted(set(query) - set(field_names()) - {"preset"})
    ignored += [f"{k[:30]!r} (not a setting)" for k in unknown]
    config = TrainConfig.from_dict({**base, **applied}) if applied else None
    if config is not None:
        for problem in limits.problems(config):
            ignored.append(problem)
            if "parameters" in problem:
                applied.pop("hidden", None)
    return applied, preset, ignored


def parse_value(name: str, raw: str, default):
    """Text -> a value of the field's type (range checks are TrainConfig's)."""
    if name == "hidden":
        widths = [int(w) for w in raw.split("-") if w] if raw.strip() else []
        if len(widths) > MAX_HIDDEN_LAYERS:
            raise ValueError(f"at most {MAX_HIDDEN_LAYERS} layers")
        return tuple(widths)
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false"):
            raise ValueError("true or false")
        return raw.lower() == "true"
    if field_meta(name)["choices"] is not None:
        return raw
    return int(raw) if isinstance(default, int) else float(raw)


def snap(name: str, value, limits: Limits):
    """A valid value moved to the nearest one the sidebar offers."""
    if name == "hidden":
        return tuple(nearest(w, options("width", limits)) for w in value)
    if name in SELECT_SLIDERS:
        return nearest(value, options(name, limits))
    return round(value, 3) if isinstance(value, float) else value
