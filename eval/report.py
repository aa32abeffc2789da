"""``bakeoff report``: a run's results as a self-contained Markdown or HTML document.

The report is built once as a list of blocks (headings, paragraphs, tables, charts) and rendered to either
format: HTML embeds every chart as a base64 ``data:`` URI (one file to mail or attach, nothing to fetch);
Markdown links PNG files written beside it (``<stem>-<chart>.png``). Charts are drawn with matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["build_report", "write_report"]


@dataclass
class _Block:
    kind: Literal["h1", "h2", "h3", "p", "table", "img", "note"]
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    name: str = ""
    png: bytes = b""


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None, digits: int = 3) -> str:
    return "" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


# -- charts ------------------------------------------------------------------------------------------------


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _chart_means(scores: dict[str, Any]) -> bytes | None:
    """Every metric's mean per candidate with its interval (dot and whisker)."""
    metrics = list(scores.get("metrics", []))
    cands = list(scores.get("candidates", {}))
    if not metrics or not cands:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(metrics) * max(1, len(cands)) ** 0.5 + 1.2))
    step = 0.7 / max(1, len(cands))
    for k, cand in enumerate(cands):
        ys, xs, lo, hi = [], [], [], []
        for i, metric in enumerate(metrics):
            entry = scores["candidates"][cand]["metrics"].get(metric, {})
            if entry.get("mean") is None:
                continue
            ci = entry.get("ci") or [entry["mean"], entry["mean"]]
            ys.append(i - 0.35 + step * (k + 0.5))
            xs.append(entry["mean"])
            lo.append(max(0.0, entry["mean"] - ci[0]))
            hi.append(max(0.0, ci[1] - entry["mean"]))
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", capsize=3, label=cand)
    ax.set_yticks(range(len(metrics)), metrics)
    ax.invert_yaxis()
    ax.set_xlabel("mean (whiskers: bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title("All metrics")
    return _figure_png(fig)


def _chart_headline(scores: dict[str, Any]) -> bytes | None:
    """Headline metric: bars with intervals, one per candidate."""
    metric = scores.get("headline")
    cands = [
        c
        for c, v in scores.get("candidates", {}).items()
        if v["metrics"].get(metric, {}).get("mean") is not None
    ]
    if not cands:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(cands) + 2), 3.6))
    means = [scores["candidates"][c]["metrics"][metric]["mean"] for c in cands]
    cis = [
        scores["candidates"][c]["metrics"][metric].get("ci") or [m, m]
        for c, m in zip(cands, means, strict=True)
    ]
    err = [
        [max(0, m - ci[0]) for m, ci in zip(means, cis, strict=True)],
        [max(0, ci[1] - m) for m, ci in zip(means, cis, strict=True)],
    ]
    ax.bar(cands, means, yerr=err, capsize=6, color="#4C78A8")
    for x, m in enumerate(means):
        ax.annotate(f"{m:.3f}", (x, m), textcoords="offset points", xytext=(12, 3), fontsize="small")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (headline) with bootstrap intervals")
    ax.grid(axis="y", alpha=0.3)
    return _figure_png(fig)


def _chart_differences(scores: dict[str, Any]) -> bytes | None:
    """Forest plot of paired differences on the headline metric; significant ones in colour."""
    metric = scores.get("headline")
    entries = (scores.get("statistics") or {}).get("comparisons", {}).get(metric) or []
    if not entries:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(entries) + 1.4))
    for i, e in enumerate(entries):
        color = "#D62728" if e.get("significant") else "#7F7F7F"
        lo, hi = e["ci"]
        ax.errorbar(
            [e["delta"]],
            [i],
            xerr=[[max(0, e["delta"] - lo)], [max(0, hi - e["delta"])]],
            fmt="o",
            color=color,
            capsize=4,
        )
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(entries)), [f"{e['a']} − {e['b']}" for e in entries])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric} (a − b); red: significant after Holm correction")
    ax.set_title("Paired differences")
    ax.grid(axis="x", alpha=0.3)
    return _figure_png(fig)


def _chart_distribution(scores: dict[str, Any]) -> bytes | None:
    """Per-question headline values per candidate (box plot with the points)."""
    metric = scores.get("headline")
    data, labels = [], []
    for cand, per_q in scores.get("per_answer", {}).items():
        values = [v.get(metric) for v in per_q.values() if v.get(metric) is not None]
        if values:
            data.append(values)
            labels.append(cand)
    if not data:
        return None
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(data) + 2), 3.6))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.5, color="#4C78A8")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per question")
    ax.grid(axis="y", alpha=0.3)
    return _figure_png(fig)


