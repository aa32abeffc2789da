"""The report's sections, one function each, from a run's typed documents to :class:`Block` lists."""

from __future__ import annotations

from bakeoff.eval.formatting import interval, number, percent
from bakeoff.eval.report.blocks import Block
from bakeoff.eval.report.charts import CHARTS
from bakeoff.run.documents.manifest import CandidateFacts, Manifest
from bakeoff.run.documents.scores import Scores

__all__ = [
    "candidates_section",
    "charts_section",
    "comparisons_section",
    "cost_section",
    "error_analysis_section",
    "header_section",
    "judge_section",
    "reading_section",
    "scores_section",
    "verdict",
    "verdict_section",
]


def header_section(recipe: str, run_id: str, status: str, manifest: Manifest, scores: Scores) -> list[Block]:
    return [
        Block("h1", f"bakeoff report — {recipe} · {run_id}"),
        Block(
            "p",
            f"Status **{status}**, started {manifest.started_at or '?'}; task {scores.task}, "
            f"{scores.n_questions} questions, {len(scores.candidates)} candidates; headline metric "
            f"**{scores.headline}**"
            + (f" ({scores.headline_reason})." if scores.headline_reason else "."),
        ),
    ]


def verdict(scores: Scores) -> str:
    """Who leads the headline metric, and which differences are significant after Holm correction."""
    metric = scores.headline
    means = scores.means(metric)
    if not means:
        return f"No candidate has a value for the headline metric {metric}."
    best = max(means, key=lambda c: means[c])
    ci = scores.entry(best, metric).ci
    text = (
        f"On the headline metric **{metric}**, **{best}** has the highest mean, {means[best]:.3f} "
        f"{interval(ci, 3)}."
    )
    entries = scores.comparisons(metric)
    sig = [e for e in entries if e.significant]
    if len(means) < 2:
        return text
    if not sig:
        return text + (
            " No difference between candidates is significant after Holm correction: on these questions the "
            "ranking could be luck of the sample."
        )
    parts = []
    for e in sig:
        loser = e.b if e.better == e.a else e.a
        parts.append(f"{e.better} beats {loser} by {abs(e.delta):.3f} (p_holm = {e.p_holm:.4f})")
    text += " Significant after Holm correction: " + "; ".join(parts) + "."
    unclear = [e for e in entries if best in (e.a, e.b) and not e.significant]
    if unclear:
        others = ", ".join(e.b if e.a == best else e.a for e in unclear)
        text += f" {best} is not significantly better than {others}."
    return text


def verdict_section(scores: Scores) -> list[Block]:
    """The decision first (rule, recommendation, margin, cost, warnings; :mod:`bakeoff.eval.verdict`), the
    fine-tune × RAG effects when the recipe holds the four cells, then who leads the headline metric."""
    from bakeoff.eval.verdict import verdict_lines

    blocks = [Block("h2", "Verdict")]
    blocks += [Block("p", f"**{label}**: {text}") for label, text in verdict_lines(scores)]
    x = scores.interaction
    if x is not None:
        rows = [
            [name, f"{e.estimate:+.3f}", interval(e.ci, 3)]
            for name, e in (("fine-tuning", x.finetune), ("RAG", x.rag), ("interaction", x.interaction))
        ]
        cells = ", ".join(f"{cell} = {name}" for cell, name in x.cells.items())
        blocks.append(Block("table", headers=["effect", "estimate", "95% CI"], rows=rows))
        blocks.append(
            Block("note", f"Fine-tune × RAG on {x.metric}, {x.n} questions ({cells}); + is better.")
        )
    return [*blocks, Block("p", verdict(scores))]


def candidates_section(manifest: Manifest, scores: Scores) -> list[Block]:
    """How each candidate answered: agent, model, answer time, errors (from the manifest)."""
    if not manifest.candidates:
        return []
    rows = []
    for c, cand in scores.candidates.items():
        facts = manifest.candidates.get(c) or CandidateFacts()
        rows.append([c, facts.agent or "", facts.model or "", number(facts.answer_s, 1), str(cand.errors)])
    return [
        Block("h2", "Candidates"),
        Block("table", headers=["candidate", "agent", "model", "answer time (s)", "errors"], rows=rows),
    ]


