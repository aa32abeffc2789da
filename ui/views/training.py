"""Training: loss curves of fine-tuned candidates, the checkpoint kept, hyper-parameters and data sizes."""

import altair as alt
import pandas as pd
import streamlit as st

from bakeoff.ui import _common as common
from bakeoff.ui.training import curve_rows, selected_steps, training_facts

st.title("Training")
runs = [r for r in common.load_runs() if not r.problem]
if not runs:
    common.no_runs_message()
    st.stop()
run = common.pick_run(runs, key="training_run_picker")
logs = common.load_training(run)
if not logs:
    st.info(
        f"`{run.recipe}/{run.run_id}` has no fine-tuned candidates: only candidates that train write "
        "`training/<candidate>/metrics.jsonl`. Pick another run above."
    )
    st.stop()

names = list(logs)
c1, c2 = st.columns([3, 1])
chosen = c1.multiselect(
    "Candidates (pick two or more to overlay their curves)", names, default=names, key="training_candidates"
)
x_axis = c2.radio("x axis", ["step", "epoch"], horizontal=True, key="training_x")
if not chosen:
    st.info("Pick at least one candidate.")
    st.stop()
for name in chosen:
    if logs[name].problem:
        st.warning(f"{name}: could not read all training files: {logs[name].problem}")

points = pd.DataFrame(curve_rows(logs, chosen))
picked = pd.DataFrame(selected_steps(logs, chosen))
if points.empty:
    st.info(
        "No loss has been logged yet" + (" — the run is still going." if run.status == "running" else ".")
    )
else:
    x = alt.X(f"{x_axis}:Q", title=x_axis)
    lines = (
        alt.Chart(points)
        .mark_line(point=alt.OverlayMarkDef(size=25))
        .encode(
            x=x,
            y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
            color=alt.Color("candidate:N"),
            # solid = train, dashed = validation (said in the caption; Vega draws no symbol for dash legends)
            strokeDash=alt.StrokeDash("split:N", sort=["train", "validation"], legend=None),
            tooltip=["candidate", "split", "step", "epoch", alt.Tooltip("loss:Q", format=".4f")],
        )
    )
    layers = [lines]
    if not picked.empty and x_axis == "step":
        layers.append(
            alt.Chart(picked)
            .mark_rule(strokeWidth=2, opacity=0.6)
            .encode(
                x="step:Q",
                color=alt.Color("candidate:N"),
                tooltip=["candidate", "step", "select", alt.Tooltip("val_loss:Q", format=".4f")],
            )
        )
        with_val = picked.dropna(subset=["val_loss"])
        if not with_val.empty:
            layers.append(
                alt.Chart(with_val)
                .mark_point(shape="diamond", size=160, filled=True)
                .encode(x="step:Q", y="val_loss:Q", color=alt.Color("candidate:N"))
            )
    st.altair_chart(alt.layer(*layers).properties(height=360).interactive())
    if not picked.empty:
        st.caption(
            "Solid: train loss; dashed: validation loss. The vertical rule and ◆ mark the checkpoint each "
            "candidate kept: "
            + "; ".join(f"**{p['candidate']}** step {p['step']}" for p in picked.to_dict("records"))
            + ("" if x_axis == "step" else " (markers are drawn on the step axis).")
        )
    else:
        st.caption("Solid: train loss; dashed: validation loss.")

st.subheader("Hyper-parameters and data")
facts = training_facts(logs, chosen)
if facts:
    st.table(pd.DataFrame(facts).set_index("fact"))
    for name in chosen:
        summary = logs[name].summary
        asked, got = summary.get("requested_method"), summary.get("method")
        if asked and got and asked != got:
            notes = "; ".join(run.manifest_document.notes) or "see the run's manifest"
            st.caption(f"**{name}** asked for {asked} and trained {got}: {notes}")
else:
    st.caption("No summary.json yet (written when training ends).")
if run.status == "running":
    st.button("Refresh", key="training_refresh", help="Re-read the training logs of this running run")