def _chart_cost(scores: dict[str, Any]) -> bytes | None:
    """Headline mean against median latency per answer: what each point of quality costs."""
    metric = scores.get("headline")
    pts = []
    for cand, v in scores.get("candidates", {}).items():
        mean = v["metrics"].get(metric, {}).get("mean")
        lat = (v.get("latency_s") or {}).get("p50")
        if mean is not None and lat is not None:
            pts.append((cand, lat, mean))
    if len(pts) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for cand, lat, mean in pts:
        ax.scatter([lat], [mean], s=40)
        ax.annotate(cand, (lat, mean), textcoords="offset points", xytext=(5, 4), fontsize="small")
    ax.set_xlabel("median seconds per answer")
    ax.set_ylabel(metric)
    ax.set_xlim(left=0)  # a zoomed axis would make small differences look large
    if all(0 <= mean <= 1 for _, _, mean in pts):
        ax.set_ylim(0, max(1e-9, max(mean for *_, mean in pts)) * 1.15)
    ax.set_title("Quality against latency")
    ax.grid(alpha=0.3)
    return _figure_png(fig)


# -- content -----------------------------------------------------------------------------------------------


def _verdict(scores: dict[str, Any]) -> str:
    metric = scores.get("headline")
    cands = scores.get("candidates", {})
    means = {c: v["metrics"].get(metric, {}).get("mean") for c, v in cands.items()}
    means = {c: m for c, m in means.items() if m is not None}
    if not means:
        return f"No candidate has a value for the headline metric {metric}."
    best = max(means, key=lambda c: means[c])
    ci = cands[best]["metrics"][metric].get("ci")
    text = (
        f"On the headline metric **{metric}**, **{best}** has the highest mean, {means[best]:.3f} {_ci(ci)}."
    )
    entries = (scores.get("statistics") or {}).get("comparisons", {}).get(metric) or []
    sig = [e for e in entries if e.get("significant")]
    against_best = [e for e in entries if best in (e["a"], e["b"])]
    if len(means) > 1:
        if not sig:
            text += (
                " No difference between candidates is significant after Holm correction: on these questions the "
                "ranking could be luck of the sample."
            )
        else:
            parts = []
            for e in sig:
                loser = e["b"] if e["better"] == e["a"] else e["a"]
                parts.append(
                    f"{e['better']} beats {loser} by {abs(e['delta']):.3f} (p_holm = {e['p_holm']:.4f})"
                )
            text += " Significant after Holm correction: " + "; ".join(parts) + "."
            unclear = [e for e in against_best if not e.get("significant")]
            if unclear:
                others = ", ".join(e["b"] if e["a"] == best else e["a"] for e in unclear)
                text += f" {best} is not significantly better than {others}."
    return text


