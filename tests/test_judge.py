"""Judged metrics: RAGAS 0.4 and judge_rubric through the local OpenAI-compatible judge endpoint.

The fast tests serve scripted judges (an agreeable one and one that never answers in JSON) through the real
server, ragas, instructor and openai client — only the model is a stand-in, like a fake Ollama server. The
slow smoke test runs the real embedded SmolLM2 judge end to end through `bakeoff run`/`show`/`score`.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eval_toys import CONTRACT, AgreeableJudge, RamblingJudge

from bakeoff.eval.judge import Judge, JudgeCache
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.eval.settings import JudgeSpec
from bakeoff.questions import load_questions

HERE = Path(__file__).resolve().parent
RAGAS = ["faithfulness", "answer_relevancy", "context_precision", "context_recall"]


@pytest.fixture(scope="module")
def qa():
    questions = load_questions(CONTRACT, task="qa", limit=3)
    rag = [
        {
            "question_id": q.id,
            "question": q.question,
            "reference": q.reference,
            "answer": q.passage.split(",")[0],
            "contexts": [{"text": q.passage, "source": q.source, "score": 0.8}],
        }
        for q in questions
    ]
    closed = [
        {"question_id": q.id, "question": q.question, "reference": q.reference, "answer": "I am not sure."}
        for q in questions
    ]
    return questions, {"rag": rag, "closed-book": closed}


def _spec(**extra) -> JudgeSpec:
    return JudgeSpec.model_validate(
        {
            "model": "embedded:smollm2-135m-instruct",
            "rubric": {"criteria": "Correct per the reference.", "scale": [1, 5], "pairwise": True},
            **extra,
        }
    )


def _score(questions, answers, judge):
    return score_answers(
        questions,
        answers,
        ScoringSettings(metrics=[*RAGAS, "judge_rubric", "token_f1"], judge=judge, headline="token_f1"),
    ).to_dict()


def test_judged_metrics_values_cache_and_pairwise(qa, tmp_path):
    questions, answers = qa
    backend = AgreeableJudge()
    first = _score(questions, answers, Judge(_spec(), backend=backend, cache_dir=tmp_path))
    assert backend.calls > 0 and first["judge"]["calls"] == backend.calls
    for metric in [*RAGAS, "judge_rubric"]:
        for cand in ("rag", "closed-book"):
            for qid, values in first["per_answer"][cand].items():
                value = values[metric]
                assert value is None or 0.0 <= value <= 1.0, (metric, cand, qid, value)
        assert first["judge"]["metrics"][metric]["parse_failure_rate"] == 0.0
    rag = first["candidates"]["rag"]["metrics"]
    assert rag["faithfulness"]["mean"] == pytest.approx(1.0) and rag["context_recall"][
        "mean"
    ] == pytest.approx(1.0)
    assert rag["judge_rubric"]["mean"] == pytest.approx(1.0)  # grade 5 on 1-5
    closed = first["candidates"]["closed-book"]["metrics"]
    for metric in ("faithfulness", "context_precision", "context_recall"):
        assert closed[metric]["mean"] is None and closed[metric]["missing"] == 3
        [reason] = closed[metric]["missing_reasons"]
        assert reason.startswith("no retrieved contexts")
        assert closed[metric]["judge"]["asked"] == 0  # not applicable: the judge was never asked
    assert closed["answer_relevancy"]["n"] == 3
    pairwise = first["judge_pairwise"]
    assert pairwise["comparisons"] == [["rag", "closed-book", 0.5]] * 3  # the agreeable judge says "tie"
    assert pairwise["asked"] == 6 and all(q["consistent"] for q in pairwise["per_question"])

    # Scoring again with a fresh judge object: every verdict from the cache, no judge call, same numbers.
    again_backend = AgreeableJudge()
    again = _score(questions, answers, Judge(_spec(), backend=again_backend, cache_dir=tmp_path))
    assert again_backend.calls == 0 and again["judge"]["calls"] == 0
    asked = sum(m["asked"] for m in again["judge"]["metrics"].values()) + again["judge_pairwise"]["asked"]
    assert again["judge"]["cache_hits"] == asked > 0
    assert "server_requests" not in again["judge"]  # the judge endpoint was never even started
    assert again["per_answer"] == first["per_answer"]
    # Another judge setting is another cache key.
    other_backend = AgreeableJudge()
    _score(questions, answers, Judge(_spec(max_new_tokens=100), backend=other_backend, cache_dir=tmp_path))
    assert other_backend.calls > 0


def test_unparseable_verdicts_are_missing_with_reasons_never_zero(qa, tmp_path, bakeoff_cmd):
    questions, answers = qa
    backend = RamblingJudge()
    scores = _score(questions, answers, Judge(_spec(), backend=backend, cache_dir=tmp_path))
    for metric in [*RAGAS, "judge_rubric"]:
        entry = scores["candidates"]["rag"]["metrics"][metric]
        assert entry["mean"] is None and entry["n"] == 0 and entry["missing"] == 3
        assert entry["judge"]["parse_failure_rate"] == 1.0
        assert all(("parse" in r or "grade" in r) for r in entry["missing_reasons"]), entry["missing_reasons"]
    assert scores["judge"]["metrics"]["judge_rubric"]["parse_failures"] == 6  # both candidates
    assert (
        scores["judge_pairwise"]["comparisons"] == []
        and scores["judge_pairwise"]["parse_failure_rate"] == 1.0
    )
    from eval_toys import write_run

    run = write_run(tmp_path, scores, answers)
    out = subprocess.run(
        [*bakeoff_cmd, "show", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    flat = " ".join(out.split())  # captions wrap
    assert (
        "parse-failure rate" in flat
        and "100%" in flat
        and "never counted as 0" in flat
        and "unparsed" in flat
    )


def test_unreachable_judge_is_missing_and_not_cached(qa, tmp_path):
    questions, answers = qa
    spec = JudgeSpec.model_validate(
        {"model": "openai-compatible:http://127.0.0.1:9/v1#judge", "timeout_s": 10}
    )
    scores = score_answers(
        questions[:1],
        {"rag": answers["rag"][:1]},
        ScoringSettings(metrics=["context_recall"], judge=Judge(spec, cache_dir=tmp_path / "cache")),
    ).to_dict()
    entry = scores["candidates"]["rag"]["metrics"]["context_recall"]
    assert (
        entry["mean"] is None
        and entry["judge"]["judge_errors"] == 1
        and entry["judge"]["parse_failures"] == 0
    )
    [reason] = entry["missing_reasons"]
    assert reason.startswith("judge unreachable at http://127.0.0.1:9/v1")
    assert not list((tmp_path / "cache").rglob("*.json"))  # not the judge's verdict: never cached


def test_cache_key_depends_on_metric_inputs_and_judge():
    base = JudgeCache.key("faithfulness", {"response": "a"}, {"model": "x"})
    assert base == JudgeCache.key("faithfulness", {"response": "a"}, {"model": "x"})
    assert base != JudgeCache.key("faithfulness", {"response": "b"}, {"model": "x"})
    assert base != JudgeCache.key("faithfulness", {"response": "a"}, {"model": "y"})
    assert base != JudgeCache.key("context_recall", {"response": "a"}, {"model": "x"})


def test_rubric_parsing():
    from bakeoff.eval.rubric import parse_grade, parse_winner

    assert parse_grade('{"score": 4, "reason": "ok"}', 1, 5) == (4, "ok")
    assert parse_grade("Score: 2\nbecause", 1, 5)[0] == 2
    assert parse_grade("3", 1, 5)[0] == 3
    assert parse_grade('{"score": 9}', 1, 5) == (None, "grade 9 outside the 1-5 scale")
    assert parse_grade("I like it", 1, 5)[0] is None
    assert parse_winner('{"winner": "B"}')[0] == "B"
    assert parse_winner("Winner: tie")[0] == "tie"
    assert parse_winner("Both are fine")[0] is None


@pytest.mark.slow
@pytest.mark.smoke
def test_ragas_with_the_embedded_judge_end_to_end(tmp_path, bakeoff_cmd):
    """`bakeoff run` with RAGAS metrics graded by the embedded judge; `show` reports parse failures; `bakeoff
    score` re-scores from the judge cache without a single judge call."""
    recipe = tmp_path / "rag.yaml"
    recipe.write_text(
        f"""name: ragjudge
