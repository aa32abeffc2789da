"""`bakeoff show` in an 80-column terminal (a laptop window, a CI log): every table fits and every candidate
name is printed whole, never cut to ``z…``."""

import os
import re
import subprocess

import pytest
from eval_toys import write_run

from bakeoff.core import Question
from bakeoff.eval.scoring import ScoringSettings, score_answers

# The quickstart's names, and a swept one (the longest a recipe usually makes).
NAMES = ["zero-shot", "three-shot", "rag", "lora", "lora+rag", "lora[lr=5e-5]"]
QUESTIONS = [
    Question(id=f"q{i:02d}", question=f"What does clause {i} say?", reference=f"clause {i} sets {i} days")
    for i in range(24)
]


def _rows(k: int) -> list[dict]:
    """Candidate ``k`` answers the first ``4 k`` questions right, so that some pairs differ significantly."""
    return [
        {
            "question_id": q.id,
            "question": q.question,
            "reference": q.reference,
            "answer": q.reference if i < 4 * k else "it depends",
            "latency_s": 0.2,
        }
        for i, q in enumerate(QUESTIONS)
    ]


@pytest.fixture(scope="module")
def scores():
    answers = {name: _rows(k) for k, name in enumerate(NAMES)}
    settings = ScoringSettings(task="qa", metrics=["token_f1", "exact_match", "rougeL"])
    return answers, score_answers(QUESTIONS, answers, settings).to_dict()


def test_show_at_80_columns_prints_every_name_whole(scores, tmp_path, bakeoff_cmd):
    answers, doc = scores
    run = write_run(tmp_path, doc, answers)
    proc = subprocess.run(
        [*bakeoff_cmd, "show", str(run), "--errors"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in proc.stdout  # nothing cut short
    words = set(re.findall(r"[\w.+\-\[\]=]+", proc.stdout))
    assert set(NAMES) <= words, set(NAMES) - words
    # the paired table names both sides of every pair whole, and the winner of a significant one
    assert "paired comparisons · token_f1" in proc.stdout
    pairs = [(a, b) for i, a in enumerate(NAMES) for b in NAMES[i + 1 :]]
    text = "\n".join(lines)
    for a, b in pairs:
        assert re.search(rf"^ *{re.escape(a)} .*\n *vs {re.escape(b)}(?: |$)", text, re.M), (a, b)
    assert "✔ lora[lr=5e-5]" in proc.stdout
    assert "A = zero-shot" in proc.stdout  # six names do not fit as headers: keyed, with a legend
