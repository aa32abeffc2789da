"""The tables printed by ``bakeoff run`` and ``bakeoff show``.

:func:`comparison_table` is the per-metric overview (means with their 95% intervals, best marked);
:func:`pairwise_table` shows the paired comparisons of one metric with the significant ones marked;
:func:`judge_table` the judge's calls, cache hits and parse-failure rates; :func:`error_tables` the error
analysis. :func:`print_scores` prints them all the way ``bakeoff show`` does.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "best_per_metric",
    "comparison_rows",
    "comparison_table",
    "error_tables",
    "judge_table",
    "pairwise_table",
    "print_scores",
]


def best_per_metric(scores: dict[str, Any]) -> dict[str, set[str]]:
    """For each metric, the candidate(s) with the highest mean (ties share the mark)."""
    best: dict[str, set[str]] = {}
    for metric in scores.get("metrics", []):
        values = {
            name: cand["metrics"][metric]["mean"]
            for name, cand in scores.get("candidates", {}).items()
            if cand.get("metrics", {}).get(metric, {}).get("mean") is not None
        }
        if len(values) < 2:
            best[metric] = set()
            continue
        top = max(values.values())
        winners = {n for n, v in values.items() if abs(v - top) < 1e-12}
        best[metric] = winners if len(winners) < len(values) else set()  # all tied: nobody is best
    return best


def comparison_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """One plain row per candidate: metric means, errors, latency, tokens (for tables and the console)."""
    rows = []
    for name, cand in scores.get("candidates", {}).items():
        row: dict[str, Any] = {"candidate": name}
        for metric in scores.get("metrics", []):
            row[metric] = cand.get("metrics", {}).get(metric, {}).get("mean")
        row["errors"] = cand.get("errors", 0)
        row["latency_p50_s"] = cand.get("latency_s", {}).get("p50")
        row["completion_tokens"] = cand.get("tokens", {}).get("completion")
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None, digits: int = 2) -> str:
    return "" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def comparison_table(scores: dict[str, Any], title: str | None = None):
    """A rich Table with one row per metric and one column per candidate (fits a terminal however many
    metrics there are): the mean, its 95% bootstrap interval and, when answers had no value, how many were
    missing; the best mean per metric is bold green with a ★, the headline metric is underlined."""
    from rich.table import Table

    metrics = scores.get("metrics", [])
    best = best_per_metric(scores)
    rows = comparison_rows(scores)
    headline = scores.get("headline")
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True)
    for row in rows:
        table.add_column(row["candidate"], justify="right", overflow="fold")
    for metric in metrics:
        cells = [f"[underline]{metric}[/]" if metric == headline else metric]
        for row in rows:
            value = row[metric]
            entry = scores["candidates"][row["candidate"]].get("metrics", {}).get(metric, {})
            extra = f" [dim]{_ci(entry.get('ci'))}[/]" if entry.get("ci") else ""
            if entry.get("missing"):
                extra += f" [yellow]({entry['missing']} missing)[/]"
            if value is None:
                cells.append("—" + extra)
            elif row["candidate"] in best.get(metric, set()):
                cells.append(f"[bold green]{value:.3f} ★[/]{extra}")
            else:
                cells.append(f"{value:.3f}{extra}")
        table.add_row(*cells)
    table.add_section()
    table.add_row("errors", *[str(r["errors"]) for r in rows])
    table.add_row(
        "p50 s/answer", *["—" if r["latency_p50_s"] is None else f"{r['latency_p50_s']:.2f}" for r in rows]
    )
    table.add_row("tokens out", *[str(r["completion_tokens"] or 0) for r in rows])
    n = scores.get("n_questions")
    level = scores.get("statistics", {}).get("method", {}).get("confidence")
    parts = [f"{n} questions" if n else "", "★ best mean per metric"]
    if level:
        parts.append(f"\\[lo, hi] {level:.0%} bootstrap interval")
    if headline:
        parts.append(f"headline: {headline}")
    table.caption = "; ".join(p for p in parts if p)
    return table


def pairwise_table(scores: dict[str, Any], metric: str | None = None):
    """Paired comparisons of one metric (default: the headline): Δ = a − b with its interval, the raw and
    Holm-corrected p-values and a mark on the significant ones. ``None`` when there is nothing to compare."""
    from rich.table import Table

    stats = scores.get("statistics") or {}
    metric = metric or scores.get("headline")
    entries = (stats.get("comparisons") or {}).get(metric)
    if not entries:
        return None
    method = stats.get("method", {})
    alpha = method.get("alpha", 0.05)
    level = method.get("confidence", 0.95)
    table = Table(title=f"paired comparisons · {metric}", title_justify="left")
    for col, justify in (
        ("a vs b", "left"),
        ("n", "right"),
        ("Δ (a − b)", "right"),
        (f"{level:.0%} CI", "right"),
        ("p", "right"),
        ("p_holm", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "a vs b", min_width=4 if col == "" else None)
    tests = set()
    for e in entries:
        tests.add(e.get("test", "permutation"))
        mark = (
            f"[bold green]✔ {e['better']} better[/]"
            if e.get("significant") and e.get("better")
            else "[dim]n.s.[/]"
        )
        table.add_row(
            f"{e['a']} vs {e['b']}",
            str(e.get("n", "")),
            f"{e['delta']:+.3f}",
            _ci(e.get("ci"), 3),
            f"{e['p']:.4f}",
            f"{e['p_holm']:.4f}",
            mark,
        )
    names = {
        "permutation": "paired permutation test",
        "mcnemar": "McNemar's exact test",
        "bootstrap": "paired bootstrap",
    }
    table.caption = (
        f"{', '.join(names.get(t, t) for t in sorted(tests))}; Holm-corrected over {len(entries)} pair(s); "
        f"✔ = p_holm < {alpha}; n.s. = not significant"
    )
    return table


def judge_table(scores: dict[str, Any]):
    """Per judged metric: answers judged, judge calls, cache hits, parse failures and their rate."""
    from rich.table import Table

    judge = scores.get("judge")
    if not judge:
        return None
    table = Table(title=f"judge · {judge.get('model')}", title_justify="left")
    for col in ("metric", "asked", "calls", "cached", "unparsed", "parse-failure rate", "errors"):
        if col == "metric":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    rows = dict(judge.get("metrics", {}))
    pairwise = scores.get("judge_pairwise")
    if pairwise:
        rows["judge_rubric (pairwise)"] = pairwise
    for metric, m in rows.items():
        rate = m.get("parse_failure_rate")
        style = "red" if rate and rate >= 0.2 else "yellow" if rate else ""
        table.add_row(
            metric,
            str(m.get("asked", 0)),
            str(m.get("calls", "—")),
            str(m.get("cache_hits", 0)),
            str(m.get("parse_failures", 0)),
            f"[{style}]{rate:.0%}[/]" if style else ("—" if rate is None else f"{rate:.0%}"),
            str(m.get("judge_errors", 0)),
        )
    table.caption = (
        f"{judge.get('calls', 0)} judge call(s), {judge.get('cache_hits', 0)} from the cache, "
        f"{judge.get('seconds', 0)} s. asked: verdicts needed; unparsed: missing, never counted as 0; "
        "errors: judge unreachable"
    )
    return table


def error_tables(scores: dict[str, Any], top: int = 5) -> list:
    """Error analysis: per candidate the questions lost most clearly, then questions every candidate fails
    (rich Tables, or a line of text where there is nothing to list)."""
    from rich.table import Table

    analysis = scores.get("error_analysis")
    if not analysis:
        return []
    metric = analysis.get("metric")
    out = []
    for cand, lost in analysis.get("lost", {}).items():
        if not lost["questions"]:
            out.append(f"{cand}: lost no question to {lost['versus']} · {metric}")
            continue
        t = Table(
            title=f"{cand}: lost to {lost['versus']} on {lost['n_lost']} question(s) · {metric}",
            title_justify="left",
        )
        for col in ("id", "question", "reference", cand, lost["versus"], "gap"):
            t.add_column(col, overflow="fold", justify="right" if col == "gap" else "left")
        for q in lost["questions"][:top]:
            t.add_row(
                q["question_id"],
                q["question"],
                q["reference"],
                f"{q['answer']} [dim]({q['value']:.2f})[/]",
                f"{q['other_answer']} [dim]({q['other_value']:.2f})[/]",
                f"{q['gap']:.2f}",
            )
        out.append(t)
    fails = analysis.get("all_fail", [])
    t = Table(
        title=f"every candidate fails: {len(fails)} question(s) · {metric} < {analysis.get('fail_below')}",
        title_justify="left",
    )
    for col in ("id", "question", "reference", "best value"):
        t.add_column(col, overflow="fold")
    for q in fails[:top]:
        values = [v for v in q["values"].values() if v is not None]
        t.add_row(q["question_id"], q["question"], q["reference"], _fmt(max(values) if values else None, 2))
    if len(fails) > top:
        t.caption = f"{len(fails) - top} more in scores.json (error_analysis.all_fail)"
    out.append(t)
    return out


def print_scores(
    console,
    scores: dict[str, Any],
    *,
    metric: str | None = None,
    errors: bool = False,
    title: str | None = None,
) -> None:
    """Everything ``bakeoff show`` (and the end of ``bakeoff run``) prints about scores."""
    console.print(comparison_table(scores, title=title))
    pairs = pairwise_table(scores, metric)
    if pairs is not None:
        console.print(pairs)
    elif metric and metric not in (scores.get("statistics") or {}).get("comparisons", {}):
        console.print(f"[yellow]no paired comparisons for metric {metric!r}[/]")
    judge = judge_table(scores)
    if judge is not None:
        console.print(judge)
    if errors:
        for table in error_tables(scores):
            console.print(table)
