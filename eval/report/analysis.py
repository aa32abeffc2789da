"""The report's analysis sections: the headline per document (a heatmap and a table, then per
``eval.slice_by`` field), why answers failed, and the retention set."""

from __future__ import annotations

from bakeoff.eval.formatting import interval, number
from bakeoff.eval.report.blocks import Block
from bakeoff.run.documents.analysis import CAUSES
from bakeoff.run.documents.scores import Scores

__all__ = ["analysis_sections", "by_source_section", "causes_section", "chart_heatmap", "retention_section"]


def analysis_sections(scores: Scores) -> list[Block]:
    """Every analysis section the scores have, in report order."""
    return [*by_source_section(scores), *causes_section(scores), *retention_section(scores)]


def chart_heatmap(scores: Scores, field: str = "source") -> bytes | None:
    """A heatmap of the headline: a row per document (or value of ``field``), a column per candidate, each
    cell annotated with its mean (``None`` when the run has no such slice)."""
    slices = scores.slices
    table = slices.table(field) if slices is not None else {}
    if not table:
        return None
    from bakeoff.eval.report.charts import _figure_png, _plt

    values = list(table)
    cands = list(next(iter(table.values())))
    grid = [[(table[v].get(c).mean if table[v].get(c) else None) for c in cands] for v in values]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(cands) + 3, 0.45 * len(values) + 1.4))
    data = [[float("nan") if x is None else x for x in row] for row in grid]
    finite = [x for row in grid for x in row if x is not None]
    image = ax.imshow(
        data, cmap="RdYlGn", vmin=min(0.0, *finite) if finite else 0, vmax=max(1.0, *finite) if finite else 1
    )
    ax.set_xticks(range(len(cands)), cands, rotation=30, ha="right")
    ax.set_yticks(range(len(values)), values)
    for i, row in enumerate(grid):
        for j, x in enumerate(row):
            ax.text(j, i, "—" if x is None else f"{x:.2f}", ha="center", va="center", fontsize="small")
    fig.colorbar(image, ax=ax, label=slices.metric)
    ax.set_title(f"{slices.metric} per {'document' if field == 'source' else field}")
    return _figure_png(fig)


def by_source_section(scores: Scores) -> list[Block]:
    """What each candidate knows per document: a heatmap and a table, then a table per slice field."""
    slices = scores.slices
    if slices is None or not slices.by:
        return []
    blocks = [
        Block("h2", "Per document"),
        Block(
            "p",
            f"Mean **{slices.metric}** per source document of the questions (then per question field named "
            "in `eval.slice_by`): an option can absorb one document and miss another.",
        ),
    ]
    png = chart_heatmap(scores)
    if png:
        blocks.append(Block("img", f"{slices.metric} per document and candidate", name="by-source", png=png))
    for field, table in slices.by.items():
        cands = list(next(iter(table.values()), {}))
        label = "document" if field == "source" else field
        rows = [
            [value, str(slices.questions.get(field, {}).get(value, "")), *[_cell(row.get(c)) for c in cands]]
            for value, row in table.items()
        ]
        if field != "source":
            blocks.append(Block("h3", f"By {field}"))
        blocks.append(Block("table", headers=[label, "questions", *cands], rows=rows))
    return blocks


def _cell(cell) -> str:
    if cell is None or cell.mean is None:
        return "—"
    return " ".join(p for p in (number(cell.mean), interval(cell.ci)) if p)


def causes_section(scores: Scores) -> list[Block]:
    """Per candidate, how many answers failed and why."""
    causes = scores.failure_causes
    if causes is None or not causes.counts:
        return []
    seen = [c for c in CAUSES if any(c in counts for counts in causes.counts.values())]
    rows = [
        [
            cand,
            f"{causes.failed.get(cand, 0)}/{causes.answered.get(cand, 0)}",
            *[str(n.get(c, 0)) for c in seen],
        ]
        for cand, n in causes.counts.items()
    ]
    return [
        Block("h2", "Why answers failed"),
        Block(
            "p",
            f"An answer failed when its {causes.metric} is below {causes.fail_below} (`eval.fail_below`). "
            "*retrieval miss*: the supporting passage was not among the retrieved chunks; *context ignored*: it "
            "was, and the answer is still wrong; *not learned*: a closed-book candidate got it wrong; "
            "*truncated*: cut at max_new_tokens; *error*: no answer.",
        ),
        Block("table", headers=["candidate", "failed", *seen], rows=rows),
    ]


def retention_section(scores: Scores) -> list[Block]:
    """The retention set: each candidate's mean and its paired difference from the base candidate."""
    retention = scores.retention
    if retention is None:
        return []
    from bakeoff.eval.retention import retention_sentences

    losses = {x.candidate: x for x in retention.comparisons}
    rows = []
    for cand, cell in retention.candidates.items():
        loss = losses.get(cand)
        if cand == retention.base or loss is None:
            rows.append([cand, number(cell.mean), "base" if cand == retention.base else "—", "", ""])
            continue
        mark = "lost" if loss.lost else "gained" if loss.significant else "n.s."
        rows.append(
            [cand, number(cell.mean), f"{loss.delta:+.3f} {interval(loss.ci, 3)}", f"{loss.p_holm:.4f}", mark]
        )
    sentences = retention_sentences(scores)
    summary = (
        "Significant losses: " + "; ".join(sentences) + "."
        if sentences
        else f"No candidate is significantly worse than {retention.base or 'the base candidate'} on retention."
    )
    return [
        Block("h2", "Retention"),
        Block(
            "p",
            f"{retention.n_questions} general questions (`{retention.questions}`) answered by every candidate and "
            f"scored on their own with {retention.metric}; each candidate is compared with {retention.base} "
            "question by question (paired permutation test, Holm-corrected). " + summary,
        ),
        Block("table", headers=["candidate", "mean", "Δ vs base [CI]", "p_holm", ""], rows=rows),
    ]
