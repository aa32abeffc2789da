"""The headline metric: chosen from the references when the recipe names none, recorded with its reason in
scores.json and said by `bakeoff show`."""

import os
import subprocess

import pytest
from eval_toys import write_run

from bakeoff.core import Question
from bakeoff.eval import DEFAULT_METRICS
from bakeoff.eval.headline import SHORT_REFERENCE_TOKENS, choose_headline
from bakeoff.eval.scoring import ScoringSettings, score_answers

QA = DEFAULT_METRICS["qa"]
SHORT = ["France", "1066", "William the Conqueror", "the Normans", "Rollo"]
LONG = [
    "The agreement runs for 36 months from the Effective Date and renews for a year at a time.",
    "Either party may end it with 120 days written notice before the term ends.",
    "Fees are invoiced quarterly in advance and payable within 30 days of the invoice date.",
]


def test_short_references_lead_with_token_recall_long_ones_with_rouge_l():
    metric, why = choose_headline("qa", QA, listed=False, references=SHORT)
    assert metric == "token_recall"
    assert f"median 1 token <= {SHORT_REFERENCE_TOKENS}" in why and "ROUGE-L" in why
    metric, why = choose_headline("qa", QA, listed=False, references=LONG)
    assert metric == "rougeL" and why.startswith("references are long (median 14 tokens > 5)")
    # the boundary: a median of exactly 5 normalised tokens ("the" does not count) is short
    five = ["one two three four five", "the one two three four five", "1 2 3 4 5 6 7"]
    assert choose_headline("qa", QA, listed=False, references=five)[0] == "token_recall"


def test_the_recipe_decides_when_it_names_a_headline_or_lists_metrics():
    assert choose_headline("qa", QA, listed=False, references=SHORT, headline="bleu") == (
        "bleu",
        "set by eval.headline",
    )
    with pytest.raises(ValueError, match="not among the metrics"):
        choose_headline("qa", ["bleu"], listed=True, references=SHORT, headline="rougeL")
    # a listed order is kept, and the reason names the metric the references suggest
    metric, why = choose_headline("qa", ["token_f1", "rougeL"], listed=True, references=SHORT)
    assert metric == "token_f1" and "would suggest token_recall" in why and "eval.headline" in why
    metric, why = choose_headline("qa", ["token_recall", "bleu"], listed=True, references=SHORT)
    assert metric == "token_recall" and why.startswith("the first of eval.metrics; references are short")
    # classification: first listed per-answer metric (macro_f1 has no per-answer values), else accuracy
    assert choose_headline("classification", ["macro_f1", "accuracy"], listed=True, references=["pos"])[
        0
    ] == ("accuracy")
    assert (
        choose_headline("classification", DEFAULT_METRICS["classification"], listed=False, references=[])[0]
        == "accuracy"
    )


def test_the_run_records_the_choice_and_show_says_it(tmp_path, bakeoff_cmd):
    questions = [Question(f"q{i}", f"Question {i}?", ref) for i, ref in enumerate(SHORT)]
    sentence = {  # correct answers, as full sentences
        "q0": "Normandy is located in France.",
        "q1": "The battle of Hastings was fought in 1066.",
        "q2": "The duke in the battle of Hastings was William the Conqueror.",
        "q3": "It was the Normans.",
        "q4": "Their first ruler was Rollo.",
    }
    answers = {"verbose": [{"question_id": q, "answer": a} for q, a in sentence.items()]}
    scores = score_answers(questions, answers, ScoringSettings(metrics=None)).to_dict()
    assert scores["headline"] == "token_recall" and "references are short" in scores["headline_reason"]
    means = scores["candidates"]["verbose"]["metrics"]
    assert means["token_recall"]["mean"] == 1.0 and means["rougeL"]["mean"] < 0.6
    assert scores["per_answer"]["verbose"]["q2"]["rougeL"] == pytest.approx(
        0.43, abs=0.01
    )  # the case

    run = write_run(tmp_path, scores, answers)
    env = {**os.environ, "COLUMNS": "200"}
    shown = subprocess.run(
        [*bakeoff_cmd, "show", str(run)], capture_output=True, text=True, timeout=120, env=env
    )
    assert shown.returncode == 0, shown.stderr
    [line] = [ln for ln in shown.stdout.splitlines() if ln.startswith("headline:")]
    assert "token_recall" in line and "references are short (median 1 token <= 5)" in line
