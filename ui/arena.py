"""The blind arena: pick two candidates' answers to one question, record a vote, rank by Bradley–Terry.

Votes are appended to ``<run>/votes.jsonl``, one JSON object per line::

    {"time": "...", "question_id": "q7", "a": "rag", "b": "zero-shot", "vote": "a", "session": "3f2c..."}

``a`` is the answer shown on the left. ``vote`` is ``a``, ``b``, ``tie`` or ``both_bad``; a "both bad" vote
is kept (it says something about the question set) but does not rank anyone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bakeoff.io import append_jsonl, read_jsonl
from bakeoff.ui.confine import confine

__all__ = [
    "OUTCOMES",
    "VOTES_FILE",
    "Matchup",
    "comparisons",
    "leaderboard",
    "next_matchup",
    "read_votes",
    "record_vote",
]

VOTES_FILE = "votes.jsonl"
Vote = Literal["a", "b", "tie", "both_bad"]
OUTCOMES: dict[str, float | None] = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": None}


@dataclass(frozen=True)
class Matchup:
    """Two anonymous answers to one question: ``a`` is shown on the left, ``b`` on the right."""

    question_id: str
    question: str
    reference: str
    a: str
    b: str
    answer_a: str
    answer_b: str


def record_vote(
    run_path: Path, matchup: Matchup, vote: Vote, *, session: str | None = None
) -> dict[str, Any]:
    """Append one vote to ``<run>/votes.jsonl`` (locked, one line per write) and return it.

    Raises:
        ValueError: ``vote`` is not one of ``a``, ``b``, ``tie``, ``both_bad``.
        PathRefused: ``votes.jsonl`` (or its lock) is a link that leads out of the run folder.
    """
    from filelock import FileLock

    if vote not in OUTCOMES:
        raise ValueError(f"vote must be one of {', '.join(OUTCOMES)}, not {vote!r}")
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "question_id": matchup.question_id,
        "a": matchup.a,
        "b": matchup.b,
        "vote": vote,
        "session": session,
    }
    run_path = Path(run_path)
    path = confine(run_path / VOTES_FILE, [run_path], what="run folder")
    lock = confine(run_path / (VOTES_FILE + ".lock"), [run_path], what="run folder")
    with FileLock(str(lock), timeout=10):
        append_jsonl(path, [entry])
    return entry


def read_votes(run_path: Path) -> list[dict[str, Any]]:
    """Every well-formed vote of a run (a torn or malformed line is skipped)."""
    return [
        obj
        for obj in read_jsonl(Path(run_path) / VOTES_FILE)
        if obj.get("vote") in OUTCOMES
        and isinstance(obj.get("a"), str)
        and isinstance(obj.get("b"), str)
        and obj["a"] != obj["b"]
    ]


def comparisons(votes: Iterable[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """Votes as Bradley–Terry comparisons ``(a, b, outcome)``; "both bad" votes are left out."""
    out = []
    for v in votes:
        outcome = OUTCOMES.get(v.get("vote"))
        if outcome is not None:
            out.append((v["a"], v["b"], outcome))
    return out


def leaderboard(
    votes: list[dict[str, Any]],
    *,
    candidates: Iterable[str] = (),
    failed: Iterable[str] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Ranked rows: rank, candidate, elo, ci_low, ci_high, votes, wins, losses, ties, both_bad.

    Candidates named in ``candidates`` that have no votes yet are listed last without a score, and so are
    ``failed`` ones (every answer an error: never ranked, whatever the votes).
    """
    from bakeoff.eval.ranking import bradley_terry, win_counts

    comps = comparisons(votes)
    scores = bradley_terry(comps, n_boot=n_boot, seed=seed, exclude=failed)
    counts = win_counts(comps)
    both_bad: dict[str, int] = {}
    for v in votes:
        if v.get("vote") == "both_bad":
            for name in (v["a"], v["b"]):
                both_bad[name] = both_bad.get(name, 0) + 1
    rows = []
    for rank, (name, s) in enumerate(scores.items(), start=1):
        rows.append(
            {
                "rank": rank,
                "candidate": name,
                "elo": round(s["elo"]),
                "ci_low": round(s["ci_low"]),
                "ci_high": round(s["ci_high"]),
                "votes": s["n"],
                **counts.get(name, {"wins": 0, "losses": 0, "ties": 0}),
                "both_bad": both_bad.get(name, 0),
            }
        )
    ranked = set(scores)
    for name in dict.fromkeys([*candidates, *both_bad]):
        if name not in ranked:
            rows.append(
                {
                    "rank": None,
                    "candidate": name,
                    "elo": None,
                    "ci_low": None,
                    "ci_high": None,
                    "votes": 0,
                    "wins": 0,
                    "losses": 0,
                    "ties": 0,
                    "both_bad": both_bad.get(name, 0),
                }
            )
    return rows


def next_matchup(
    answers: list[dict[str, Any]],
    votes: list[dict[str, Any]],
    *,
    rng: random.Random,
    candidates: Iterable[str] | None = None,
) -> Matchup | None:
    """Draw the next pair to judge: a question and two candidates whose answers differ.

    Pairs (question, two candidates) with the fewest votes so far come first, so every pair gets judged
    before any is judged twice; which answer is shown on the left is random.

    Args:
        answers: rows of ``answers.jsonl``.
        votes: the votes so far (from :func:`read_votes`).
        rng: the random source (a session's own, so two voters see different orders).
        candidates: restrict to these candidates (default: all that answered).

    Returns:
        A :class:`Matchup`, or None when fewer than two candidates answered any question.
    """
    wanted = set(candidates) if candidates is not None else None
    by_question: dict[str, dict[str, dict[str, Any]]] = {}
    for row in answers:
        cand = row.get("candidate")
        if not isinstance(cand, str) or (wanted is not None and cand not in wanted):
            continue
        by_question.setdefault(str(row.get("question_id")), {})[cand] = row
    seen: dict[tuple[str, frozenset[str]], int] = {}
    for v in votes:
        key = (str(v.get("question_id")), frozenset((v["a"], v["b"])))
        seen[key] = seen.get(key, 0) + 1
    pool: list[tuple[int, bool, float, str, str, str]] = []
    for qid, rows in by_question.items():
        names = sorted(rows)
        for i, x in enumerate(names):
            for y in names[i + 1 :]:
                same = _text(rows[x]).strip().lower() == _text(rows[y]).strip().lower()
                pool.append((seen.get((qid, frozenset((x, y))), 0), same, rng.random(), qid, x, y))
    if not pool:
        return None
    _, _, _, qid, x, y = min(pool)  # fewest votes, then answers that differ, then at random
    if rng.random() < 0.5:
        x, y = y, x
    rx, ry = by_question[qid][x], by_question[qid][y]
    return Matchup(
        question_id=qid,
        question=str(rx.get("question") or ""),
        reference=str(rx.get("reference") or ""),
        a=x,
        b=y,
        answer_a=_text(rx),
        answer_b=_text(ry),
    )


def _text(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "(no answer: the candidate failed on this question)"
    return str(row.get("answer") or "")