def scores_section(scores: Scores) -> list[Block]:
    """Every metric's mean with its interval per candidate, then why values are missing."""
    cands = list(scores.candidates)
    rows = []
    for metric in scores.metrics:
        row = [f"**{metric}**" if metric == scores.headline else metric]
        for c in cands:
            e = scores.entry(c, metric)
            cell = " ".join(p for p in (number(e.mean), interval(e.ci)) if p)
            row.append(cell + (f" ({e.missing} missing)" if e.missing else ""))
        rows.append(row)
    level = scores.confidence or 0.95
    blocks = [
        Block("h2", "Scores"),
        Block("table", headers=["metric", *cands], rows=rows),
        Block("note", f"Mean over answers with a value, with its {level:.0%} BCa bootstrap interval."),
    ]
    missing = [
        [c, m, reason, str(n)]
        for c, cand in scores.candidates.items()
        for m, e in cand.metrics.items()
        for reason, n in e.missing_reasons.items()
    ]
    if missing:
        blocks.append(Block("h3", "Missing values and why"))
        blocks.append(Block("table", headers=["candidate", "metric", "reason", "answers"], rows=missing))
    return blocks


def charts_section(scores: Scores) -> list[Block]:
    blocks = []
    for name, chart, alt in CHARTS:
        png = chart(scores)
        if png:
            blocks.append(Block("img", alt, name=name, png=png))
    return blocks


def comparisons_section(scores: Scores) -> list[Block]:
    """Every paired comparison, the headline metric's first."""
    comparisons = scores.statistics.comparisons if scores.statistics else {}
    if not any(comparisons.values()):
        return []
    level = scores.confidence or 0.95
    text = (
        f"Δ = mean(a − b) on the questions both candidates have a value for, with its {level:.0%} paired "
        f"bootstrap interval; p from a paired permutation test (McNemar's exact test for accuracy, a "
        f"paired bootstrap for macro_f1), Holm-corrected over the pairs of each metric. Significant = "
        f"p_holm < {scores.statistics.method.alpha}."
    )
    order = [scores.headline] + [m for m in comparisons if m != scores.headline]
    rows = [
        [
            metric,
            f"{e.a} vs {e.b}",
            str(e.n),
            f"{e.delta:+.3f}",
            interval(e.ci, 3),
            f"{e.p:.4f}",
            f"{e.p_holm:.4f}",
            f"yes: {e.better} better" if e.significant and e.better else "no",
            number(e.mdd, 3),
            "" if e.significant or e.mdd is None else "never" if e.n_needed is None else str(e.n_needed),
        ]
        for metric in order
        for e in scores.comparisons(metric)
    ]
    headers = [
        "metric",
        "a vs b",
        "n",
        "Δ",
        f"{level:.0%} CI",
        "p",
        "p_holm",
        "significant",
        "MDD",
        "n for Δ",
    ]
    text += (
        " MDD: the smallest |Δ| these questions detect with 80% power at that alpha (per pair, before Holm); "
        "n for Δ: the questions a pair that is not significant would need to detect its observed Δ."
    )
    return [Block("h2", "Paired comparisons"), Block("p", text), Block("table", headers=headers, rows=rows)]


def judge_section(scores: Scores) -> list[Block]:
    """The judge, its calls and parse-failure rates per metric, and the pairwise verdicts."""
    judge = scores.judge
    if judge is None:
        return []
    text = (
        f"Judge model `{judge.model}` (max_new_tokens {judge.max_new_tokens}, temperature "
        f"{judge.temperature}, structured output {judge.structured_output}); "
        f"{judge.calls} calls, {judge.cache_hits} cache hits, {judge.seconds} s. "
        "A verdict that could not be parsed counts as missing, never as 0."
    )
    rows = [
        [
            m,
            str(v.asked),
            str(v.calls),
            str(v.cache_hits),
            str(v.parse_failures),
            percent(v.parse_failure_rate),
            str(v.judge_errors),
        ]
        for m, v in scores.judge_breakdown().items()
    ]
    headers = ["metric", "asked", "calls", "cached", "unparsed", "parse-failure rate", "judge errors"]
    blocks = [Block("h2", "Judge"), Block("p", text), Block("table", headers=headers, rows=rows)]
    pw = scores.judge_pairwise
    if pw is not None and pw.summary:
        blocks.append(Block("h3", "Pairwise verdicts (both orders; disagreement = tie)"))
        blocks.append(
            Block(
                "table",
                headers=["pair", "a wins", "b wins", "ties", "of which the orders disagreed", "missing"],
                rows=[
                    [k, str(v.a_wins), str(v.b_wins), str(v.ties), str(v.order_disagreements), str(v.missing)]
                    for k, v in pw.summary.items()
                ],
            )
        )
    return blocks


