"""scores.json: intervals, paired comparisons, error analysis; `bakeoff show`; new metrics; recipe keys."""

import json
import subprocess

import pytest
from eval_toys import write_run

from bakeoff.core import Question
from bakeoff.eval import DEFAULT_METRICS, get_metric
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.recipe.load import RecipeError, load_recipe

QUESTIONS = [
    Question(id=f"q{i:02d}", question=f"What is item {i}?", reference=f"item {i} costs {i} euro")
    for i in range(40)
]


def _rows(answer_for):
    return [
        {
            "question_id": q.id,
            "question": q.question,
            "reference": q.reference,
            "answer": answer_for(q),
            "latency_s": 0.2,
        }
        for q in QUESTIONS
    ]


@pytest.fixture(scope="module")
def three_way():
    answers = {
        "strong": _rows(lambda q: q.reference if q.id != "q39" else "no idea"),
        "weak": _rows(lambda q: q.reference if q.id < "q05" else "no idea"),
        "twin": _rows(lambda q: q.reference if q.id < "q05" else "no idea"),
    }
    scores = score_answers(
        QUESTIONS, answers, ScoringSettings(task="qa", metrics=["token_f1", "exact_match", "chrf"])
    ).to_dict()
    return answers, scores


def test_scores_keep_the_old_keys_and_add_intervals(three_way):
    _, scores = three_way
    assert scores["headline"] == "token_f1"  # first metric listed
    for cand in ("strong", "weak", "twin"):
        for metric in ("token_f1", "exact_match", "chrf"):
            entry = scores["candidates"][cand]["metrics"][metric]
            assert {"mean", "n", "missing", "ci"} <= set(entry)
            lo, hi = entry["ci"]
            assert lo - 1e-9 <= entry["mean"] <= hi + 1e-9
        assert set(scores["per_answer"][cand]) == {q.id for q in QUESTIONS}
    assert scores["candidates"]["strong"]["metrics"]["exact_match"]["mean"] == pytest.approx(39 / 40)
    method = scores["statistics"]["method"]
    assert method["resamples"] >= 1000 and method["correction"].startswith("holm")


def test_paired_comparisons_mark_real_differences_only(three_way):
    _, scores = three_way
    entries = {(e["a"], e["b"]): e for e in scores["statistics"]["comparisons"]["token_f1"]}
    assert set(entries) == {("strong", "weak"), ("strong", "twin"), ("weak", "twin")}
    sw = entries[("strong", "weak")]
    assert sw["significant"] and sw["better"] == "strong" and sw["p_holm"] < 0.01 and sw["ci"][0] > 0
    assert (sw["wins"], sw["losses"], sw["ties"]) == (34, 0, 6)
    wt = entries[("weak", "twin")]
    assert not wt["significant"] and wt["delta"] == 0 and wt["ci"][0] <= 0 <= wt["ci"][1] and wt["p"] >= 0.05


def test_error_analysis_lists_lost_and_all_fail_questions(three_way):
    _, scores = three_way
    ea = scores["error_analysis"]
    assert ea["metric"] == "token_f1"
    weak = ea["lost"]["weak"]
    assert weak["versus"] == "strong" and weak["n_lost"] == 34
    top = weak["questions"][0]
    assert (
        top["answer"] == "no idea"
        and top["other_answer"] == top["reference"]
        and top["gap"] == pytest.approx(1.0)
    )
    assert ea["lost"]["strong"]["versus"] in ("weak", "twin") and ea["lost"]["strong"]["n_lost"] == 0
    assert [q["question_id"] for q in ea["all_fail"]] == ["q39"]


