"""``judge_rubric``: the judge grades each answer on the recipe's rubric and integer scale; optionally it also
compares candidates two at a time (``rubric.pairwise``), in both orders.

The judge is asked for JSON (``{"score": ..., "reason": ...}`` or ``{"winner": "A"|"B"|"tie", ...}``), with
the structured-output mode the judge spec sets; :func:`parse_grade` and :func:`parse_winner` also read
replies that wrap the JSON in prose. Calls, cache and failure rules: :mod:`bakeoff.eval.judged`.
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from typing import Any

from bakeoff.eval.judged import JudgedMetric, ask_judge
from bakeoff.eval.metrics import MetricResult, Sample

__all__ = ["JudgeRubric", "parse_grade", "parse_winner"]

_GRADE_SYSTEM = (
    "You are a strict, fair grader. You grade one answer to a question using the rubric and the reference "
    "answer. Reply with JSON only."
)
_GRADE_USER = """Rubric: {criteria}
Grades: integers from {low} (worst) to {high} (best).

Question: {question}
Reference answer: {reference}
Answer to grade: {response}

Reply with JSON only: {{"score": <integer {low}-{high}>, "reason": "<one short sentence>"}}"""

_PAIR_SYSTEM = (
    "You are a strict, fair judge. You compare two answers to the same question using the rubric and the "
    "reference answer. Reply with JSON only."
)
_PAIR_USER = """Rubric: {criteria}

Question: {question}
Reference answer: {reference}

Answer A: {first}

Answer B: {second}

