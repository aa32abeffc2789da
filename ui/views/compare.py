"""Compare: one run, or two runs of the same recipe — scores with intervals, per-question answers, cost."""

import altair as alt
import pandas as pd
import streamlit as st

from bakeoff.eval.retention import retention_sentences
from bakeoff.ui import _common as common
from bakeoff.ui.analysis import cause_rows, heatmap_cells, retention_rows, slice_fields
from bakeoff.ui.compare import (
    aggregate_rows,
    chart_rows,
    classification_rows,
    cost_rows,
    filter_disagreements,
    format_cell,
    join_questions,
    merge_runs,
    question_table,
    verdict_rows,
)
from bakeoff.ui.runs import headline, run_key
from bakeoff.ui.served import served_groups

st.title("Compare")
runs = [r for r in common.load_runs() if not r.problem and r.scores]
if not runs:
    if common.load_runs():
        st.info("No run has scores yet: a run writes scores.json when it completes.")
    else:
        common.no_runs_message()
    st.stop()

left, right = st.columns([2, 2])
with left:
    run = common.pick_run(runs, key="compare_run_picker")
same_recipe = [r for r in runs if r.recipe == run.recipe and r.run_id != run.run_id]
with right:
    other_key = st.selectbox(
        "Compare with another run of this recipe",
        ["(none)"] + [run_key(r) for r in same_recipe],
        format_func=lambda k: k if k != "(none)" or same_recipe else "(no other run of this recipe)",
        key=f"compare_other_{run_key(run)}",
        help="Both runs' candidates are shown side by side, named `candidate · run-id`.",
        disabled=not same_recipe,
    )
chosen = [run] + [r for r in same_recipe if run_key(r) == other_key]
scores, answers = merge_runs([(r, common.load_answers(r)) for r in chosen])
metrics = list(scores.metrics)
task = scores.task or "qa"
candidates = list(scores.candidates)

st.caption(
    f"{run.recipe} · task **{task}** · {scores.n_questions or '?'} questions · "
    f"candidates: {', '.join(candidates)}"
)
if run.status != "complete":
    st.warning(f"This run is **{run.status}**: {run.manifest_document.error or 'its scores may be partial.'}")

verdict = verdict_rows(run.scores_document)  # the decision first (of the picked run, not a merge)
if verdict:
    with st.container(border=True):
        for label, text in verdict:
            if label == "verdict":
                st.success(f"**Verdict · {run.scores_document.headline}: {text}**")
            elif label in ("warning", "too small"):
                st.warning(f"**{label}**: {text}")
            else:
                st.markdown(f"**{label}**: {text}")

tab_scores, tab_questions, tab_cost, tab_analysis = st.tabs(
    ["Scores", "Per question", "Latency and tokens", "Documents and failures"]
)

