"""Error analysis: where a candidate loses, and what nobody gets right.

On the headline metric:

* **lost**: per candidate, the questions it lost most clearly to the *best other* candidate (the other one
  with the highest mean), largest gap first — what to read to see why it is behind;
* **all_fail**: the questions where every candidate scored below ``fail_below`` (or had no value) — usually a
  retrieval gap, a wrong reference or a question the corpus does not answer.

``scores.json`` layout::

    "error_analysis": {
        "metric": "rougeL", "fail_below": 0.5, "higher_is_better": true,
        "lost": {NAME: {"versus": OTHER, "n_lost": 12, "questions": [
            {"question_id", "question", "reference", "answer", "other_answer", "value", "other_value", "gap"}
        ]}},
        "all_fail": [{"question_id", "question", "reference", "values": {NAME: v}, "answers": {NAME: text}}]
    }

Texts are cut to 300 characters; at most ``top`` (10) lost questions are kept per candidate.
"""

from __future__ import annotations

from typing import Any

from bakeoff.run.documents.scores import ErrorAnalysis, FailedQuestion, LostQuestion, LostQuestions, Scores

__all__ = ["error_analysis"]

_TEXT = 300


def _cut(text: Any) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= _TEXT else text[: _TEXT - 1] + "…"


def error_analysis(
    scores: Scores,
    rows_by_candidate: dict[str, list[dict[str, Any]]],
    questions: dict[str, Any],
    *,
    fail_below: float = 0.5,
    top: int = 10,
) -> ErrorAnalysis:
    """Lost and all-fail questions on ``scores.headline`` (see the module docstring).

    Args:
        scores: the scores document so far (``headline``, ``candidates``, ``per_answer``).
        rows_by_candidate: candidate -> answer rows (for the texts).
        questions: question id -> :class:`~bakeoff.core.Question`.
        fail_below: a value below this is a failed answer.
        top: most lost questions kept per candidate.
    """
    from bakeoff.eval import metric_class

    metric = scores.headline
    up = getattr(metric_class(metric), "higher_is_better", True)
    texts = {
        c: {
            r["question_id"]: ("[error] " + str(r["error"])) if r.get("error") else r.get("answer")
            for r in rows
        }
        for c, rows in rows_by_candidate.items()
    }
    means = scores.means(metric)
    lost = {}
    for cand in scores.per_answer:
        others = {c: m for c, m in means.items() if c != cand}
        if others:
            best = max(others, key=lambda c: others[c] if up else -others[c])
            lost[cand] = _lost_to(scores, cand, best, metric, up, questions, texts, top)
    return ErrorAnalysis(
        metric=metric,
        fail_below=fail_below,
        higher_is_better=up,
        lost=lost,
        all_fail=_all_fail(scores, metric, up, fail_below, questions, texts),
    )


def _lost_to(
    scores: Scores,
    cand: str,
    best: str,
    metric: str,
    up: bool,
    questions: dict[str, Any],
    texts: dict[str, dict[str, Any]],
    top: int,
) -> LostQuestions:
    """The questions ``cand`` scored worse on than ``best``, largest gap first."""
    rows = []
    theirs_by_q = scores.per_answer.get(best, {})
    for qid, values in scores.per_answer[cand].items():
        mine, theirs = values.get(metric), theirs_by_q.get(qid, {}).get(metric)
        if mine is None or theirs is None:
            continue
        gap = (theirs - mine) if up else (mine - theirs)
        if gap > 0:
            q = questions.get(qid)
            rows.append(
                LostQuestion(
                    question_id=qid,
                    question=_cut(q.question if q else ""),
                    reference=_cut(q.reference if q else ""),
                    answer=_cut(texts.get(cand, {}).get(qid)),
                    other_answer=_cut(texts.get(best, {}).get(qid)),
                    value=mine,
                    other_value=theirs,
                    gap=gap,
                )
            )
    rows.sort(key=lambda r: (-r.gap, r.question_id))
    return LostQuestions(versus=best, n_lost=len(rows), questions=rows[:top])


def _all_fail(
    scores: Scores,
    metric: str,
    up: bool,
    fail_below: float,
    questions: dict[str, Any],
    texts: dict[str, dict[str, Any]],
) -> list[FailedQuestion]:
    """The questions where every candidate scored below ``fail_below`` (or had no value)."""

    def failed(v: float | None) -> bool:
        return v is None or (v < fail_below if up else v > fail_below)

    per_answer = scores.per_answer
    candidates = list(per_answer)
    out = []
    for qid in dict.fromkeys(q for c in candidates for q in per_answer[c]):
        values = {c: per_answer[c].get(qid, {}).get(metric) for c in candidates}
        if candidates and all(failed(v) for v in values.values()):
            q = questions.get(qid)
            out.append(
                FailedQuestion(
                    question_id=qid,
                    question=_cut(q.question if q else ""),
                    reference=_cut(q.reference if q else ""),
                    values=values,
                    answers={c: _cut(texts.get(c, {}).get(qid)) for c in candidates},
                )
            )
    return out
