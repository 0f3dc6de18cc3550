"""Compare runs: this tab's runs overlaid, their settings side by side, export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mlp_demo.plots import X_AXES, comparison_figure
from mlp_demo.server.runs import settings_table, to_csv, to_json
from mlp_demo.server.session import Session

from .server import LIVE_VIEWS_REFRESH_S, show_message, user_action


@user_action("compare")
def rename_run(me: Session) -> None:
    me.rename(st.session_state.compare_pick, st.session_state.compare_name)
    st.session_state.compare_name = ""


@user_action("compare")
def toggle_pin(me: Session) -> None:
    me.toggle_pin(st.session_state.compare_pick)


def compare_section(me: Session) -> None:
    st.subheader("Compare runs")
    history = me.history
    if not history.runs:
        st.caption("Every run you train in this tab is kept here. Train, change one setting (the "
                   "learning rate, the width, the optimizer), train again, and compare the curves.")
        return
    st.caption("Each Train press is a new run. Look for: which run's loss falls fastest, which "
               "reaches the best validation accuracy, and which settings (highlighted) made the "
               "difference.")
    show_message(me, "compare")
    numbers = {r.number: r for r in history.runs}
    # Keep the visitor's choice, and add each run that is new since the last time.
    kept = [n for n in st.session_state.get("compare_runs", []) if n in numbers]
    new = [n for n in numbers if n > me.compare_seen]
    st.session_state.compare_runs, me.compare_seen = kept + new, max(numbers)
    chosen = st.multiselect("Runs to compare", list(numbers), key="compare_runs",
                            format_func=lambda n: numbers[n].name)
    x = st.radio("x-axis", list(X_AXES), format_func=X_AXES.get, horizontal=True, key="compare_x")
    selected = [numbers[n] for n in chosen]
    live = any(r.job.active for r in selected)
    st.fragment(run_every=LIVE_VIEWS_REFRESH_S if live else None)(comparison)(selected, x)
    with st.expander("Rename, pin and export", expanded=False):
        st.selectbox("Run", list(numbers), key="compare_pick",
                     format_func=lambda n: numbers[n].name + (" (pinned)" if numbers[n].pinned else ""))
        name_col, rename_col, pin_col = st.columns([3, 1, 1])
        name_col.text_input("New name", key="compare_name", max_chars=40, label_visibility="collapsed",
                            placeholder="a new name, e.g. lr 0.01")
        rename_col.button("Rename", on_click=rename_run)
        pin_col.button("Pin / unpin", on_click=toggle_pin,
                       help=f"Pinned runs are kept when a new run would exceed {history.limit} "
                            "(MLP_DEMO_MAX_RUNS); otherwise the oldest goes.")
        csv_col, json_col = st.columns(2)
        csv_col.download_button("History as CSV (one row per epoch)", lambda: to_csv(history.runs),
                                file_name="mlp_demo_runs.csv", mime="text/csv", on_click="ignore")
        json_col.download_button("History as JSON", lambda: to_json(history.runs),
                                 file_name="mlp_demo_runs.json", mime="application/json",
                                 on_click="ignore")


def comparison(selected: list, x: str) -> None:
    if not selected:
        st.caption("Choose runs above.")
        return
    histories = [(r.name, r.job.snapshot()) for r in selected]
    if any(h.loss for _, h in histories):
        st.plotly_chart(comparison_figure(histories, x), key="compare_curves",
                        config={"displayModeBar": False})
    off_axis = [name for name, h in histories if h.x_axis != "epoch"]
    if x == "epoch" and off_axis:
        st.caption(f"Not on the epochs axis: {', '.join(off_axis)} (teaching counts steps, not "
                   "epochs; choose images seen or seconds to see it).")
    rows, differ = settings_table(selected)
    table = pd.DataFrame(rows).set_index("setting")
    st.dataframe(table.style.apply(
        lambda row: ["background-color: #fde2e1" if row.name in differ else "" for _ in row], axis=1),
        key="compare_table")
    if differ:
        st.caption(f"Highlighted: the settings that differ ({', '.join(differ)}).")