with tab_scores:
    rows = aggregate_rows(scores)
    table = pd.DataFrame(
        {
            "candidate": [r["candidate"] for r in rows],
            **{
                m: [format_cell(r[m], r[f"{m}_low"], r[f"{m}_high"], r[f"{m}_best"]) for r in rows]
                for m in metrics
            },
            "errors": [r["errors"] for r in rows],
        }
    ).set_index("candidate")
    best_mask = pd.DataFrame({m: [r[f"{m}_best"] for r in rows] for m in metrics}, index=table.index).reindex(
        columns=table.columns, fill_value=False
    )
    styled = table.style.apply(
        lambda _: best_mask.map(lambda b: "background-color: #d7f5dd; font-weight: 600" if b else ""),
        axis=None,
    )
    st.table(styled)
    has_ci = any(r[f"{m}_low"] is not None for r in rows for m in metrics)
    st.caption(
        "Mean per metric"
        + (" with its 95% interval in brackets" if has_ci else " (this run has no intervals)")
        + "; ★ and green mark the best mean per metric (no mark when all candidates tie)."
    )
    for group in served_groups(run.scores_document):
        st.subheader(f"Served model · {group['candidate']} and its served forms")
        st.dataframe(group["rows"], hide_index=True, width="stretch")
        for line in group["warnings"]:
            st.warning(line)
    bars = pd.DataFrame(chart_rows(scores))
    if not bars.empty:
        chosen_metrics = st.multiselect(
            "Metrics to chart", metrics, default=metrics, key="compare_chart_metrics"
        )
        bars = bars[bars["metric"].isin(chosen_metrics)]
        highs = bars["ci_high"].dropna()
        top = max(1.0, float(bars["mean"].max()), float(highs.max()) if len(highs) else 0.0)
        x = alt.X("metric:N", title=None, sort=metrics, axis=alt.Axis(labelAngle=0))
        y = alt.Y("mean:Q", title="mean", scale=alt.Scale(domain=[0, top]))
        offset = alt.XOffset("candidate:N", sort=candidates)
        color = alt.Color("candidate:N", sort=candidates, legend=alt.Legend(orient="top", title=None))
        layers = [
            alt.Chart(bars)
            .mark_bar()
            .encode(
                x=x,
                xOffset=offset,
                y=y,
                color=color,
                tooltip=["candidate", "metric", alt.Tooltip("mean:Q", format=".3f"), "ci_low", "ci_high"],
            )
        ]
        if bars["ci_low"].notna().any():
            layers.append(
                alt.Chart(bars.dropna(subset=["ci_low"]))
                .mark_rule(color="black", strokeWidth=1.5)
                .encode(x=x, xOffset=offset, y="ci_low:Q", y2="ci_high:Q")
            )
        chart = alt.layer(*layers).properties(height=320)
        st.altair_chart(chart)
    per_label = classification_rows(scores)
    if per_label:
        st.subheader("Per label")
        cols = st.columns(min(len(per_label), 3))
        for i, (name, label_rows) in enumerate(per_label.items()):
            with cols[i % len(cols)]:
                st.markdown(f"**{name}**")
                st.dataframe(
                    label_rows,
                    hide_index=True,
                    column_config={
                        k: st.column_config.NumberColumn(format="%.2f") for k in ("precision", "recall", "f1")
                    },
                )

with tab_questions:
    views = join_questions(scores, answers)
    head = headline(scores)
    c1, c2, c3 = st.columns([2, 2, 2])
    with c1:
        metric = st.selectbox(
            "Score shown per answer",
            metrics or ["(none)"],
            index=metrics.index(head[0]) if head and head[0] in metrics else 0,
            key="compare_q_metric",
        )
    with c2:
        only_disagree = st.toggle(
            "Only where candidates disagree",
            key="compare_q_disagree",
            help="Classification: different labels. QA: the chosen score differs by at least the threshold.",
        )
    with c3:
        threshold = st.slider(
            "Disagreement threshold",
            0.05,
            1.0,
            0.25,
            0.05,
            key="compare_q_threshold",
            disabled=task == "classification" or not only_disagree,
        )
    shown = (
        filter_disagreements(views, metric=metric, task=task, threshold=threshold) if only_disagree else views
    )
    st.caption(f"{len(shown)} of {len(views)} questions")
    qrows = question_table(shown, candidates, metric=metric, task=task)
    config = {
        "id": st.column_config.TextColumn("id", width="small"),
        "question": st.column_config.TextColumn("question", width="medium"),
        "reference": st.column_config.TextColumn("reference", width="medium"),
        "disagreement": st.column_config.NumberColumn("disagreement", format="%.2f"),
    }
    for cand in candidates:
        config[cand] = st.column_config.TextColumn(cand, width="medium")
        config[f"{cand} · {metric}"] = st.column_config.NumberColumn(format="%.2f")
    order = ["id", "disagreement", "question", "reference"]
    order += [c for cand in candidates for c in (cand, f"{cand} · {metric}")]
    st.dataframe(qrows, hide_index=True, width="stretch", column_config=config, column_order=order)

    if shown:
        st.subheader("One question in full")
        by_id = {v.id: v for v in shown}
        qid = st.selectbox(
            "Question",
            list(by_id),
            format_func=lambda i: f"{i}: {by_id[i].question[:90]}",
            key="compare_q_detail",
        )
        view = by_id[qid]
        st.markdown(f"**Question.** {view.question}")
        st.markdown(f"**Reference.** {view.reference}")
        cols = st.columns(max(1, min(len(candidates), 3)))
        for i, cand in enumerate(candidates):
            ans = view.answers.get(cand)
            with cols[i % len(cols)].container(border=True):
                st.markdown(f"**{cand}**")
                if ans is None:
                    st.caption("did not answer this question")
                    continue
                if ans["error"]:
                    st.error(ans["error"])
                else:
                    st.write(ans["answer"] or "(empty answer)")
                if ans["label"] is not None or task == "classification":
                    st.caption(f"label: {ans['label'] or '(unparsed)'}")
                scored = {k: v for k, v in ans["scores"].items() if v is not None}
                if scored:
                    st.caption(" · ".join(f"{k} {v:.2f}" for k, v in scored.items()))
                if ans["contexts"]:
                    with st.expander(f"retrieved contexts ({len(ans['contexts'])})"):
                        for j, c in enumerate(ans["contexts"], start=1):
                            c = c if isinstance(c, dict) else {"text": str(c)}
                            score = c.get("score")
                            score_text = f" · score {score:.3f}" if isinstance(score, int | float) else ""
                            st.markdown(f"**{j}.** `{c.get('source') or '?'}`{score_text}")
                            st.text(str(c.get("text") or ""))

