"""What each candidate knows per document: the headline metric per source document, and per any string field of
the questions the recipe names (``eval.slice_by: [type]``), for every candidate.

A question's document is its ``source``; without one, the document of a retrieved chunk (any candidate's) that
holds its ``passage``; else ``(unknown)``. A fine-tune can absorb one contract and miss another: the mean over
all questions hides that, the per-document split shows it.

``scores.json`` layout (:class:`~bakeoff.run.documents.analysis.Slices`)::

    "slices": {"metric": "rougeL",
               "by": {"source": {"msa.md": {"lora": {"mean": 0.61, "n": 12, "ci": [0.5, 0.7]}, ...}, ...},
                      "type": {...}},
               "questions": {"source": {"msa.md": 12, ...}, ...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakeoff.core import Question
from bakeoff.eval.formatting import number
from bakeoff.run.documents.analysis import SliceCell, Slices
from bakeoff.run.documents.scores import Scores

__all__ = [
    "UNKNOWN",
    "by_source_tables",
    "document_of",
    "missing_slice_fields",
    "slice_scores",
    "weak_document_sentences",
]

UNKNOWN = "(unknown)"
"""The slice of questions without a value for a field (no source found, no ``type``)."""

Row = dict[str, Any]


def document_of(question: Question, rows: Sequence[Row]) -> str | None:
    """The document a question is about: its ``source``, else the source of a retrieved chunk (in any of
    ``rows``, the answers to it) that holds its ``passage``; ``None`` when neither says."""
    if question.source:
        return question.source
    if not question.passage:
        return None
    from bakeoff.eval.retrieval import context_matches

    for row in rows:
        for context in row.get("contexts") or []:
            if (
                isinstance(context, Mapping)
                and context.get("source")
                and context_matches(context, passage=question.passage, source=None)
            ):
                return str(context["source"])
    return None


def _groups(
    questions: Sequence[Question], rows_by_candidate: Mapping[str, Sequence[Row]], fields: Sequence[str]
) -> dict[str, dict[str, list[str]]]:
    """Field -> value -> question ids, ``source`` first."""
    answers: dict[str, list[Row]] = {}
    for rows in rows_by_candidate.values():
        for row in rows:
            answers.setdefault(row.get("question_id", ""), []).append(row)
    groups: dict[str, dict[str, list[str]]] = {}
    for name in ("source", *[f for f in fields if f != "source"]):
        by_value: dict[str, list[str]] = {}
        for q in questions:
            value = document_of(q, answers.get(q.id, [])) if name == "source" else q.fields.get(name)
            by_value.setdefault(value or UNKNOWN, []).append(q.id)
        if name != "source" or set(by_value) != {UNKNOWN}:
            groups[name] = dict(sorted(by_value.items(), key=lambda kv: (kv[0] == UNKNOWN, kv[0])))
    return groups


def slice_scores(
    scores: Scores,
    questions: Sequence[Question],
    rows_by_candidate: Mapping[str, Sequence[Row]],
    *,
    fields: Sequence[str] = (),
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Slices | None:
    """The headline per document and per named field, for every candidate (see the module docstring).

    Args:
        scores: the scores so far (``headline``, ``per_answer``).
        questions: the evaluation set.
        rows_by_candidate: candidate -> answer rows (their retrieved contexts locate passage-only questions).
        fields: extra question fields to slice by (``eval.slice_by``).
        resamples, confidence, seed: the bootstrap of each cell's interval.

    Returns:
        The ``slices`` section; ``None`` when no question has a document or a named field.
    """
    from bakeoff.eval.stats import mean_interval

    metric = scores.headline
    groups = _groups(questions, rows_by_candidate, fields)
    if not groups or metric is None:
        return None
    by: dict[str, dict[str, dict[str, SliceCell]]] = {}
    for name, by_value in groups.items():
        by[name] = {}
        for value, qids in by_value.items():
            row: dict[str, SliceCell] = {}
            for cand, per_q in scores.per_answer.items():
                values = [v for q in qids if (v := per_q.get(q, {}).get(metric)) is not None]
                if not values:
                    row[cand] = SliceCell(mean=None, n=0)
                    continue
                mean, lo, hi = mean_interval(values, resamples=resamples, confidence=confidence, seed=seed)
                row[cand] = SliceCell(mean=mean, n=len(values), ci=[lo, hi] if len(values) > 1 else None)
            by[name][value] = row
    return Slices(
        metric=metric,
        by=by,
        questions={name: {v: len(q) for v, q in by_value.items()} for name, by_value in groups.items()},
    )


def _cell_style(mean: float | None, low: float, high: float) -> str:
    """A heat colour for a terminal cell: red (worst of the row's range) to green (best)."""
    if mean is None or high - low < 1e-12:
        return ""
    share = (mean - low) / (high - low)
    return "green" if share > 0.66 else "yellow" if share > 0.33 else "red"


def by_source_tables(scores: Scores | Mapping[str, Any]) -> list:
    """One rich Table per slice field (``source`` first): a row per value, a column per candidate, each cell
    the headline mean with its question count, coloured from the lowest to the highest mean of the table."""
    from rich.table import Table

    slices = Scores.of(scores).slices
    if slices is None:
        return []
    out = []
    for name, by_value in slices.by.items():
        cands = list(next(iter(by_value.values()), {}))
        means = [c.mean for row in by_value.values() for c in row.values() if c.mean is not None]
        low, high = (min(means), max(means)) if means else (0.0, 0.0)
        label = "document" if name == "source" else name
        table = Table(title=f"{slices.metric} by {label}", title_justify="left")
        table.add_column(label, overflow="fold")
        table.add_column("questions", justify="right")
        for cand in cands:
            table.add_column(cand, justify="right")
        for value, row in by_value.items():
            cells = []
            for cand in cands:
                cell = row.get(cand) or SliceCell()
                style = _cell_style(cell.mean, low, high)
                text = "—" if cell.mean is None else number(cell.mean)
                cells.append(f"[{style}]{text}[/]" if style else text)
            table.add_row(value, str(slices.questions.get(name, {}).get(value, "")), *cells)
        table.caption = f"mean {slices.metric} per {label}; green = best, red = worst of this table"
        out.append(table)
    return out


def weak_document_sentences(scores: Scores | Mapping[str, Any]) -> list[str]:
    """One sentence per candidate and document whose headline interval lies wholly below the candidate's
    overall mean (a document it did not learn), e.g. ``"lora: 0.12 [0.05, 0.20] on annex-b.md against 0.45
    overall"``; only when the questions come from two documents or more."""
    scores = Scores.of(scores)
    slices = scores.slices
    table = slices.table("source") if slices is not None else {}
    if len([v for v in table if v != UNKNOWN]) < 2:
        return []
    out = []
    for cand, overall in scores.means(slices.metric).items():
        for value, row in table.items():
            cell = row.get(cand)
            if value != UNKNOWN and cell is not None and cell.ci is not None and cell.ci[1] < overall:
                out.append(
                    f"{cand}: {cell.mean:.2f} [{cell.ci[0]:.2f}, {cell.ci[1]:.2f}] on {value} against "
                    f"{overall:.2f} overall"
                )
    return out


def missing_slice_fields(questions: Sequence[Question], fields: Sequence[str]) -> str | None:
    """A one-line problem when ``eval.slice_by`` names a field no question has (``None`` when all are there)."""
    present = {k for q in questions for k in q.fields}
    absent = [f for f in fields if f != "source" and f not in present]
    if not absent:
        return None
    found = ", ".join(sorted(present)) or "none"
    return f"eval.slice_by: no question has the field(s) {', '.join(absent)} (string fields found: {found})"
