"""The tables printed by ``bakeoff run`` and ``bakeoff show``.

:func:`comparison_table` is the per-metric overview (means with their 95% intervals, best marked);
:func:`pairwise_table` shows the paired comparisons of one metric with the significant ones marked;
:func:`judge_table` the judge's calls, cache hits and parse-failure rates; :func:`error_tables` the error
analysis; :func:`classification_tables` the per-label reports. :func:`print_scores` prints them all the way
``bakeoff show`` does. Every function takes a :class:`~bakeoff.run.documents.scores.Scores` (or the same as a
plain dict, as read from ``scores.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bakeoff.eval.formatting import interval, number, percent
from bakeoff.run.documents.scores import Scores

__all__ = [
    "best_per_metric",
    "classification_tables",
    "comparison_rows",
    "comparison_table",
    "error_tables",
    "judge_table",
    "pairwise_table",
    "power_table",
    "print_scores",
    "verdict_block",
]

ScoresLike = Scores | Mapping[str, Any]

_TEST_NAMES = {
    "permutation": "paired permutation test",
    "mcnemar": "McNemar's exact test",
    "bootstrap": "paired bootstrap",
}


def best_per_metric(scores: ScoresLike) -> dict[str, set[str]]:
    """For each metric, the candidate(s) with the highest mean (ties share the mark)."""
    return Scores.of(scores).best_per_metric()


def comparison_rows(scores: ScoresLike) -> list[dict[str, Any]]:
    """One plain row per candidate: metric means, errors, latency, tokens (for tables and the console)."""
    scores = Scores.of(scores)
    rows = []
    for name, cand in scores.candidates.items():
        row: dict[str, Any] = {"candidate": name}
        for metric in scores.metrics:  # a failed candidate has no result, not a score of 0
            row[metric] = None if cand.failed is not None else scores.entry(name, metric).mean
        row["failed"] = cand.failed is not None
        row["errors"] = cand.errors
        row["latency_p50_s"] = cand.latency_s.p50
        row["completion_tokens"] = cand.tokens.completion
        rows.append(row)
    return rows


def _legend_keys(names: list[str], metric_w: int, width: int | None) -> list[str] | None:
    """Short column keys (``A``, ``B``, …) when the candidates' names, whole, do not fit in ``width``
    columns beside the metric column; ``None`` when they fit (or the width is unknown)."""
    if width is None:
        return None
    needed = metric_w + 4 + sum(max(len(n), 9) + 3 for n in names)  # 9: "0.412 ★" + room; 3: border, padding
    if needed <= width:
        return None
    return [chr(ord("A") + i) if i < 26 else f"c{i + 1}" for i in range(len(names))]


def comparison_table(scores: ScoresLike, title: str | None = None, *, width: int | None = None):
    """A rich Table with one row per metric and one column per candidate (fits a terminal however many
    metrics there are): the mean, its 95% bootstrap interval and, when answers had no value, how many were
    missing; the best mean per metric is bold green with a ★, the headline metric is underlined. When the
    names, whole, would not fit in ``width`` columns, the columns are keyed ``A``, ``B``, … and the caption
    gives each key's full name."""
    from rich.markup import escape
    from rich.table import Table

    scores = Scores.of(scores)
    best = scores.best_per_metric()
    rows = comparison_rows(scores)
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True)
    names = [row["candidate"] for row in rows]
    metric_w = max([len(m) for m in scores.metrics] + [len("p50 s/answer")])
    keys = _legend_keys(names, metric_w, width)
    for i, name in enumerate(names):
        header = keys[i] if keys else escape(name)
        table.add_column(header, justify="right", overflow="fold", min_width=len(header))
    for metric in scores.metrics:
        cells = [f"[underline]{metric}[/]" if metric == scores.headline else metric]
        for row in rows:
            entry = scores.entry(row["candidate"], metric)
            if row["failed"]:
                cells.append("[bold red]failed[/]")
                continue
            extra = f" [dim]{interval(entry.ci)}[/]" if entry.ci else ""
            if entry.missing:
                extra += f" [yellow]({entry.missing} missing)[/]"
            if entry.mean is None:
                cells.append("—" + extra)
            elif row["candidate"] in best.get(metric, set()):
                cells.append(f"[bold green]{number(entry.mean)} ★[/]{extra}")
            else:
                cells.append(f"{number(entry.mean)}{extra}")
        table.add_row(*cells)
    table.add_section()
    table.add_row("errors", *[str(r["errors"]) for r in rows])
    table.add_row("p50 s/answer", *[number(r["latency_p50_s"], 2) for r in rows])
    if any(c.cost is not None for c in scores.candidates.values()):
        table.add_row("train s", *[_train_cell(scores, r["candidate"]) for r in rows])
    table.add_row("tokens out", *[str(r["completion_tokens"] or 0) for r in rows])
    parts = [f"{scores.n_questions} questions" if scores.n_questions else "", "★ best mean per metric"]
    if any(r["failed"] for r in rows):
        parts.append("failed = every answer was an error")
    if scores.dropped_lines:
        parts.append(f"{scores.dropped_lines} unreadable answer line(s) dropped")
    if scores.confidence:
        parts.append(f"\\[lo, hi] {scores.confidence:.0%} bootstrap interval")
    if scores.headline:
        parts.append(f"headline: {scores.headline}")
    if keys:
        parts.insert(0, " · ".join(f"{k} = {escape(n)}" for k, n in zip(keys, names, strict=True)))
    table.caption = "; ".join(p for p in parts if p)
    return table


