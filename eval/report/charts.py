"""The report's charts, each a PNG (matplotlib's Agg backend: no display needed) or ``None`` when the scores
have nothing to draw."""

from __future__ import annotations

import io

from bakeoff.run.documents.scores import Scores

__all__ = ["CHARTS", "chart_cost", "chart_differences", "chart_distribution", "chart_headline", "chart_means"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _whiskers(means: list[float], cis: list[list[float]]) -> list[list[float]]:
    """Matplotlib's ``[below, above]`` error lengths from intervals (never negative)."""
    return [
        [max(0.0, m - ci[0]) for m, ci in zip(means, cis, strict=True)],
        [max(0.0, ci[1] - m) for m, ci in zip(means, cis, strict=True)],
    ]


def chart_means(scores: Scores) -> bytes | None:
    """Every metric's mean per candidate with its interval (dot and whisker)."""
    metrics, cands = scores.metrics, list(scores.candidates)
    if not metrics or not cands:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(metrics) * max(1, len(cands)) ** 0.5 + 1.2))
    step = 0.7 / max(1, len(cands))
    for k, cand in enumerate(cands):
        ys, xs, cis = [], [], []
        for i, metric in enumerate(metrics):
            entry = scores.entry(cand, metric)
            if entry.mean is None:
                continue
            ys.append(i - 0.35 + step * (k + 0.5))
            xs.append(entry.mean)
            cis.append(entry.ci or [entry.mean, entry.mean])
        ax.errorbar(xs, ys, xerr=_whiskers(xs, cis), fmt="o", capsize=3, label=cand)
    ax.set_yticks(range(len(metrics)), metrics)
    ax.invert_yaxis()
    ax.set_xlabel("mean (whiskers: bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title("All metrics")
    return _figure_png(fig)


def chart_headline(scores: Scores) -> bytes | None:
    """Headline metric: bars with intervals, one per candidate."""
    metric = scores.headline
    means_by = scores.means(metric)
    if not means_by:
        return None
    cands, means = list(means_by), list(means_by.values())
    cis = [scores.entry(c, metric).ci or [m, m] for c, m in means_by.items()]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(cands) + 2), 3.6))
    ax.bar(cands, means, yerr=_whiskers(means, cis), capsize=6, color="#4C78A8")
    for x, m in enumerate(means):
        ax.annotate(f"{m:.3f}", (x, m), textcoords="offset points", xytext=(12, 3), fontsize="small")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (headline) with bootstrap intervals")
    ax.grid(axis="y", alpha=0.3)
    return _figure_png(fig)


def chart_differences(scores: Scores) -> bytes | None:
    """Forest plot of paired differences on the headline metric; significant ones in colour."""
    metric = scores.headline
    entries = scores.comparisons(metric)
    if not entries:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(entries) + 1.4))
    for i, e in enumerate(entries):
        lo, hi = e.ci
        ax.errorbar(
            [e.delta],
            [i],
            xerr=[[max(0, e.delta - lo)], [max(0, hi - e.delta)]],
            fmt="o",
            color="#D62728" if e.significant else "#7F7F7F",
            capsize=4,
        )
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(entries)), [f"{e.a} − {e.b}" for e in entries])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric} (a − b); red: significant after Holm correction")
    ax.set_title("Paired differences")
    ax.grid(axis="x", alpha=0.3)
    return _figure_png(fig)


def chart_distribution(scores: Scores) -> bytes | None:
    """Per-question headline values per candidate (box plot with the points)."""
    metric = scores.headline
    data, labels = [], []
    for cand, per_q in scores.per_answer.items():
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


def chart_cost(scores: Scores) -> bytes | None:
    """Headline mean against median latency per answer: what each point of quality costs."""
    metric = scores.headline
    pts = []
    for cand, mean in scores.means(metric).items():
        lat = scores.candidates[cand].latency_s.p50
        if lat is not None:
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


# (name, chart, alt text), in the order the report shows them.
CHARTS = (
    ("headline", chart_headline, "headline metric per candidate with bootstrap intervals"),
    ("differences", chart_differences, "paired differences on the headline metric"),
    ("means", chart_means, "every metric per candidate with bootstrap intervals"),
    ("distribution", chart_distribution, "headline metric per question"),
    ("cost", chart_cost, "headline metric against latency"),
)
