"""Runs: every run in the store, filterable by recipe; open one on another page."""

import streamlit as st

from bakeoff.ui import _common as common
from bakeoff.ui.runs import recipes_of, runs_table

st.title("Runs")
runs = common.load_runs()
if not runs:
    common.no_runs_message()
    st.stop()

recipes = recipes_of(runs)
chosen = st.multiselect("Recipe", recipes, placeholder="all recipes", key="runs_recipes")
rows = runs_table(runs, chosen or None)
unreadable = [r for r in rows if r["status"] == "unreadable"]
st.caption(
    f"{len(rows)} run(s) in `{common.runs_dir()}`. The metric column is the run's headline metric and "
    "the candidate that scored best on it."
)
st.dataframe(
    rows,
    hide_index=True,
    width="stretch",
    column_order=[
        "recipe",
        "run_id",
        "status",
        "started",
        "duration_s",
        "metric",
        "best",
        "best_value",
        "candidates",
        "questions",
        "problem",
    ],
    column_config={
        "recipe": st.column_config.TextColumn("recipe"),
        "run_id": st.column_config.TextColumn("run"),
        "status": st.column_config.TextColumn("status"),
        "started": st.column_config.TextColumn("started"),
        "duration_s": st.column_config.NumberColumn("took", format="%.0f s"),
        "questions": st.column_config.NumberColumn("questions"),
        "candidates": st.column_config.TextColumn("candidates", width="medium"),
        "metric": st.column_config.TextColumn("metric"),
        "best": st.column_config.TextColumn("best candidate"),
        "best_value": st.column_config.NumberColumn("best mean", format="%.3f"),
        "problem": st.column_config.TextColumn("problem", width="medium"),
    },
)
for row in unreadable:
    st.warning(f"`{row['run']}` is unreadable: {row['problem']}  \n(folder: `{row['path']}`)")

st.subheader("Open a run")
readable = [r for r in runs if not r.problem and (not chosen or r.recipe in chosen)]
if not readable:
    st.info("No readable run matches the filter.")
    st.stop()
run = common.pick_run(readable, label="Run", key="runs_run_picker")
cols = st.columns(4)
targets = [
    ("Compare", "compare", "Scores, per-question answers, latency and tokens"),
    ("Training", "training", "Loss curves of fine-tuned candidates"),
    ("Chat", "chat", "Talk to the candidates side by side"),
    ("Arena", "arena", "Vote blind between two answers"),
]
for col, (label, page, help_) in zip(cols, targets, strict=True):
    if col.button(label, key=f"open_{page}", help=help_, width="stretch"):
        common.open_page(page, run)
