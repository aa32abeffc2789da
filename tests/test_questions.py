"""Evaluation sets: malformed lines are located errors before any answering starts."""

import json

import pytest

from bakeoff.questions import DataError, load_questions


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "reference": "r", "passage": {"text": "p"}}, "'passage' must be text, got dict"),
        ({"question": "q", "reference": "r", "source": ["a.md"]}, "'source' must be text, got list"),
        ({"question": ["q"], "reference": "r"}, "needs a non-empty 'question'"),
        ({"question": "q", "reference": None}, "needs a 'reference'"),
    ],
)
def test_malformed_rows_are_located(tmp_path, row, message):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "fine", "reference": "yes"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"q.jsonl:2: {message}"):
        load_questions(path, task="qa")
