"""Share settings by link: every hyperparameter and the preset live in the page's query string,
so a teacher can hand out "try this" links. What a link says is untrusted input: each value is
checked by TrainConfig and the server's limits, snapped to the sidebar's options, and anything
else ignored with a notice."""

from __future__ import annotations

import urllib.parse

import streamlit as st

from mlp_demo.config import MAX_HIDDEN_LAYERS, PRESETS, TrainConfig, field_meta, field_names
from mlp_demo.limits import Limits

from .sidebar import apply_config, config_from_state, options

MAX_QUERY_CHARS = 2000  # a link with every setting is about 300 characters
SELECT_SLIDERS = {"lr": "lr", "weight_decay": "weight_decay", "batch_size": "batch_size"}


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


def restore_from_link(limits: Limits, device_choices: list[str]) -> None:
    """On a session's first run: apply the link's settings (before the sidebar is drawn)."""
    if st.session_state.get("link_read"):
        return
    st.session_state.link_read = True
    query = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if not query:
        return
    applied, preset, ignored = parse_query(query, limits)
    if applied.get("device") not in (None, *device_choices):
        ignored.append(f"device={applied.pop('device')!r} (not on this server)")
    if preset:
        st.session_state.preset = preset
    apply_config(PRESETS[preset or "default"].replace(**applied))
    if ignored:
        st.session_state.link_notice = "Ignored in the link: " + "; ".join(ignored) + "."


def link_notice() -> None:
    """What a shared link asked for that could not be applied, at the top of the sidebar."""
    notice = st.session_state.get("link_notice")
    if notice:
        st.sidebar.warning(notice)


def keep_link_current() -> None:
    """Write the sidebar's settings into the query string as they change."""
    try:
        config = config_from_state()
    except (KeyError, TypeError):
        return
    wanted = to_query(config, st.session_state.get("preset", "default"))
    if {k: st.query_params.get(k) for k in st.query_params.keys()} != wanted:
        st.query_params.from_dict(wanted)


def share_section() -> None:
    st.subheader("Share settings by link")
    base = str(st.context.url or "").split("?")[0]
    query = urllib.parse.urlencode({k: st.query_params.get(k) for k in st.query_params.keys()})
    st.caption("The address bar holds every setting in the sidebar. Copy this link to hand out "
               "\"try this\" settings; inside an embedded page (such as a Hugging Face Space), "
               "use this one, as the address bar shows the outer page.")
    st.code(f"{base}?{query}", language=None)