def test_show_prints_intervals_significance_and_errors(three_way, tmp_path, bakeoff_cmd):
    answers, scores = three_way
    run = write_run(tmp_path, scores, answers)
    proc = subprocess.run(
        [*bakeoff_cmd, "show", str(run), "--errors"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "paired comparisons · token_f1" in out
    assert "✔ strong" in out and "n.s." in out and "p_holm" in out
    assert "lost to strong on 34 question(s)" in out
    assert "every candidate fails: 1 question(s)" in out
    other = subprocess.run(
        [*bakeoff_cmd, "show", str(run), "--metric", "chrf"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert "paired comparisons · chrf" in other.stdout and "lost to" not in other.stdout


def test_classification_gets_mcnemar_and_bootstrap_macro_f1():
    labels = ["pos", "neg"]
    qs = [Question(id=f"r{i}", question=f"text {i}", reference=labels[i % 2]) for i in range(30)]

    def rows(right):
        return [
            {
                "question_id": q.id,
                "reference": q.reference,
                "label": q.reference if right(i) else ("neg" if q.reference == "pos" else "pos"),
            }
            for i, q in enumerate(qs)
        ]

    scores = score_answers(
        qs,
        {"good": rows(lambda i: True), "coin": rows(lambda i: i % 3 == 0)},
        ScoringSettings(task="classification", labels=labels),
    ).to_dict()
    [acc] = scores["statistics"]["comparisons"]["accuracy"]
    assert acc["test"] == "mcnemar" and acc["a_only"] == 20 and acc["significant"]
    [f1] = scores["statistics"]["comparisons"]["macro_f1"]
    assert f1["test"] == "bootstrap" and f1["delta"] > 0 and f1["significant"]
    assert scores["candidates"]["good"]["metrics"]["macro_f1"]["ci"] == [1.0, 1.0]
    assert scores["headline"] == "accuracy"


def test_chrf_and_semantic_similarity():
    chrf = get_metric("chrf")
    assert chrf.score(response="thirty days", reference="thirty days").value == pytest.approx(1.0)
    partial = chrf.score(response="30 calendar days", reference="thirty days").value
    assert 0 < partial < 1
    assert chrf.score(response="", reference="x").value == 0.0
    sim = get_metric("semantic_similarity")
    [same, close, far, empty] = sim.batch_score(
        responses=[
            "The fee is due monthly.",
            "Payment of the fee is monthly.",
            "Penguins live in Antarctica.",
            "",
        ],
        references=["The fee is due monthly."] * 4,
    )
    assert same.value == pytest.approx(1.0, abs=1e-5)
    assert close.value > far.value and -1 <= far.value <= 1
    assert empty.value == 0.0 and empty.reason == "empty response"
    assert {"chrf", "semantic_similarity"} <= set(DEFAULT_METRICS["qa"])


def _recipe(tmp_path, extra: str, metrics: str = "[token_f1]"):
    (tmp_path / "qa.jsonl").write_text(json.dumps({"id": "q1", "question": "q?", "reference": "a"}) + "\n")
    path = tmp_path / "r.yaml"
    path.write_text(
        f"name: r\neval:\n  questions: qa.jsonl\n  metrics: {metrics}\n{extra}candidates:\n  - name: a\n    agent: fewshot\n"
    )
    return path


def test_judge_metrics_need_a_judge_and_a_rubric(tmp_path):
    with pytest.raises(RecipeError) as exc:
        load_recipe(_recipe(tmp_path, "", "[faithfulness]"))
    assert "add `judge: MODEL`" in str(exc.value)
    with pytest.raises(RecipeError) as exc:
        load_recipe(_recipe(tmp_path, "judge: ollama:llama3.1:8b\n", "[judge_rubric]"))
    assert "needs a rubric" in str(exc.value)
    r = load_recipe(_recipe(tmp_path, "judge: ollama:llama3.1:8b\n", "[faithfulness, answer_relevancy]"))
    assert str(r.judge.model) == "ollama:llama3.1:8b" and r.judge.max_new_tokens == 256
    r = load_recipe(
        _recipe(
            tmp_path,
            "judge:\n  model: embedded:smollm2-135m-instruct\n  rubric:\n    criteria: correct\n    scale: [0, 10]\n    pairwise: true\n",
            "[judge_rubric, token_f1]",
        )
    )
    assert r.judge.rubric.scale == (0, 10) and r.judge.rubric.pairwise
    with pytest.raises(RecipeError) as exc:
        load_recipe(
            _recipe(tmp_path, "judge:\n  model: ollama:x\n  rubric:\n    criteria: c\n    scale: [5, 1]\n")
        )
    assert "low < high" in str(exc.value)
    with pytest.raises(RecipeError) as exc:
        load_recipe(_recipe(tmp_path, "judge: candidate:a\n", "[answer_relevancy]"))
    [problem] = exc.value.problems
    assert problem.path == "judge" and "the judge cannot be candidate:a" in problem.message


def test_headline_and_statistics_keys_are_checked(tmp_path):
    text = (
        _recipe(tmp_path, "")
        .read_text()
        .replace("  metrics: [token_f1]\n", "  metrics: [token_f1]\n  headline: rougeL\n")
    )
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RecipeError) as exc:
        load_recipe(tmp_path / "r.yaml")
    assert "headline 'rougeL' is not among the metrics" in str(exc.value)
    text = text.replace("  headline: rougeL\n", "  statistics: {resamples: 10}\n")
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RecipeError) as exc:
        load_recipe(tmp_path / "r.yaml")
    assert "eval.statistics.resamples" in str(exc.value)