def build_report(run: Any) -> list[_Block]:
    """The report's blocks for a run (a :class:`~bakeoff.run.store.RunInfo` with scores)."""
    scores = run.scores or {}
    manifest = run.manifest
    blocks: list[_Block] = [_Block("h1", f"bakeoff report — {run.recipe} · {run.run_id}")]
    cands = list(scores.get("candidates", {}))
    blocks.append(
        _Block(
            "p",
            f"Status **{run.status}**, started {manifest.get('started_at', '?')}; task {scores.get('task')}, "
            f"{scores.get('n_questions')} questions, {len(cands)} candidates; headline metric "
            f"**{scores.get('headline')}**.",
        )
    )
    blocks.append(_Block("h2", "Verdict"))
    blocks.append(_Block("p", _verdict(scores)))

    info = manifest.get("candidates", {})
    if info:
        blocks.append(_Block("h2", "Candidates"))
        blocks.append(
            _Block(
                "table",
                headers=["candidate", "agent", "model", "answer time (s)", "errors"],
                rows=[
                    [
                        c,
                        str(info.get(c, {}).get("agent", "")),
                        str(info.get(c, {}).get("model", "")),
                        _f(info.get(c, {}).get("answer_s"), 1),
                        str(scores["candidates"][c].get("errors", 0)),
                    ]
                    for c in cands
                ],
            )
        )

    level = (scores.get("statistics") or {}).get("method", {}).get("confidence", 0.95)
    blocks.append(_Block("h2", "Scores"))
    rows = []
    for metric in scores.get("metrics", []):
        row = [f"**{metric}**" if metric == scores.get("headline") else metric]
        for c in cands:
            e = scores["candidates"][c]["metrics"].get(metric, {})
            cell = f"{_f(e.get('mean'))} {_ci(e.get('ci'), 2)}".strip()
            if e.get("missing"):
                cell += f" ({e['missing']} missing)"
            row.append(cell)
        rows.append(row)
    blocks.append(_Block("table", headers=["metric", *cands], rows=rows))
    blocks.append(
        _Block("note", f"Mean over answers with a value, with its {level:.0%} percentile bootstrap interval.")
    )
    missing = [
        (c, m, reason, n)
        for c in cands
        for m, e in scores["candidates"][c]["metrics"].items()
        for reason, n in (e.get("missing_reasons") or {}).items()
    ]
    if missing:
        blocks.append(_Block("h3", "Missing values and why"))
        blocks.append(
            _Block(
                "table",
                headers=["candidate", "metric", "reason", "answers"],
                rows=[[c, m, r, str(n)] for c, m, r, n in missing],
            )
        )

    for name, chart, alt in (
        ("headline", _chart_headline, "headline metric per candidate with bootstrap intervals"),
        ("differences", _chart_differences, "paired differences on the headline metric"),
        ("means", _chart_means, "every metric per candidate with bootstrap intervals"),
        ("distribution", _chart_distribution, "headline metric per question"),
        ("cost", _chart_cost, "headline metric against latency"),
    ):
        png = chart(scores)
        if png:
            blocks.append(_Block("img", alt, name=name, png=png))

    comparisons = (scores.get("statistics") or {}).get("comparisons", {})
    if any(comparisons.values()):
        method = scores["statistics"]["method"]
        blocks.append(_Block("h2", "Paired comparisons"))
        blocks.append(
            _Block(
                "p",
                f"Δ = mean(a − b) on the questions both candidates have a value for, with its {level:.0%} paired "
                f"bootstrap interval; p from a paired permutation test (McNemar's exact test for accuracy, a "
                f"paired bootstrap for macro_f1), Holm-corrected over the pairs of each metric. Significant = "
                f"p_holm < {method.get('alpha')}.",
            )
        )
        order = [scores.get("headline")] + [m for m in comparisons if m != scores.get("headline")]
        rows = []
        for metric in order:
            for e in comparisons.get(metric) or []:
                rows.append(
                    [
                        metric,
                        f"{e['a']} vs {e['b']}",
                        str(e.get("n")),
                        f"{e['delta']:+.3f}",
                        _ci(e.get("ci")),
                        f"{e['p']:.4f}",
                        f"{e['p_holm']:.4f}",
                        f"yes: {e['better']} better" if e.get("significant") and e.get("better") else "no",
                    ]
                )
        blocks.append(
            _Block(
                "table",
                headers=["metric", "a vs b", "n", "Δ", f"{level:.0%} CI", "p", "p_holm", "significant"],
                rows=rows,
            )
        )

    judge = scores.get("judge")
    if judge:
        blocks.append(_Block("h2", "Judge"))
        blocks.append(
            _Block(
                "p",
                f"Judge model `{judge.get('model')}` (max_new_tokens {judge.get('max_new_tokens')}, temperature "
                f"{judge.get('temperature')}, structured output {judge.get('structured_output')}); "
                f"{judge.get('calls', 0)} calls, {judge.get('cache_hits', 0)} cache hits, {judge.get('seconds', 0)} s. "
                "A verdict that could not be parsed counts as missing, never as 0.",
            )
        )
        rows = [
            [
                m,
                str(v.get("asked")),
                str(v.get("calls")),
                str(v.get("cache_hits")),
                str(v.get("parse_failures")),
                "—" if v.get("parse_failure_rate") is None else f"{v['parse_failure_rate']:.0%}",
                str(v.get("judge_errors")),
            ]
            for m, v in judge.get("metrics", {}).items()
        ]
        pw = scores.get("judge_pairwise")
        if pw:
            rows.append(
                [
                    "judge_rubric (pairwise)",
                    str(pw.get("asked")),
                    str(pw.get("calls")),
                    str(pw.get("cache_hits")),
                    str(pw.get("parse_failures")),
                    "—" if pw.get("parse_failure_rate") is None else f"{pw['parse_failure_rate']:.0%}",
                    str(pw.get("judge_errors")),
                ]
            )
        blocks.append(
            _Block(
                "table",
                headers=[
                    "metric",
                    "asked",
                    "calls",
                    "cached",
                    "unparsed",
                    "parse-failure rate",
                    "judge errors",
                ],
                rows=rows,
            )
        )
        if pw and pw.get("summary"):
            blocks.append(_Block("h3", "Pairwise verdicts (both orders; disagreement = tie)"))
            blocks.append(
                _Block(
                    "table",
                    headers=["pair", "a wins", "b wins", "ties", "of which the orders disagreed", "missing"],
                    rows=[
                        [
                            k,
                            str(v["a_wins"]),
                            str(v["b_wins"]),
                            str(v["ties"]),
                            str(v.get("order_disagreements", 0)),
                            str(v["missing"]),
                        ]
                        for k, v in pw["summary"].items()
                    ],
                )
            )

    analysis = scores.get("error_analysis")
    if analysis:
        blocks.append(_Block("h2", "Error analysis"))
        blocks.append(
            _Block(
                "p",
                f"On {analysis['metric']}: for each candidate, the questions it lost most clearly to the best other "
                f"candidate; then the questions where every candidate scored below {analysis['fail_below']}.",
            )
        )
        for cand, lost in analysis.get("lost", {}).items():
            blocks.append(_Block("h3", f"{cand} — lost to {lost['versus']} on {lost['n_lost']} question(s)"))
            if lost["questions"]:
                blocks.append(
                    _Block(
                        "table",
                        headers=["id", "question", "reference", cand, lost["versus"], "gap"],
                        rows=[
                            [
                                q["question_id"],
                                q["question"],
                                q["reference"],
                                f"{q['answer']} ({q['value']:.2f})",
                                f"{q['other_answer']} ({q['other_value']:.2f})",
                                f"{q['gap']:.2f}",
                            ]
                            for q in lost["questions"][:5]
                        ],
                    )
                )
        fails = analysis.get("all_fail", [])
        blocks.append(_Block("h3", f"Every candidate fails: {len(fails)} question(s)"))
        if fails:
            blocks.append(
                _Block(
                    "table",
                    headers=["id", "question", "reference", *cands],
                    rows=[
                        [
                            q["question_id"],
                            q["question"],
                            q["reference"],
                            *[f"{q['answers'].get(c, '')} ({_f(q['values'].get(c), 2)})" for c in cands],
                        ]
                        for q in fails[:10]
                    ],
                )
            )
            if len(fails) > 10:
                blocks.append(
                    _Block("note", f"{len(fails) - 10} more in scores.json (error_analysis.all_fail).")
                )

    blocks.append(_Block("h2", "Cost"))
    blocks.append(
        _Block(
            "table",
            headers=[
                "candidate",
                "p50 s/answer",
                "p95 s/answer",
                "prompt tokens",
                "completion tokens",
                "truncated",
            ],
            rows=[
                [
                    c,
                    _f((v.get("latency_s") or {}).get("p50"), 2),
                    _f((v.get("latency_s") or {}).get("p95"), 2),
                    str((v.get("tokens") or {}).get("prompt", 0)),
                    str((v.get("tokens") or {}).get("completion", 0)),
                    str(v.get("truncated", 0)),
                ]
                for c, v in scores.get("candidates", {}).items()
            ],
        )
    )
    blocks.append(_Block("h2", "How to read this"))
    blocks.append(
        _Block(
            "p",
            "Every candidate answered the same questions, so candidates are compared question by question. An "
            "interval that excludes 0 and a Holm-corrected p below alpha mean the difference is unlikely to be "
            "luck of the question sample. With few questions nothing is significant however large Δ looks — add "
            "questions before trusting a ranking. Decide the headline metric before reading the numbers: the "
            "correction covers pairs, not a search over metrics.",
        )
    )
    return blocks


