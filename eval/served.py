"""Is the served model the one you scored? Parity of a fine-tune's served forms with the training-time model.

For each served form (``lora@q8_0``, ``lora@ollama-q8_0``; see :mod:`bakeoff.run.serve`) against the candidate
it was exported from, over the questions both answered:

* **agreement** — the share of answers identical to the training-time model's (both decode greedily, so an
  exact export answers identically), and the share whose headline value moved by more than a tolerance;
* **paired difference** on the headline metric — mean of served minus trained per question, a percentile
  bootstrap interval and a paired sign-flip permutation test (:func:`bakeoff.eval.stats.paired_comparison`);
  a significant drop is named with its likely cause and the answers that changed most;
* **diagnosis** — a form that fails outright (answers that run to the token limit, contain role markers, or
  are empty, far more often than the trained model's) is reported as a template/EOS mismatch with the
  template that was sent; it needs at least two answers to judge.

:func:`served_warnings` turns the result into the sentences the verdict, ``bakeoff show``, the report and the
console print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakeoff.run.documents.scores import Scores
from bakeoff.run.documents.served import ChangedAnswer, ServedDiagnosis, ServedParity

__all__ = ["ROLE_MARKERS", "diagnose", "served_parity", "served_rows", "served_table", "served_warnings"]

# Turn and role markers of the chat formats bakeoff knows; one in an answer means the turn was not ended.
ROLE_MARKERS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "[INST]",
    "[/INST]",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|end|>",
    "<|endoftext|>",
    "\nuser\n",
    "\nassistant\n",
    "\nUser:",
    "\nAssistant:",
    "### Instruction",
)
MIN_ANSWERS = 2  # a diagnosis needs at least this many answers
FAILING_SHARE = 0.5  # a form fails outright when at least half its answers show a sign ...
OVER_TRAINED = 0.25  # ... and that share exceeds the trained model's by this much
TOP_CHANGED = 5
Row = Mapping[str, Any]


def _signs(row: Row, markers: Sequence[str]) -> tuple[bool, bool, bool]:
    text = str(row.get("answer") or "")
    marked = any(m and m in text for m in markers) or text.lstrip().lower().startswith(("assistant", "user:"))
    return bool(row.get("truncated")), marked, not text.strip()


def diagnose(
    rows: Sequence[Row],
    trained_rows: Sequence[Row],
    *,
    template: str = "",
    stop: Sequence[str] = (),
) -> ServedDiagnosis | None:
    """A template/EOS-mismatch diagnosis of a served form's answers, or ``None`` when it does not fail outright.

    Args:
        rows: the served form's answer rows (``answer``, ``truncated``; rows with an ``error`` are left out).
        trained_rows: the training-time model's rows for the same questions (the baseline rate of the signs).
        template: the template that was sent, quoted in the diagnosis.
        stop: its stop tokens (also searched for in the answers).
    """
    markers = tuple(dict.fromkeys((*stop, *ROLE_MARKERS)))
    judged = [r for r in rows if not r.get("error")]
    if len(judged) < MIN_ANSWERS:
        return None
    signs = [_signs(r, markers) for r in judged]
    base = [_signs(r, markers) for r in trained_rows if not r.get("error")]
    share = sum(any(s) for s in signs) / len(signs)
    trained_share = sum(any(s) for s in base) / len(base) if base else 0.0
    if share < FAILING_SHARE or share - trained_share < OVER_TRAINED:
        return None
    return ServedDiagnosis(
        n=len(judged),
        to_token_limit=sum(s[0] for s in signs),
        role_markers=sum(s[1] for s in signs),
        empty=sum(s[2] for s in signs),
        trained_share=round(trained_share, 4),
        share=round(share, 4),
        template=template,
        stop=list(stop),
    )


def served_parity(
    scores: Scores,
    answers: Mapping[str, Sequence[Row]],
    served: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    permutations: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, ServedParity]:
    """Compare every served form with its training-time candidate; stored in ``scores.served`` and returned.

    Args:
        scores: the scored run (``headline``, ``per_answer``).
        answers: candidate -> answer rows (as in ``answers.jsonl``).
        served: served form -> its facts (``of``, ``form``, ``engine``, ``tolerance``, ``template``, ``stop``;
            the manifest's ``served`` block). Forms without answers (an export that failed) are left out.
    """
    from bakeoff.eval import metric_class
    from bakeoff.eval.stats import paired_comparison

    metric = scores.headline
    up = bool(getattr(metric_class(metric), "higher_is_better", True)) if metric else True
    out: dict[str, ServedParity] = {}
    for name, facts in served.items():
        parent = str(facts.get("of") or "")
        if name not in answers or parent not in answers:
            continue
        mine = {r["question_id"]: r for r in answers[name]}
        theirs = {r["question_id"]: r for r in answers[parent]}
        shared = [q for q in theirs if q in mine and not mine[q].get("error") and not theirs[q].get("error")]
        tolerance = float(facts.get("tolerance", 0.1))
        parity = ServedParity(
            candidate=parent,
            form=str(facts.get("form") or ""),
            engine=str(facts.get("engine") or ""),
            metric=metric,
            n=len(shared),
            tolerance=tolerance,
        )
        same = sum(_text(mine[q]) == _text(theirs[q]) for q in shared)
        parity.identical = same
        parity.identical_share = round(same / len(shared), 4) if shared else None
        a_vals = scores.per_answer.get(name, {})
        b_vals = scores.per_answer.get(parent, {})
        paired = [
            (q, a_vals[q].get(metric), b_vals[q].get(metric))
            for q in shared
            if q in a_vals and q in b_vals and metric
        ]
        paired = [(q, a, b) for q, a, b in paired if a is not None and b is not None]
        if paired:
            parity.moved = sum(abs(a - b) > tolerance for _, a, b in paired)
            parity.moved_share = round(parity.moved / len(paired), 4)
            stats = paired_comparison(
                [a for _, a, _ in paired],
                [b for _, _, b in paired],
                resamples=resamples,
                permutations=permutations,
                confidence=confidence,
                seed=seed,
            )
            parity.mean_served, parity.mean_trained = stats["mean_a"], stats["mean_b"]
            parity.delta, parity.ci, parity.p = stats["delta"], stats["ci"], stats["p"]
            worse = stats["delta"] < 0 if up else stats["delta"] > 0
            parity.significant_drop = bool(worse and stats["p"] < alpha)
            parity.most_changed = _most_changed(paired, mine, theirs)
        parity.diagnosis = diagnose(
            [mine[q] for q in theirs if q in mine],
            [theirs[q] for q in theirs if q in mine],
            template=str(facts.get("template") or ""),
            stop=list(facts.get("stop") or []),
        )
        if parity.significant_drop or parity.diagnosis is not None:
            parity.cause = _cause(parity)
        out[name] = parity
    scores.served = out
    return out


def _text(row: Row) -> str:
    return str(row.get("answer") or "").strip()


def _cut(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _most_changed(
    paired: list[tuple[str, float, float]], mine: Mapping[str, Row], theirs: Mapping[str, Row]
) -> list[ChangedAnswer]:
    ranked = sorted(paired, key=lambda x: -abs(x[1] - x[2]))
    return [
        ChangedAnswer(
            question_id=q,
            question=_cut(str(theirs[q].get("question") or "")),
            trained=_cut(_text(theirs[q])),
            served=_cut(_text(mine[q])),
            trained_value=b,
            served_value=a,
            delta=round(a - b, 4),
        )
        for q, a, b in ranked[:TOP_CHANGED]
        if a != b
    ]


def _cause(parity: ServedParity) -> str:
    if parity.diagnosis is not None:
        return "template/EOS mismatch"
    if parity.form in ("q8_0", "q4_k_m"):
        return "quantization loss"
    return "export divergence (the unquantized merge or conversion answers differently)"


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def served_warnings(scores: Scores | Mapping[str, Any] | None) -> list[str]:
    """One sentence per served form that drops significantly or fails outright, e.g.
    ``lora@q4_k_m: −0.06 [−0.09, −0.03] vs lora — quantization loss``, followed by its most changed answer."""
    scores = Scores.of(scores)
    lines: list[str] = []
    for name, p in scores.served.items():
        if not (p.significant_drop or p.diagnosis is not None):
            continue
        if p.delta is not None and p.ci:
            head = f"{name}: {_signed(p.delta)} [{_signed(p.ci[0])}, {_signed(p.ci[1])}] vs {p.candidate}"
            head += f" on {p.metric} (p={p.p:.3g})" if p.p is not None else ""
        else:
            head = f"{name} vs {p.candidate}"
        line = f"{head} — {p.cause or 'served form differs'}"
        d = p.diagnosis
        if d is not None:
            line += (
                f": {d.to_token_limit}/{d.n} answers ran to the token limit, {d.role_markers}/{d.n} contain role "
                f"markers, {d.empty}/{d.n} are empty (trained model: {d.trained_share:.0%} with any sign); "
                f"template sent: {_cut(d.template, 120)!r}"
            )
        if p.most_changed:
            top = p.most_changed[0]
            line += (
                f"; most changed: {top.question_id} ({_signed(top.delta)}): {_cut(top.trained, 60)!r} → "
                f"{_cut(top.served, 60)!r}"
            )
        lines.append(line)
    return lines


def served_rows(scores: Scores | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One plain row per served form (for the terminal table, the report and the console)."""
    scores = Scores.of(scores)
    rows = []
    for name, p in scores.served.items():
        rows.append(
            {
                "served form": name,
                "vs": p.candidate,
                "engine": p.engine,
                "n": p.n,
                "identical": f"{p.identical}/{p.n}" if p.n else "—",
                f"moved > {p.tolerance:g}": f"{p.moved}/{p.n}" if p.n else "—",
                "Δ": "—" if p.delta is None else _signed(p.delta),
                "CI": "—" if not p.ci else f"[{_signed(p.ci[0])}, {_signed(p.ci[1])}]",
                "p": "—" if p.p is None else f"{p.p:.3g}",
                "finding": p.cause or ("significant drop" if p.significant_drop else "no significant drop"),
            }
        )
    return rows


def served_table(scores: Scores | Mapping[str, Any] | None):
    """The rich table ``bakeoff show`` prints under "served model"."""
    from rich.table import Table

    scores = Scores.of(scores)
    rows = served_rows(scores)
    table = Table(title=f"served model · {scores.headline} vs the training-time model", title_justify="left")
    for col in rows[0] if rows else ["served form"]:
        table.add_column(
            col, justify="left" if col in ("served form", "vs", "engine", "finding") else "right"
        )
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    table.caption = (
        "identical: same text under greedy decoding; Δ = served − trained, paired permutation test"
    )
    return table
