"""Arena votes: stored with the run, read back, paired fairly, ranked by Bradley–Terry."""

import json
import random

import pytest

from bakeoff.ui.arena import Matchup, comparisons, leaderboard, next_matchup, read_votes, record_vote


def _answers():
    rows = []
    for qid, texts in {"q1": ("a one", "b one", "c one"), "q2": ("same", "same", "c two")}.items():
        for cand, text in zip("abc", texts, strict=True):
            rows.append(
                {
                    "candidate": cand,
                    "question_id": qid,
                    "question": f"Q {qid}?",
                    "reference": "R",
                    "answer": text,
                }
            )
    return rows


def _m(a="a", b="b", qid="q1"):
    return Matchup(qid, "Q?", "R", a, b, "x", "y")


def test_votes_append_and_read_back(tmp_path):
    record_vote(tmp_path, _m(), "a", session="s1")
    record_vote(tmp_path, _m("b", "c"), "both_bad")
    with (tmp_path / "votes.jsonl").open("a") as fh:
        fh.write('{"a": "a", "b": "a", "vote": "a"}\n')  # self-comparison: skipped
        fh.write("garbage\n")
        fh.write('{"a": "c", "b": "a", "vo')  # torn last line
    votes = read_votes(tmp_path)
    assert [(v["a"], v["b"], v["vote"]) for v in votes] == [("a", "b", "a"), ("b", "c", "both_bad")]
    assert votes[0]["session"] == "s1" and votes[0]["question_id"] == "q1" and votes[0]["time"]
    assert comparisons(votes) == [("a", "b", 1.0)]  # both bad is kept on disk but not ranked
    with pytest.raises(ValueError, match="vote must be"):
        record_vote(tmp_path, _m(), "maybe")
    assert read_votes(tmp_path / "missing") == []


def test_leaderboard_ranks_and_lists_unvoted_candidates(tmp_path):
    for _ in range(6):
        record_vote(tmp_path, _m("a", "b"), "a")
        record_vote(tmp_path, _m("b", "a"), "b")
    record_vote(tmp_path, _m("a", "b"), "tie")
    record_vote(tmp_path, _m("a", "c"), "both_bad")
    rows = leaderboard(read_votes(tmp_path), candidates=["a", "b", "c", "d"], n_boot=200)
    assert [r["candidate"] for r in rows] == ["a", "b", "c", "d"]
    top, second = rows[0], rows[1]
    assert top["rank"] == 1 and top["elo"] > 1000 > second["elo"]
    assert top["ci_low"] <= top["elo"] <= top["ci_high"]
    assert (top["wins"], top["losses"], top["ties"], top["votes"], top["both_bad"]) == (12, 0, 1, 13, 1)
    assert rows[2] == {
        "rank": None,
        "candidate": "c",
        "elo": None,
        "ci_low": None,
        "ci_high": None,
        "votes": 0,
        "wins": 0,
        "losses": 0,
        "ties": 0,
        "both_bad": 1,
    }


def test_next_matchup_covers_every_pair_before_repeating(tmp_path):
    answers = _answers()
    rng = random.Random(0)
    seen = []
    for _ in range(6):  # 2 questions x 3 pairs
        m = next_matchup(answers, read_votes(tmp_path), rng=rng)
        assert m.a != m.b and m.question == f"Q {m.question_id}?"
        assert m.answer_a == next(
            r["answer"] for r in answers if r["candidate"] == m.a and r["question_id"] == m.question_id
        )
        seen.append((m.question_id, frozenset((m.a, m.b))))
        record_vote(tmp_path, m, "tie")
    assert len(set(seen)) == 6
    # identical answers ("same" vs "same" on q2) come last among unvoted pairs
    assert seen[-1] == ("q2", frozenset("ab"))


def test_next_matchup_orientation_is_random_and_none_without_pairs():
    answers = _answers()
    sides = {next_matchup(answers, [], rng=random.Random(seed)).a for seed in range(20)}
    assert len(sides) > 1
    assert next_matchup(answers, [], rng=random.Random(0), candidates=["a"]) is None
    assert next_matchup([], [], rng=random.Random(0)) is None


def test_failed_answers_are_shown_as_failures():
    rows = [
        {"candidate": "a", "question_id": "q", "answer": "", "error": "RuntimeError: boom"},
        {"candidate": "b", "question_id": "q", "answer": "fine"},
    ]
    m = next_matchup(rows, [], rng=random.Random(1))
    texts = {m.a: m.answer_a, m.b: m.answer_b}
    assert "failed" in texts["a"] and texts["b"] == "fine"


def test_votes_file_is_one_json_object_per_line(tmp_path):
    record_vote(tmp_path, _m(), "b")
    lines = (tmp_path / "votes.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["vote"] == "b"