with tab_cost:
    cost = cost_rows(scores)
    st.dataframe(
        cost,
        hide_index=True,
        width="stretch",
        column_config={
            "latency_mean_s": st.column_config.NumberColumn("mean s/answer", format="%.2f"),
            "latency_p50_s": st.column_config.NumberColumn("p50 s", format="%.2f"),
            "latency_p95_s": st.column_config.NumberColumn("p95 s", format="%.2f"),
            "prompt_tokens": st.column_config.NumberColumn("prompt tokens"),
            "completion_tokens": st.column_config.NumberColumn("completion tokens"),
            "tokens_per_answer": st.column_config.NumberColumn("tokens/answer", format="%.1f"),
        },
    )
    st.caption(
        "Latency is per answer as the candidate saw it; answers generated in one batch share the batch's time."
    )
    frame = pd.DataFrame(cost)
    if not frame.empty and frame["latency_p50_s"].notna().any():
        c1, c2 = st.columns(2)
        c1.altair_chart(
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("candidate:N", title=None, axis=alt.Axis(labelAngle=-30)),
                y=alt.Y("latency_p50_s:Q", title="p50 seconds per answer"),
                color=alt.Color("candidate:N", legend=None),
            )
            .properties(height=220)
        )
        c2.altair_chart(
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("candidate:N", title=None, axis=alt.Axis(labelAngle=-30)),
                y=alt.Y("tokens_per_answer:Q", title="completion tokens per answer"),
                color=alt.Color("candidate:N", legend=None),
            )
            .properties(height=220)
        )

with tab_analysis:
    own = run.scores_document  # the picked run's own analysis (not merged across runs)
    fields = slice_fields(own)
    if not fields:
        st.info("No per-document scores: no question of this run names its source document.")
    for field in fields:
        label = "document" if field == "source" else field
        st.subheader(f"{own.slices.metric} per {label}")
        cells = pd.DataFrame(heatmap_cells(own, field))
        base = alt.Chart(cells).encode(
            x=alt.X("candidate:N", title=None, sort=list(own.candidates), axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("value:N", title=None),
        )
        heat = base.mark_rect().encode(
            color=alt.Color("mean:Q", title=own.slices.metric, scale=alt.Scale(scheme="redyellowgreen")),
            tooltip=["value", "candidate", alt.Tooltip("mean:Q", format=".3f"), "n", "questions"],
        )
        text = base.mark_text().encode(text=alt.Text("mean:Q", format=".2f"))
        st.altair_chart(alt.layer(heat, text).properties(height=40 * cells["value"].nunique() + 40))
    causes = cause_rows(own)
    if causes:
        st.subheader("Why answers failed")
        st.dataframe(causes, hide_index=True)
        st.caption(
            f"Answers with {own.failure_causes.metric} below {own.failure_causes.fail_below}. retrieval miss: the "
            "supporting passage was not retrieved; context ignored: it was, the answer is still wrong; not "
            "learned: closed-book and wrong; truncated: cut at max_new_tokens; error: no answer."
        )
    kept = retention_rows(own)
    if kept:
        st.subheader("Retention")
        st.dataframe(
            kept,
            hide_index=True,
            column_config={
                k: st.column_config.NumberColumn(format="%.3f")
                for k in ("mean", "delta", "ci_low", "ci_high")
            },
        )
        lines = retention_sentences(own)
        st.caption(
            (
                "Significant losses: " + "; ".join(lines)
                if lines
                else f"No candidate is significantly worse than {own.retention.base} on the retention set."
            )
            + f" ({own.retention.n_questions} general questions, paired permutation test, Holm-corrected)"
        )