Which answer is better by the rubric? Reply with JSON only: {{"winner": "A" or "B" or "tie", "reason": "<one short sentence>"}}"""


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    fenced = re.search(r"\{.*\}", text, flags=re.S)
    for candidate in (text, fenced.group(0) if fenced else None):
        if not candidate:
            continue
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _snippet(text: str) -> str:
    one = " ".join(text.split())
    return one[:120] + ("…" if len(one) > 120 else "")


def parse_grade(text: str, low: int, high: int) -> tuple[int | None, str]:
    """The integer grade in a judge reply, or ``None`` and why not."""
    obj = _json_object(text)
    raw: Any = obj.get("score") if obj is not None else None
    if raw is None:
        found = re.search(r"score\W{0,4}(-?\d+)", text, flags=re.I) or re.fullmatch(r"\s*(-?\d+)\s*", text)
        raw = found.group(1) if found else None
    if raw is None:
        return None, f"no grade in judge reply: {_snippet(text)!r}"
    try:
        grade = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
    except (TypeError, ValueError):
        grade = None
    if grade is None:
        return None, f"grade {raw!r} is not an integer"
    if not low <= grade <= high:
        return None, f"grade {grade} outside the {low}-{high} scale"
    reason = obj.get("reason", "") if obj else ""
    return grade, str(reason)[:300] if isinstance(reason, str) else ""


def parse_winner(text: str) -> tuple[str | None, str]:
    """``"A"``, ``"B"`` or ``"tie"`` from a pairwise judge reply, or ``None`` and why not."""
    obj = _json_object(text)
    raw: Any = obj.get("winner") if obj is not None else None
    if raw is None:
        found = re.search(r"winner\W{0,4}(A|B|tie)\b", text, flags=re.I)
        raw = found.group(1) if found else None
    if isinstance(raw, str) and raw.strip().lower() in ("a", "b", "tie"):
        value = raw.strip().lower()
        return ("tie" if value == "tie" else value.upper()), ""
    return None, f"no winner (A, B or tie) in judge reply: {_snippet(text)!r}"


class JudgeRubric(JudgedMetric):
    """The judge grades each answer on the recipe's rubric and integer scale, normalised to [0, 1].

    With ``rubric.pairwise``, :meth:`pairwise` also compares candidates two at a time, asking in both orders
    (position bias is real in small and large judges alike); orders that disagree make a tie.
    """

    name = "judge_rubric"
    task = "qa"
    needs = ("judge", "rubric")
    description = "LLM judge grade on the recipe's rubric and scale, normalised 0-1"

    @property
    def rubric(self):
        rubric = self.judge.spec.rubric if self.judge is not None else None
        if rubric is None:
            raise ValueError("judge_rubric needs `judge.rubric` (criteria and scale) in the recipe")
        return rubric

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        if not sample.response.strip():
            return MetricResult(0.0, "empty response: lowest grade")
        low, high = self.rubric.scale
        return {
            "criteria": self.rubric.criteria,
            "scale": [low, high],
            "question": sample.question,
            "reference": sample.reference,
            "response": sample.response,
        }

    async def _ask(self, client: Any, system: str, user: str, schema: dict[str, Any], name: str) -> str:
        kwargs: dict[str, Any] = {}
        fmt = self.judge.response_format(schema, name)
        if fmt is not None:
            kwargs["response_format"] = fmt
        reply = await client.chat.completions.create(
            model=self.judge.model_name,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=self.judge.spec.max_new_tokens,
            temperature=self.judge.spec.temperature,
            **kwargs,
        )
        return reply.choices[0].message.content or ""

    async def judge_one(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        low, high = inputs["scale"]
        schema = {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "enum": list(range(low, high + 1))},
                "reason": {"type": "string"},
            },
            "required": ["score", "reason"],
        }
        text = await self._ask(
            client,
            _GRADE_SYSTEM,
            _GRADE_USER.format(low=low, high=high, **{k: v for k, v in inputs.items() if k != "scale"}),
            schema,
            "grade",
        )
        grade, reason = parse_grade(text, low, high)
        if grade is None:
            return MetricResult(None, reason, failure="parse")
        return MetricResult((grade - low) / (high - low), reason)

    # -- pairwise ---------------------------------------------------------------------------------------------
    async def _verdict(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        schema = {
            "type": "object",
            "properties": {
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
                "reason": {"type": "string"},
            },
            "required": ["winner", "reason"],
        }
        text = await self._ask(client, _PAIR_SYSTEM, _PAIR_USER.format(**inputs), schema, "verdict")
        winner, why = parse_winner(text)
        if winner is None:
            return MetricResult(None, why, failure="parse")
        return MetricResult({"A": 1.0, "B": 0.0, "tie": 0.5}[winner], text.strip()[:300])

    def pairwise(self, samples: dict[str, dict[str, Sample]]) -> dict[str, Any]:
        """Judge every pair of candidates on every shared question, in both orders.

        Args:
            samples: candidate -> question id -> sample.

        Returns:
            The ``judge_pairwise`` block of scores.json: ``comparisons`` is a list of
            ``[candidate_a, candidate_b, outcome]`` (1.0 = a wins, 0.0 = b wins, 0.5 = tie), one per question
            and pair with a usable verdict, ready for a Bradley–Terry fit; ``per_question`` has both orders'
            verdicts; ``summary`` counts wins per pair; missing verdicts keep their reasons.
        """
        jobs: list[tuple[str, str, str, int, dict[str, Any]]] = []  # (a, b, qid, order, inputs)
        for a, b in combinations(list(samples), 2):
            for qid, sa in samples[a].items():
                sb = samples[b].get(qid)
                if sb is None:
                    continue
                base = {"criteria": self.rubric.criteria, "question": sa.question, "reference": sa.reference}
                jobs.append((a, b, qid, 0, {**base, "first": sa.response, "second": sb.response}))
                jobs.append((a, b, qid, 1, {**base, "first": sb.response, "second": sa.response}))
        cache_keys = [{"version": self.version, **inputs} for *_, inputs in jobs]
        results = ask_judge(
            self.judge, "judge_rubric_pairwise", cache_keys, [inputs for *_, inputs in jobs], self._verdict
        )
        return self._collect(jobs, results)

    @staticmethod
    def _collect(jobs, results) -> dict[str, Any]:
        by_pair_q: dict[tuple[str, str, str], list[MetricResult | None]] = {}
        for (a, b, qid, order, _), result in zip(jobs, results, strict=True):
            by_pair_q.setdefault((a, b, qid), [None, None])[order] = result
        comparisons: list[list[Any]] = []
        per_question: list[dict[str, Any]] = []
        summary: dict[str, dict[str, int]] = {}
        missing: dict[str, int] = {}
        asked = parse_failures = judge_errors = cache_hits = 0
        for (a, b, qid), (first, second) in by_pair_q.items():
            counts = summary.setdefault(
                f"{a} vs {b}", {"a_wins": 0, "b_wins": 0, "ties": 0, "order_disagreements": 0, "missing": 0}
            )
            for r in (first, second):
                asked += 1
                cache_hits += int(bool(r and r.cached))
                parse_failures += int(bool(r and r.failure == "parse"))
                judge_errors += int(bool(r and r.failure == "judge"))
            if first is None or second is None or first.value is None or second.value is None:
                bad = next(r for r in (first, second) if r is None or r.value is None)
                reason = bad.reason if bad is not None else "no verdict"
                missing[reason] = missing.get(reason, 0) + 1
                counts["missing"] += 1
                per_question.append({"question_id": qid, "a": a, "b": b, "outcome": None, "reason": reason})
                continue
            # first order shows a as "A"; second shows b as "A", so flip it back to a's view.
            v1, v2 = first.value, 1.0 - second.value
            outcome = v1 if v1 == v2 else 0.5  # the orders disagree: position bias, call it a tie
            comparisons.append([a, b, outcome])
            counts["a_wins" if outcome == 1.0 else "b_wins" if outcome == 0.0 else "ties"] += 1
            counts["order_disagreements"] += int(v1 != v2)
            per_question.append(
                {
                    "question_id": qid,
                    "a": a,
                    "b": b,
                    "outcome": outcome,
                    "orders": [v1, v2],
                    "consistent": v1 == v2,
                }
            )
        return {
            "metric": "judge_rubric",
            "outcome_scale": "1.0 = a wins, 0.0 = b wins, 0.5 = tie (also when the two orders disagree)",
            "comparisons": comparisons,
            "per_question": per_question,
            "summary": summary,
            "asked": asked,
            "cache_hits": cache_hits,
            "parse_failures": parse_failures,
            "judge_errors": judge_errors,
            "parse_failure_rate": parse_failures / asked if asked else None,
            **({"missing_reasons": missing} if missing else {}),
        }
