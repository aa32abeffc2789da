"""The report's "Served model" section: each served form of a fine-tune against the training-time model."""

from __future__ import annotations

from bakeoff.eval.report.blocks import Block
from bakeoff.eval.served import served_rows, served_warnings
from bakeoff.run.documents.scores import Scores

__all__ = ["served_section"]


def served_section(scores: Scores, top_changed: int = 3) -> list[Block]:
    """Agreement and paired difference per served form, the warnings, and the answers that changed most."""
    if not scores.served:
        return []
    rows = served_rows(scores)
    blocks = [
        Block("h2", "Served model"),
        Block(
            "p",
            f"Is the served model the one you scored? Each exported GGUF form answered the same questions as the "
            f"training-time model it came from; identical = the same text under greedy decoding, moved = the "
            f"{scores.headline} of the answer changed by more than the tolerance, Δ = served − trained with its "
            "interval and a paired permutation test.",
        ),
        Block("table", headers=list(rows[0]), rows=[[str(v) for v in r.values()] for r in rows]),
    ]
    blocks += [Block("note", line) for line in served_warnings(scores)]
    for name, parity in scores.served.items():
        if not (parity.significant_drop or parity.diagnosis) or not parity.most_changed:
            continue
        blocks.append(Block("h3", f"{name} — most changed answers"))
        blocks.append(
            Block(
                "table",
                headers=["id", "question", parity.candidate, name, "Δ"],
                rows=[
                    [c.question_id, c.question, c.trained, c.served, f"{c.delta:+.2f}"]
                    for c in parity.most_changed[:top_changed]
                ],
            )
        )
    return blocks