eval:
  questions: {CONTRACT}
  limit: 2
  metrics: [token_f1, faithfulness, answer_relevancy, context_precision, context_recall, judge_rubric]
judge:
  model: embedded:smollm2-135m-instruct
  max_new_tokens: 160
  rubric:
    criteria: The answer states the same fact as the reference.
    scale: [1, 5]
candidates:
  - name: oracle-rag
    agent: eval_toys:PassageAgent
    oracle: {CONTRACT}
"""
    )
    runs = tmp_path / "runs"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
    )
    first_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = list((runs / "ragjudge").iterdir())
    scores = json.loads((run / "scores.json").read_text())
    judge = scores["judge"]
    assert judge["calls"] > 0 and judge["server_requests"] == judge["calls"]
    for metric in [*RAGAS, "judge_rubric"]:
        entry = scores["candidates"]["oracle-rag"]["metrics"][metric]
        assert entry["n"] + entry["missing"] == 2
        for value in (v[metric] for v in scores["per_answer"]["oracle-rag"].values()):
            assert value is None or 0.0 <= value <= 1.0
        if entry["missing"]:
            assert sum(entry["missing_reasons"].values()) == entry["missing"] and all(
                entry["missing_reasons"]
            )
        rate = judge["metrics"][metric]["parse_failure_rate"]
        assert rate is not None and 0.0 <= rate <= 1.0
    assert "parse-failure rate" in proc.stdout  # `bakeoff run` prints the judge table too

    t0 = time.perf_counter()
    again = subprocess.run(
        [*bakeoff_cmd, "score", str(run)], capture_output=True, text=True, timeout=600, env=env
    )
    second_s = time.perf_counter() - t0
    assert again.returncode == 0, again.stderr[-3000:]
    rescored = json.loads((run / "scores.json").read_text())
    assert rescored["judge"]["calls"] == 0 and "server_requests" not in rescored["judge"]
    assert rescored["judge"]["cache_hits"] == sum(m["asked"] for m in judge["metrics"].values())
    assert rescored["per_answer"] == scores["per_answer"]
    sys.stderr.write(
        f"\nembedded judge: first scoring {first_s:.0f}s ({judge['calls']} calls, judge {judge['seconds']}s), "
        f"re-score {second_s:.0f}s from cache; parse-failure rates "
        f"{ {m: v['parse_failure_rate'] for m, v in judge['metrics'].items()} }\n"
    )
