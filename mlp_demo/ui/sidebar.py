"""The sidebar: every hyperparameter, its range taken from TrainConfig's metadata (the one
source of truth) and narrowed by the server's limits, and the query string that mirrors it
(a shared link's settings are applied on a session's first run). Values live in the widgets,
except those a class's lesson fixes: put back on every run, shown disabled or not at all."""

from __future__ import annotations

import streamlit as st

from mlp_demo.config import MAX_HIDDEN_LAYERS, PRESETS, TrainConfig, field_meta, field_names
from mlp_demo.server.lessons import Lesson
from mlp_demo.server.limits import Limits
from mlp_demo.server.links import options, parse_query, to_query
from mlp_demo.server.session import Session

PRESET_LABELS = {"default": "Default", "fast": "Fast: 98% in seconds",
                 "best": "Best accuracy: 99% in minutes"}


def hp(name: str) -> str:
    return f"hp_{name}"


def apply_config(config: TrainConfig) -> None:
    """Put a config's values into the sidebar widgets (a preset, or Reset)."""
    apply_values(config.to_dict())


def apply_values(values: dict) -> None:
    for key, value in widget_values(values).items():
        st.session_state[key] = value


def widget_values(values: dict) -> dict:
    """Settings -> the sidebar widgets' keys and values (the hidden layers are a count and widths)."""
    found = {}
    for name, value in values.items():
        if name == "hidden":
            found[hp("layers")] = len(value)
            found.update({hp(f"width_{i}"): width for i, width in enumerate(value)})
        else:
            found[hp(name)] = value
    return found


def on_preset() -> None:
    apply_config(PRESETS[st.session_state.preset])


def reset() -> None:
    st.session_state.preset = "default"
    apply_config(PRESETS["default"])


LOCKED = "Locked by your class's lesson."


def widget(kind, name: str, label: str, extra_help: str = "", lesson: Lesson = Lesson(), **kwargs):
    """A setting's widget; one the lesson hides is not drawn, one it locks is disabled."""
    if name in lesson.hide:
        return None
    if name in lesson.lock:
        kwargs["disabled"], extra_help = True, f"{extra_help} {LOCKED}".strip()
    help_text = field_meta(name)["help"] + (f" {extra_help}" if extra_help else "")
    return kind(label, key=hp(name), help=help_text, **kwargs)


def slider(name: str, label: str, step, extra_help: str = "", **kwargs):
    meta = field_meta(name)
    return widget(st.slider, name, label, extra_help, min_value=meta["low"],
                  max_value=meta["high"], step=step, **kwargs)


def apply_lesson(me: Session) -> tuple[Lesson, dict]:
    """Put what the class's lesson fixes into the widgets' state, before they are drawn: on
    every run, so neither a preset, a link nor a forged widget value moves it. Returns the
    lesson and the class's Default values."""
    lesson, defaults = me.membership.lesson()
    apply_values(lesson.fixed(defaults))
    return lesson, defaults


