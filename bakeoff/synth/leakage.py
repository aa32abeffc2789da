"""Leakage between two data sets: the chunks, source files and (normalised) questions they share — a training
set against its evaluation set, or two synthesize jobs kept apart with ``disjoint_from``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bakeoff.rag.corpus import Chunk

__all__ = ["Leakage", "check_leakage"]


@dataclass
class Leakage:
    """What two data sets share: chunks, source files and (normalised) questions."""

    a: str
    b: str
    n_a: int
    n_b: int
    chunks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    unlocated: dict[str, int] = field(default_factory=dict)  # records with neither chunk id nor passage

    @property
    def leaks(self) -> bool:
        """Shared chunks or identical questions (a shared source file alone is expected when split by chunk)."""
        return bool(self.chunks or self.questions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "records": {"a": self.n_a, "b": self.n_b},
            "shared_chunks": self.chunks,
            "shared_sources": self.sources,
            "shared_questions": self.questions,
            "unlocated_records": self.unlocated,
            "leaks": self.leaks,
        }


def _chunk_ids(row: dict[str, Any], chunks: list[Chunk] | None) -> set[str]:
    ids = row.get("chunk_id") or row.get("chunk_ids")
    if isinstance(ids, str):
        return {ids}
    if isinstance(ids, list):
        return {str(i) for i in ids}
    passage = row.get("passage")
    if chunks and isinstance(passage, str) and passage.strip():
        return {c.id for c in chunks if passage.strip() in c.text}
    return set()


def _question(row: dict[str, Any]) -> str | None:
    for key in ("question", "instruction", "text", "input"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def check_leakage(a: Path, b: Path, *, chunks: list[Chunk] | None = None) -> Leakage:
    """Compare two JSONL data sets by source chunk, source file and normalised question.

    Records carry ``chunk_id`` (synthesized sets) or a ``passage``; with ``chunks`` (a loaded corpus), a
    passage is located in the chunks that contain it, so a hand-written evaluation set can be checked too.

    Raises:
        DataError: unreadable or malformed file.
    """
    from bakeoff.agents.synthesizer import normalise
    from bakeoff.questions import read_records

    sides = []
    for path in (a, b):
        rows = read_records(path)
        ids: set[str] = set()
        sources: set[str] = set()
        questions: dict[str, str] = {}
        unlocated = 0
        for row in rows:
            found = _chunk_ids(row, chunks)
            ids |= found
            unlocated += not found
            if isinstance(row.get("source"), str):
                sources.add(Path(row["source"]).name)
            q = _question(row)
            if q:
                questions.setdefault(normalise(q), q)
        sides.append((rows, ids, sources, questions, unlocated))
    (ra, ia, sa, qa, ua), (rb, ib, sb, qb, ub) = sides
    return Leakage(
        a=str(a),
        b=str(b),
        n_a=len(ra),
        n_b=len(rb),
        chunks=sorted(ia & ib),
        sources=sorted(sa & sb),
        questions=sorted(qa[k] for k in qa.keys() & qb.keys()),
        unlocated={k: v for k, v in (("a", ua), ("b", ub)) if v},
    )