def verdict_block(scores: ScoresLike):
    """The verdict (:func:`bakeoff.eval.verdict.verdict_lines`) as a rich Panel, ``None`` for a run scored
    before verdicts; labels in a narrow column so it reads at 80 columns."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from bakeoff.eval.verdict import verdict_lines

    scores = Scores.of(scores)
    lines = verdict_lines(scores)
    if not lines:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    styles = {"verdict": "bold green", "too small": "yellow", "warning": "yellow"}
    for label, text in lines:
        grid.add_row(Text(label, style=styles.get(label, "bold")), Text(text, style=styles.get(label, "")))
    return Panel(grid, title=f"verdict · {scores.headline}", title_align="left", expand=False)


def _train_cell(scores: Scores, name: str) -> str:
    """Training seconds the candidate's model took (``(cached)`` when this run reused it)."""
    cost = scores.candidates[name].cost
    if cost is None or not cost.training_s_original:
        return "0"
    return f"{cost.training_s_original:.0f}" + (" (cached)" if cost.training_cached else "")


def pairwise_table(scores: ScoresLike, metric: str | None = None):
    """Paired comparisons of one metric (default: the headline): Δ = a − b with its interval, the raw and
    Holm-corrected p-values and a mark on the significant ones. ``None`` when there is nothing to compare."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    scores = Scores.of(scores)
    metric = metric or scores.headline
    entries = scores.comparisons(metric)
    if not entries:
        return None
    method = scores.statistics.method
    # a and b on two lines, intervals to 2 digits and no outer edge: the table reads at 80 columns
    table = Table(
        title=f"paired comparisons · {metric}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    longest = max(len(name) for e in entries for name in (e.a, e.b))
    for col, justify in (
        ("a vs b", "left"),
        ("n", "right"),
        ("Δ a − b", "right"),
        (f"{method.confidence:.0%} CI", "right"),
        ("p", "right"),
        ("p_holm", "right"),
        ("", "left"),
    ):
        width = 4 if col == "" else min(longest + 3, 24) if col == "a vs b" else None
        table.add_column(col, justify=justify, no_wrap=col != "a vs b", min_width=width)
    for e in entries:
        mark = f"[bold green]✔ {escape(e.better)}[/]" if e.significant and e.better else "[dim]n.s.[/]"
        table.add_row(
            f"{escape(e.a)}\nvs {escape(e.b)}",
            "" if e.n is None else str(e.n),
            f"{e.delta:+.3f}",
            interval(e.ci, 2),
            f"{e.p:.4f}",
            f"{e.p_holm:.4f}",
            mark,
        )
    tests = sorted({e.test for e in entries})
    table.caption = (
        f"{', '.join(_TEST_NAMES.get(t, t) for t in tests)}; Holm-corrected over {len(entries)} pair(s); "
        f"✔ NAME = significantly better (p_holm < {method.alpha}); n.s. = not significant"
    )
    return table


def power_table(scores: ScoresLike, metric: str | None = None):
    """Beside the paired tests: per pair the minimum detectable difference (MDD) at the run's alpha and, for
    a pair that is not significant, the questions needed to detect its Δ. ``None`` without power numbers."""
    from rich.table import Table

    scores = Scores.of(scores)
    metric = metric or scores.headline
    entries = [e for e in scores.comparisons(metric) if e.mdd is not None]
    if not entries:
        return None
    method = scores.statistics.method
    table = Table(title=f"enough questions? · {metric}", title_justify="left")
    table.add_column("a vs b", overflow="fold")
    for col in ("n", "|Δ|", "MDD", "questions for Δ"):
        table.add_column(col, justify="right", no_wrap=True)
    for e in entries:
        if e.significant:
            needed = "[dim]detected[/]"
        else:
            needed = "never (Δ = 0)" if e.n_needed is None else f"[yellow]{e.n_needed:,}[/]"
        table.add_row(f"{e.a} vs {e.b}", str(e.n), f"{abs(e.delta):.3f}", f"{e.mdd:.3f}", needed)
    table.caption = (
        f"MDD: the smallest |Δ| these paired questions detect with {method.power or 0.8:.0%} power at alpha "
        f"{method.alpha} (per pair, before Holm); questions for Δ: how many would detect the observed Δ"
    )
    return table


def judge_table(scores: ScoresLike):
    """Per judged metric: answers judged, judge calls, cache hits, parse failures and their rate."""
    from rich.table import Table

    scores = Scores.of(scores)
    judge = scores.judge
    if judge is None:
        return None
    table = Table(title=f"judge · {judge.model}", title_justify="left")
    for col in ("metric", "asked", "calls", "cached", "unparsed", "parse-failure rate", "errors"):
        if col == "metric":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for metric, m in scores.judge_breakdown().items():
        rate = m.parse_failure_rate
        style = "red" if rate and rate >= 0.2 else "yellow" if rate else ""
        table.add_row(
            metric,
            str(m.asked),
            "—" if m.calls is None else str(m.calls),
            str(m.cache_hits),
            str(m.parse_failures),
            f"[{style}]{percent(rate)}[/]" if style else percent(rate),
            str(m.judge_errors),
        )
    table.caption = (
        f"{judge.calls} judge call(s), {judge.cache_hits} from the cache, "
        f"{judge.seconds} s. asked: verdicts needed; unparsed: missing, never counted as 0; "
        "errors: judge unreachable"
    )
    if judge.caution:
        table.caption += f"\n[yellow]caution: {judge.caution}[/]"
    return table


def error_tables(scores: ScoresLike, top: int = 5) -> list:
    """Error analysis: per candidate the questions lost most clearly, then questions every candidate fails
    (rich Tables, or a line of text where there is nothing to list)."""
    from rich.markup import escape
    from rich.table import Table

    analysis = Scores.of(scores).error_analysis
    if analysis is None:
        return []
    metric = analysis.metric
    out: list = []
    for cand, lost in analysis.lost.items():
        if not lost.questions:
            out.append(f"{escape(cand)}: lost no question to {escape(lost.versus)} · {metric}")
            continue
        t = Table(
            title=f"{escape(cand)}: lost to {escape(lost.versus)} on {lost.n_lost} question(s) · {metric}",
            title_justify="left",
        )
        # The names head the answer columns only as "answer" / "theirs" (the title names both), so that a
        # long name never squeezes the columns or is cut.
        for col in ("id", "question", "reference", "answer", "theirs", "gap"):
            t.add_column(col, overflow="fold", justify="right" if col == "gap" else "left")
        for q in lost.questions[:top]:
            t.add_row(
                escape(q.question_id),
                escape(q.question),
                escape(q.reference),
                f"{escape(q.answer)} [dim]({q.value:.2f})[/]",
                f"{escape(q.other_answer)} [dim]({q.other_value:.2f})[/]",
                f"{q.gap:.2f}",
            )
        t.caption = f"answer: {escape(cand)}'s; theirs: {escape(lost.versus)}'s (value in brackets)"
        out.append(t)
    fails = analysis.all_fail
    t = Table(
        title=f"every candidate fails: {len(fails)} question(s) · {metric} < {analysis.fail_below}",
        title_justify="left",
    )
    for col in ("id", "question", "reference", "best value"):
        t.add_column(col, overflow="fold")
    for q in fails[:top]:
        values = [v for v in q.values.values() if v is not None]
        t.add_row(
            escape(q.question_id),
            escape(q.question),
            escape(q.reference),
            number(max(values) if values else None, 2),
        )
    if len(fails) > top:
        t.caption = f"{len(fails) - top} more in scores.json (error_analysis.all_fail)"
    out.append(t)
    return out


def classification_tables(scores: ScoresLike) -> list:
    """Per candidate of a classification run: precision, recall, F1 and support per label."""
    from rich.markup import escape
    from rich.table import Table

    scores = Scores.of(scores)
    out = []
    for name, cand in scores.candidates.items():
        report = cand.classification
        t = Table(title=f"{escape(name)}: per-label", title_justify="left")
        for col in ("label", "precision", "recall", "f1", "support"):
            t.add_column(col, justify="right" if col != "label" else "left")
        for label, v in (report.per_label if report else {}).items():
            t.add_row(label, number(v.precision), number(v.recall), number(v.f1), str(v.support))
        t.caption = f"unparsed answers: {report.unparsed if report else 0}"
        out.append(t)
    return out


def print_scores(
    console,
    scores: ScoresLike,
    *,
    metric: str | None = None,
    errors: bool = False,
    by_source: bool = False,
    title: str | None = None,
) -> None:
    """Everything ``bakeoff show`` (and the end of ``bakeoff run``) prints about scores (``errors``: also why
    answers failed and the error analysis; ``by_source``: also the headline per document and question field)."""
    scores = Scores.of(scores)
    block = verdict_block(scores)
    if block is not None:
        console.print(block)
    if scores.headline and scores.headline_reason:
        console.print(f"headline: [bold]{scores.headline}[/] — {scores.headline_reason}", highlight=False)
    console.print(comparison_table(scores, title=title, width=console.width))
    pairs = pairwise_table(scores, metric)
    if pairs is not None:
        console.print(pairs)
        power = power_table(scores, metric)
        if power is not None:
            console.print(power)
    elif metric and (scores.statistics is None or metric not in scores.statistics.comparisons):
        console.print(f"[yellow]no paired comparisons for metric {metric!r}[/]")
    judge = judge_table(scores)
    if judge is not None:
        console.print(judge)
    from bakeoff.eval.served import served_table, served_warnings

    if scores.served:
        console.print(served_table(scores))
    for line in served_warnings(scores) if scores.verdict is None else []:  # else: under the verdict
        console.print(f"[yellow]served:[/] {line}", soft_wrap=True)
    from bakeoff.eval.retention import retention_table

    retention = retention_table(scores)
    if retention is not None:
        console.print(retention)
    if by_source:
        from bakeoff.eval.by_source import by_source_tables

        for table in by_source_tables(scores) or ["no per-document scores in this run (no question has a source)"]:
            console.print(table)
    if errors:
        from bakeoff.eval.causes import cause_table

        for table in [cause_table(scores), *error_tables(scores)]:
            if table is not None:
                console.print(table)