def error_analysis_section(scores: Scores, top_lost: int = 5, top_failed: int = 10) -> list[Block]:
    """Per candidate the questions it lost most clearly, then the questions every candidate fails."""
    analysis = scores.error_analysis
    if analysis is None:
        return []
    blocks = [
        Block("h2", "Error analysis"),
        Block(
            "p",
            f"On {analysis.metric}: for each candidate, the questions it lost most clearly to the best other "
            f"candidate; then the questions where every candidate scored below {analysis.fail_below}.",
        ),
    ]
    for cand, lost in analysis.lost.items():
        blocks.append(Block("h3", f"{cand} — lost to {lost.versus} on {lost.n_lost} question(s)"))
        if lost.questions:
            rows = [
                [
                    q.question_id,
                    q.question,
                    q.reference,
                    f"{q.answer} ({q.value:.2f})",
                    f"{q.other_answer} ({q.other_value:.2f})",
                    f"{q.gap:.2f}",
                ]
                for q in lost.questions[:top_lost]
            ]
            headers = ["id", "question", "reference", cand, lost.versus, "gap"]
            blocks.append(Block("table", headers=headers, rows=rows))
    fails = analysis.all_fail
    blocks.append(Block("h3", f"Every candidate fails: {len(fails)} question(s)"))
    if fails:
        cands = list(scores.candidates)
        rows = [
            [
                q.question_id,
                q.question,
                q.reference,
                *[f"{q.answers.get(c, '')} ({number(q.values.get(c), 2)})" for c in cands],
            ]
            for q in fails[:top_failed]
        ]
        blocks.append(Block("table", headers=["id", "question", "reference", *cands], rows=rows))
        if len(fails) > top_failed:
            blocks.append(
                Block("note", f"{len(fails) - top_failed} more in scores.json (error_analysis.all_fail).")
            )
    return blocks


def cost_section(scores: Scores) -> list[Block]:
    """Training, latency, tokens and GPU memory per candidate."""
    rows = []
    for c, v in scores.candidates.items():
        cost = v.cost
        trained = (
            ""
            if cost is None
            else f"{cost.training_s_original:.0f}" + (" (cached)" if cost.training_cached else "")
        )
        per_answer = (
            ""
            if cost is None or cost.tokens_in_per_answer is None
            else (f"{cost.tokens_in_per_answer:.0f} / {cost.tokens_out_per_answer or 0:.0f}")
        )
        gpu = "" if cost is None else number(cost.peak_gpu_memory_gb, 1)
        rows.append(
            [
                c,
                trained,
                number(v.latency_s.p50, 2),
                number(v.latency_s.p95, 2),
                per_answer,
                str(v.tokens.prompt),
                str(v.tokens.completion),
                gpu,
                str(v.truncated),
            ]
        )
    headers = [
        "candidate",
        "training s",
        "p50 s/answer",
        "p95 s/answer",
        "tokens in / out per answer",
        "prompt tokens",
        "completion tokens",
        "GPU peak GiB",
        "truncated",
    ]
    return [Block("h2", "Cost"), Block("table", headers=headers, rows=rows)]


def reading_section() -> list[Block]:
    return [
        Block("h2", "How to read this"),
        Block(
            "p",
            "Every candidate answered the same questions, so candidates are compared question by question. An "
            "interval that excludes 0 and a Holm-corrected p below alpha mean the difference is unlikely to be "
            "luck of the question sample. With few questions nothing is significant however large Δ looks — add "
            "questions before trusting a ranking. Decide the headline metric before reading the numbers: the "
            "correction covers pairs, not a search over metrics.",
        ),
    ]