# -- rendering ---------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _render_md(blocks: list[_Block], stem: str) -> tuple[str, dict[str, bytes]]:
    lines: list[str] = []
    files: dict[str, bytes] = {}
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "note":
            lines += [f"*{b.text}*", ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            lines.append("|" + "|".join("---" for _ in b.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "img":
            name = f"{stem}-{b.name}.png"
            files[name] = b.png
            lines += [f"![{b.text}]({name})", ""]
    return "\n".join(lines), files


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;display:block;margin:1rem 0}.note{color:#666;font-size:.85rem}
code{background:#f4f4f4;padding:0 .2rem}
"""


def _inline(text: str) -> str:
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _render_html(blocks: list[_Block]) -> str:
    title = next((b.text for b in blocks if b.kind == "h1"), "bakeoff report")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(b.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: Any, path: Path, fmt: Literal["md", "html"]) -> list[Path]:
    """Write the report for ``run`` to ``path`` (Markdown also writes its PNGs beside it).

    Returns:
        Every file written, the report first.

    Raises:
        ValueError: the run has no scores.
    """
    if not run.scores:
        raise ValueError(f"run {run.run_id} has no scores.json (it did not finish); nothing to report")
    blocks = build_report(run)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        path.write_text(_render_html(blocks), encoding="utf-8")
        return [path]
    text, files = _render_md(blocks, path.stem)
    written = [path]
    for name, data in files.items():
        (path.parent / name).write_bytes(data)
        written.append(path.parent / name)
    path.write_text(text, encoding="utf-8")
    return written
