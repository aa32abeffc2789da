"""All four RAGAS metrics score with the embedded 135M judge (no server, no network).

The real SmolLM2 judge grades a RAG candidate's answers to SQuAD-sample questions (data/squad-sample/): with
ragas' own reply schemas it returned no statements for faithfulness and context recall (8 of 8 missing);
with the strict schemas of bakeoff.eval.ragas_replies every metric must have values for most answers.
"""

import json
import sys
import time
from pathlib import Path

import pytest

from bakeoff.eval.ragas_replies import MAX_ITEMS, strict_models
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.questions import load_questions

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT / "data" / "squad-sample" / "questions.jsonl"
RAGAS = ["faithfulness", "answer_relevancy", "context_precision", "context_recall"]


def test_strict_reply_schemas_require_a_statement():
    from pydantic import ValidationError
    from ragas.metrics.collections.context_recall.util import ContextRecallOutput
    from ragas.metrics.collections.faithfulness.util import NLIStatementOutput, StatementGeneratorOutput

    models = strict_models()
    statements = models[StatementGeneratorOutput]
    assert issubclass(statements, StatementGeneratorOutput)  # ragas reads the reply as its own model
    schema = statements.model_json_schema()["properties"]["statements"]
    assert schema["minItems"] == 1 and schema["maxItems"] == MAX_ITEMS and schema["items"]["minLength"] == 1
    # none, empty, whitespace, a raw newline (the 135M judge wrote `["]\n", "\n    "]`) or a quote: refused
    for bad in (
        {"statements": []},
        {"statements": [""]},
        {"statements": ["\n    "]},
        {"statements": ["a\nb"]},
        {"statements": ['say "x"']},
    ):
        with pytest.raises(ValidationError):
            statements.model_validate(bad)
    assert statements.model_validate({"statements": ["Normandy is in France."]}).statements
    verdicts = models[NLIStatementOutput]
    with pytest.raises(ValidationError):  # verdicts are 0 or 1, never 5
        verdicts.model_validate({"statements": [{"statement": "x", "reason": "", "verdict": 5}]})
    recall = models[ContextRecallOutput]
    with pytest.raises(ValidationError):
        recall.model_validate({"classifications": []})
    one = {"classifications": [{"statement": "France", "reason": "in the context", "attributed": 1}]}
    assert recall.model_validate(one).classifications[0].attributed == 1


@pytest.mark.slow
def test_all_four_ragas_metrics_score_with_the_embedded_judge(tmp_path):
    from bakeoff.eval.judge import WEAK_JUDGE, Judge
    from bakeoff.eval.settings import JudgeSpec
    from bakeoff.eval.table import judge_table

    questions = load_questions(SQUAD, task="qa", limit=30)[::5]  # 6 questions, one per ~article part
    rows = [
        {
            "question_id": q.id,
            "answer": f"The answer is {q.reference}.",
            "contexts": [{"text": q.passage, "source": q.source, "score": 0.8}],
        }
        for q in questions
    ]
    judge = Judge(JudgeSpec(model="embedded:smollm2-135m-instruct"), cache_dir=tmp_path / "cache")
    t0 = time.perf_counter()
    scores = score_answers(questions, {"rag": rows}, ScoringSettings(metrics=RAGAS, judge=judge))
    seconds = time.perf_counter() - t0
    rates = {m: scores.judge.metrics[m].parse_failure_rate for m in RAGAS}
    sys.stderr.write(
        f"\nembedded judge, {len(rows)} answers: {seconds:.0f}s, {scores.judge.calls} calls; parse-failure "
        f"rates {rates}; means "
        f"{ {m: scores.candidates['rag'].metrics[m].mean for m in RAGAS} }; missing "
        f"{ {m: scores.candidates['rag'].metrics[m].missing_reasons for m in RAGAS} }\n"
    )
    for metric in RAGAS:
        entry = scores.candidates["rag"].metrics[metric]
        assert rates[metric] is not None and rates[metric] < 0.2, (metric, rates, entry.missing_reasons)
        assert entry.n >= 5 and 0.0 <= entry.mean <= 1.0, (metric, entry)
        for values in scores.per_answer["rag"].values():
            assert values[metric] is None or 0.0 <= values[metric] <= 1.0
    # the run says the 135M judge is a weak grader, under the judge table with its parse-failure rates
    assert scores.judge.caution == WEAK_JUDGE
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(judge_table(scores))
    text = console.export_text()
    assert "parse-failure rate" in text and "weak grader" in text
    json.dumps(scores.to_dict())  # the document stays serialisable
