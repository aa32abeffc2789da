"""The comparison table printed by ``bakeoff run`` and ``bakeoff show``."""

from __future__ import annotations

from typing import Any

__all__ = ["best_per_metric", "comparison_rows", "comparison_table"]


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


def comparison_table(scores: dict[str, Any], title: str | None = None):
    """A rich Table with one row per metric and one column per candidate (fits a terminal however many
    metrics there are); the best mean per metric is bold green with a ★."""
    from rich.table import Table

    metrics = scores.get("metrics", [])
    best = best_per_metric(scores)
    rows = comparison_rows(scores)
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True)
    for row in rows:
        table.add_column(row["candidate"], justify="right", overflow="fold")
    for metric in metrics:
        cells = [metric]
        for row in rows:
            value = row[metric]
            if value is None:
                cells.append("—")
            elif row["candidate"] in best.get(metric, set()):
                cells.append(f"[bold green]{value:.3f} ★[/]")
            else:
                cells.append(f"{value:.3f}")
        table.add_row(*cells)
    table.add_section()
    table.add_row("errors", *[str(r["errors"]) for r in rows])
    table.add_row(
        "p50 s/answer", *["—" if r["latency_p50_s"] is None else f"{r['latency_p50_s']:.2f}" for r in rows]
    )
    table.add_row("tokens out", *[str(r["completion_tokens"] or 0) for r in rows])
    n = scores.get("n_questions")
    table.caption = f"{n} questions; ★ best mean per metric" if n else "★ best mean per metric"
    return table