def sidebar(me: Session, limits: Limits, device_choices: list[str]) -> None:
    """Every hyperparameter, grouped. The title was drawn in the first paint (app.py)."""
    # Streamlit can drop a widget's state around reruns (seen in Chromium: selectboxes fell back
    # to their first option, sliders to their minimum when a rerun came during the page's first
    # run); a plain copy of the settings puts each back, else the Default preset's value.
    for key, value in me.link.settings.items():
        st.session_state.setdefault(key, value)
    for key, value in widget_values(PRESETS["default"].to_dict()).items():
        st.session_state.setdefault(key, value)
    lesson, defaults = apply_lesson(me)
    bar, server = st.sidebar, limits.help()
    if lesson:
        bar.info(f"Your class's lesson: {lesson.describe()}.", icon=":material/school:")
        for line in lesson.overrides(me.link.asked, defaults):
            bar.warning(line[0].upper() + line[1:] + ".")
    bar.selectbox("Preset", list(PRESETS), key="preset", on_change=on_preset,
                  format_func=PRESET_LABELS.get, help="Starting points; change anything after.")
    bar.button("Reset to defaults", on_click=reset)

    with bar.expander("Model", expanded=True):
        if "hidden" not in lesson.hide:
            layer_sliders(limits, server, locked="hidden" in lesson.lock)
        widget(st.selectbox, "activation", "Activation", options=field_meta("activation")["choices"],
               lesson=lesson)
        slider("dropout", "Dropout", 0.05, lesson=lesson)
    with bar.expander("Data", expanded=True):
        widget(st.toggle, "augment", "Augmentation", lesson=lesson)
        meta = field_meta("val_size")
        widget(st.number_input, "val_size", "Validation images", min_value=meta["low"],
               max_value=meta["high"], step=1000, lesson=lesson)
    with bar.expander("Optimization", expanded=True):
        widget(st.selectbox, "optimizer", "Optimizer", options=field_meta("optimizer")["choices"],
               lesson=lesson)
        widget(st.select_slider, "lr", "Learning rate (log scale)", options=options("lr", limits),
               format_func=lambda v: f"{v:g}", lesson=lesson)
        slider("momentum", "Momentum", 0.001, format="%.3f", lesson=lesson)
        widget(st.toggle, "nesterov", "Nesterov (SGD)", lesson=lesson)
        widget(st.select_slider, "weight_decay", "Weight decay",
               options=options("weight_decay", limits), format_func=lambda v: f"{v:g}", lesson=lesson)
        widget(st.select_slider, "batch_size", "Batch size", server,
               options=options("batch_size", limits), lesson=lesson)
        slider("epochs", "Epochs", 1, server, lesson=lesson)
        widget(st.selectbox, "scheduler", "LR scheduler", options=field_meta("scheduler")["choices"],
               lesson=lesson)
        slider("label_smoothing", "Label smoothing", 0.05, lesson=lesson)
        meta = field_meta("seed")
        widget(st.number_input, "seed", "Seed", min_value=meta["low"], max_value=meta["high"], step=1,
               lesson=lesson)
    with bar.expander("Device", expanded=True):
        widget(st.radio, "device", "Train on", options=device_choices, horizontal=True)
    me.link.settings = {k: st.session_state[k] for k in list(st.session_state.keys())
                        if k.startswith("hp_")}


def layer_sliders(limits: Limits, server: str, locked: bool) -> None:
    note = f" {LOCKED}" if locked else ""
    layers = st.slider("Hidden layers", 0, MAX_HIDDEN_LAYERS, key=hp("layers"), disabled=locked,
                       help=f"How many hidden layers; 0 gives a linear classifier. {server}{note}")
    for i in range(layers):
        st.session_state.setdefault(hp(f"width_{i}"), 128)
        st.select_slider(f"Neurons in layer {i + 1}", options("width", limits), key=hp(f"width_{i}"),
                         disabled=locked, help=f"{field_meta('hidden')['help']} {server}{note}")


def config_from_state() -> TrainConfig:
    """The sidebar's values as a TrainConfig (not yet validated)."""
    values = {name: st.session_state[hp(name)] for name in field_names() if name != "hidden"}
    layers = st.session_state[hp("layers")]
    values["hidden"] = tuple(st.session_state[hp(f"width_{i}")] for i in range(layers))
    return TrainConfig(**values)


def config_problems(limits: Limits) -> str | None:
    """Why the sidebar's settings cannot be trained here, or None."""
    try:
        config = config_from_state().validate()
    except ValueError as e:
        return str(e)
    return "; ".join(limits.problems(config)) or None


def restore_from_link(me: Session, limits: Limits, device_choices: list[str]) -> None:
    """On a session's first run: apply the link's settings (before the sidebar is drawn)."""
    if me.link.read:
        return
    me.link.read = True
    query = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if not query:
        return
    applied, preset, ignored = parse_query(query, limits)
    if applied.get("device") not in (None, *device_choices):
        ignored.append(f"device={applied.pop('device')!r} (not on this server)")
    if preset:
        st.session_state.preset = preset
    apply_config(PRESETS[preset or "default"].replace(**applied))
    me.link.asked = applied
    if ignored:
        me.link.notice = "Ignored in the link: " + "; ".join(ignored) + "."


def link_notice(me: Session) -> None:
    """What a shared link asked for that could not be applied, at the top of the sidebar."""
    if me.link.notice:
        st.sidebar.warning(me.link.notice)


def keep_link_current() -> None:
    """Write the sidebar's settings into the query string as they change."""
    try:
        config = config_from_state()
    except (KeyError, TypeError):
        return
    wanted = to_query(config, st.session_state.get("preset", "default"))
    for key in ("class", "view"):  # not settings, but they stay in the address bar
        value = st.query_params.get(key)
        if value is not None and len(value) <= 40:
            wanted[key] = value
    if {k: st.query_params.get(k) for k in st.query_params.keys()} != wanted:
        st.query_params.from_dict(wanted)
