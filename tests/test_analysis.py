"""Per-document scores (slices), failure causes and retention: scores.json sections, `bakeoff show --by-source`
and `--errors`, the retention sentences, and old scores.json documents still loading."""

import json
import os
import subprocess

import pytest
from eval_toys import write_run

from bakeoff.core import Question
from bakeoff.eval.causes import cause_of
from bakeoff.eval.retention import base_candidate, retention_sentences, score_retention
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.questions import load_questions
from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.run.documents.scores import Scores

# Two documents; `half` knows only the first one's facts, `all` knows both.
TWO_DOCS = [
    Question(
        id=f"{doc}{i}",
        question=f"What does clause {i} of {doc} say?",
        reference=f"{doc} clause {i} sets fee {i * 7} euro",
        source=f"{doc}.md",
        fields={"type": "lookup" if i % 2 else "multi-step"},
    )
    for doc in ("msa", "annex")
    for i in range(6)
]


def _rows(questions, answer_for, **extra):
    return [
        {
            "question_id": q.id,
            "question": q.question,
            "reference": q.reference,
            "answer": answer_for(q),
            "latency_s": 0.1,
            **extra,
        }
        for q in questions
    ]


@pytest.fixture(scope="module")
def two_docs():
    answers = {
        "half": _rows(TWO_DOCS, lambda q: q.reference if q.source == "msa.md" else "I do not know"),
        "all": _rows(TWO_DOCS, lambda q: q.reference),
    }
    settings = ScoringSettings(task="qa", metrics=["token_f1"], slice_by=("type",))
    return answers, score_answers(TWO_DOCS, answers, settings)


def test_slices_split_the_headline_per_document_and_field(two_docs):
    _, scores = two_docs
    by_doc = scores.slices.table("source")
    assert list(by_doc) == ["annex.md", "msa.md"]
    assert by_doc["msa.md"]["half"].mean == pytest.approx(1.0) and by_doc["msa.md"]["half"].n == 6
    assert by_doc["annex.md"]["half"].mean < 0.2
    assert by_doc["annex.md"]["all"].mean == pytest.approx(1.0)
    assert scores.slices.questions["source"] == {"annex.md": 6, "msa.md": 6}
    # half of each type comes from each document: the type split shows no gap for `half`
    by_type = scores.slices.table("type")
    assert set(by_type) == {"lookup", "multi-step"}
    assert by_type["lookup"]["half"].mean == pytest.approx(by_type["multi-step"]["half"].mean, abs=0.05)
    assert scores.slices.metric == "token_f1"


def test_show_by_source_prints_the_split(two_docs, tmp_path, bakeoff_cmd):
    answers, scores = two_docs
    run = write_run(tmp_path, scores.to_dict(), answers)
    proc = subprocess.run(
        [*bakeoff_cmd, "show", str(run), "--by-source"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "token_f1 by document" in out and "token_f1 by type" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    msa = [c.strip() for c in lines["msa.md"].split("│")[2:5]]
    annex = [c.strip() for c in lines["annex.md"].split("│")[2:5]]
    assert msa == ["6", "1.000", "1.000"]
    assert annex[0] == "6" and float(annex[1]) < 0.2 and annex[2] == "1.000"
    # without the flag the table is not printed
    plain = subprocess.run(
        [*bakeoff_cmd, "show", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert "by document" not in plain.stdout


def test_passage_only_questions_take_the_document_of_the_retrieved_chunk():
    passage = "The Platform Fee is 4,200 euro per month."
    q = Question(id="p1", question="What is the fee?", reference="4,200 euro", passage=passage)
    other = Question(id="p2", question="Who signs?", reference="the CEO")
    rows = {
        "rag": [
            {
                "question_id": "p1",
                "answer": "4,200 euro",
                "contexts": [
                    {"text": "Unrelated text about holidays.", "source": "annex-a.md"},
                    {"text": f"3.1 {passage} It is due monthly.", "source": "annex-b.md"},
                ],
            },
            {"question_id": "p2", "answer": "the CEO", "contexts": [{"text": "nothing", "source": "msa.md"}]},
        ]
    }
    scores = score_answers([q, other], rows, ScoringSettings(metrics=["token_f1"]), retrieval_k={"rag": 2})
    assert scores.slices.questions["source"] == {"annex-b.md": 1, "(unknown)": 1}


def test_load_questions_keeps_extra_string_fields(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps(
            {"id": "a", "question": "Q?", "reference": "R", "type": "lookup", "hops": 2, "source": "d.md"}
        )
        + "\n"
    )
    [q] = load_questions(path, task="qa")
    assert q.fields == {"type": "lookup"} and q.source == "d.md"


def test_a_document_a_candidate_did_not_learn_becomes_a_sentence(two_docs):
    from bakeoff.eval.by_source import weak_document_sentences

    _, scores = two_docs
    [sentence] = weak_document_sentences(scores)
    assert (
        sentence.startswith("half: 0.0") and " on annex.md against 0.5" in sentence and "overall" in sentence
    )
    one_doc = Scores.of(
        {**scores.to_dict(), "slices": {"metric": "token_f1", "by": {"source": {"a.md": {}}}}}
    )
    assert weak_document_sentences(one_doc) == []


# -- failure causes -----------------------------------------------------------------------------------------

PASSAGE_1 = "The Initial Term is 36 months from the Effective Date."
PASSAGE_2 = "Either party may terminate for convenience with 90 days notice."
CAUSE_QS = [
    Question(id="miss", question="How long is the Initial Term?", reference="36 months", passage=PASSAGE_1),
    Question(id="ignored", question="What notice ends it?", reference="90 days notice", passage=PASSAGE_2),
    Question(
        id="right", question="How long is the Initial Term again?", reference="36 months", passage=PASSAGE_1
    ),
    Question(id="cut", question="What notice, once more?", reference="90 days notice", passage=PASSAGE_2),
]


def test_failure_causes_label_a_planted_retrieval_miss_and_an_ignored_context():
    unrelated = {"text": "Service credits are 5% of the monthly fee.", "source": "annex-a.md"}
    holding_1 = {"text": f"2.1 {PASSAGE_1} It renews yearly.", "source": "msa.md"}
    holding_2 = {"text": f"14.2 {PASSAGE_2}", "source": "msa.md"}
    rag = [
        {"question_id": "miss", "answer": "twelve weeks", "contexts": [unrelated]},  # passage not retrieved
        {"question_id": "ignored", "answer": "the weather is fine", "contexts": [holding_2, unrelated]},
        {"question_id": "right", "answer": "36 months", "contexts": [holding_1]},
        {"question_id": "cut", "answer": "Either", "contexts": [holding_2], "truncated": True},
    ]
    closed = [
        {"question_id": "miss", "answer": "a year"},
        {"question_id": "ignored", "answer": "", "error": "RuntimeError: backend gone"},
        {"question_id": "right", "answer": "36 months"},
        {"question_id": "cut", "answer": "no idea"},
    ]
    scores = score_answers(
        CAUSE_QS,
        {"rag": rag, "closed": closed},
        ScoringSettings(metrics=["token_f1"]),
        retrieval_k={"rag": 2},
    )
    causes = scores.failure_causes
    assert causes.per_answer["rag"] == {
        "miss": "retrieval miss",
        "ignored": "context ignored",
        "cut": "truncated",
    }
    assert causes.per_answer["closed"] == {"miss": "not learned", "ignored": "error", "cut": "not learned"}
    assert causes.counts["rag"] == {"retrieval miss": 1, "context ignored": 1, "truncated": 1}
    assert causes.counts["closed"] == {"not learned": 2, "error": 1}
    assert causes.failed == {"rag": 3, "closed": 3} and causes.answered == {"rag": 4, "closed": 4}
    assert causes.retrieves == {"rag": True, "closed": False}


def test_a_dominant_cause_becomes_a_sentence():
    from bakeoff.eval.causes import cause_sentences

    scores = Scores.of(
        {
            "failure_causes": {
                "metric": "token_f1",
                "counts": {"rag": {"retrieval miss": 7, "context ignored": 2}, "lora": {"not learned": 2}},
                "failed": {"rag": 9, "lora": 2},
            }
        }
    )
    assert cause_sentences(scores) == [
        "rag: 7 of 9 failed answers — retrieval miss (the supporting passage was not retrieved)"
    ]  # lora: too few failures to say


def test_cause_of_without_a_passage_to_check_is_wrong_not_a_miss():
    assert cause_of({}, retrieves=True, hit=None) == "wrong"
    assert cause_of({"error": "x", "truncated": True}, retrieves=True, hit=0.0) == "error"


def test_show_errors_prints_cause_counts(tmp_path, bakeoff_cmd):
    rag = [
        {
            "question_id": "miss",
            "answer": "twelve weeks",
            "contexts": [{"text": "nothing", "source": "a.md"}],
        },
        {"question_id": "ignored", "answer": "no", "contexts": [{"text": PASSAGE_2, "source": "a.md"}]},
        {"question_id": "right", "answer": "36 months", "contexts": [{"text": PASSAGE_1, "source": "a.md"}]},
        {
            "question_id": "cut",
            "answer": "90 days notice",
            "contexts": [{"text": PASSAGE_2, "source": "a.md"}],
        },
    ]
    scores = score_answers(
        CAUSE_QS, {"rag": rag}, ScoringSettings(metrics=["token_f1"]), retrieval_k={"rag": 1}
    )
    run = write_run(tmp_path, scores.to_dict(), {"rag": rag})
    proc = subprocess.run(
        [*bakeoff_cmd, "show", str(run), "--errors"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "why answers failed · token_f1 < 0.5" in proc.stdout
    [row] = [line for line in proc.stdout.splitlines() if line.startswith("│ rag ")]
    assert [c.strip() for c in row.split("│")[1:-1]] == ["rag", "2/4", "1", "1"]


# -- retention ----------------------------------------------------------------------------------------------

GENERAL = [
    Question(id=f"g{i:02d}", question=f"General question {i}?", reference=f"answer {i} word")
    for i in range(20)
]


def _retention_rows(correct):
    return _rows(GENERAL, lambda q: q.reference if correct(q) else "something else entirely")


def test_a_significant_retention_loss_becomes_a_sentence():
    answers = {
        "zero-shot": _retention_rows(lambda q: True),
        "rag": _retention_rows(lambda q: q.id != "g03"),  # one question lost: not significant
        "lora": _retention_rows(lambda q: q.id < "g05"),  # 15 of 20 lost
    }
    retention = score_retention(
        GENERAL,
        answers,
        ScoringSettings(metrics=["token_f1", "rougeL"]),
        headline="token_f1",
        base="zero-shot",
    )
    assert retention.base == "zero-shot" and retention.metric == "token_f1" and retention.n_questions == 20
    losses = {x.candidate: x for x in retention.comparisons}
    assert set(losses) == {"rag", "lora"}
    lora = losses["lora"]
    assert lora.delta == pytest.approx(-0.75) and lora.ci[1] < 0 and lora.lost and lora.p_holm < 0.001
    assert not losses["rag"].significant and not losses["rag"].lost
    assert retention.candidates["zero-shot"].mean == pytest.approx(1.0)
    written = json.loads(json.dumps(Scores(retention=retention).to_dict()))  # as scores.json holds it
    assert written["retention"]["candidates"]["lora"]["mean"] == pytest.approx(0.25)
    sentences = retention_sentences(written)
    assert len(sentences) == 1
    assert sentences[0].startswith("lora: −0.75 [−0.")
    assert "on retention (token_f1 vs zero-shot" in sentences[0]


def test_no_loss_no_sentence_and_judge_metrics_are_left_out():
    answers = {c: _retention_rows(lambda q: True) for c in ("zero-shot", "lora")}
    retention = score_retention(
        GENERAL,
        answers,
        ScoringSettings(metrics=["faithfulness", "rougeL"]),
        headline="faithfulness",
        base="zero-shot",
    )
    assert retention.metrics == ["rougeL"] and retention.metric == "rougeL"
    assert retention_sentences(Scores(retention=retention)) == []


def test_base_candidate_is_the_prompt_only_one_on_the_base_model():
    facts = {
        "lora": {"agent": "finetuned", "model": "embedded:m"},
        "rag": {"agent": "rag", "model": "embedded:m"},
        "three-shot": {"agent": "fewshot", "model": "embedded:m"},
        "big": {"agent": "fewshot", "model": "ollama:big"},
    }
    assert base_candidate(facts, "embedded:m") == "three-shot"
    assert base_candidate({k: facts[k] for k in ("lora", "rag")}, "embedded:m") == "rag"
    assert base_candidate({"lora": facts["lora"]}, "embedded:m") is None


def test_old_scores_documents_still_load(two_docs):
    _, scores = two_docs
    data = scores.to_dict()
    for key in ("slices", "failure_causes", "retention"):
        data.pop(key, None)
    old = Scores.of(json.loads(json.dumps(data)))
    assert old.slices is None and old.failure_causes is None and old.retention is None
    assert retention_sentences(old) == []


def test_recipe_keys_are_checked(tmp_path, root):
    base = (root / "recipes" / "retention.yaml").read_text().replace("../data/", f"{root}/data/")
    good = tmp_path / "good.yaml"
    good.write_text(base.replace("  retention:", "  slice_by: [type]\n  retention:"))
    recipe = load_recipe(good)
    assert recipe.eval.retention.name == "general-qa.jsonl" and recipe.eval.slice_by == ["type"]
    missing = tmp_path / "missing.yaml"
    missing.write_text(base.replace("general-qa.jsonl", "nowhere.jsonl"))
    with pytest.raises(RecipeError, match=r"missing.yaml:\d+:\d+: eval.retention: .*file not found"):
        load_recipe(missing)
    text = (root / "recipes" / "sentiment-fewshot.yaml").read_text().replace("../data/", f"{root}/data/")
    clf = tmp_path / "clf.yaml"
    clf.write_text(text.replace("eval:\n", f"eval:\n  retention: {root}/data/general-qa.jsonl\n", 1))
    with pytest.raises(RecipeError, match=r"eval.retention: .*needs task: qa"):
        load_recipe(clf)


def test_report_shows_the_heatmap_causes_and_retention(two_docs, tmp_path):
    from bakeoff.eval.report import write_report
    from bakeoff.run.store import read_run

    answers, scores = two_docs
    data = scores.to_dict()
    general = {
        "zero-shot": _retention_rows(lambda q: True),
        "half": _retention_rows(lambda q: q.id < "g05"),
    }
    data["retention"] = score_retention(
        GENERAL,
        general,
        ScoringSettings(metrics=["token_f1"]),
        headline="token_f1",
        base="zero-shot",
        path="g.jsonl",
    ).to_dict()
    run = read_run(write_run(tmp_path, data, answers))
    [md, *pngs] = write_report(run, tmp_path / "out" / "r.md", "md")
    text = md.read_text()
    assert "## Per document" in text and "![token_f1 per document and candidate](r-by-source.png)" in text
    assert (tmp_path / "out" / "r-by-source.png").read_bytes()[:4] == b"\x89PNG"
    assert "| annex.md | 6 |" in text and "### By type" in text
    assert "## Why answers failed" in text and "| half | 6/12 | 6 |" in text
    assert "## Retention" in text and "half: −0.75 [−" in text and "| half | 0.250 | -0.750 [" in text
    html = write_report(run, tmp_path / "out" / "r.html", "html")[0].read_text()
    assert "Per document" in html and "data:image/png;base64," in html and "Retention" in html


def test_compare_page_shows_documents_failures_and_retention(two_docs, tmp_path, monkeypatch, root):
    from streamlit.testing.v1 import AppTest

    answers, scores = two_docs
    data = scores.to_dict()
    general = {"zero-shot": _retention_rows(lambda q: True), "half": _retention_rows(lambda q: q.id < "g05")}
    data["retention"] = score_retention(
        GENERAL, general, ScoringSettings(metrics=["token_f1"]), headline="token_f1", base="zero-shot"
    ).to_dict()
    run = write_run(tmp_path, data, answers)
    monkeypatch.setenv("BAKEOFF_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "ui" / "app.py"), default_timeout=120)
    at.query_params["run"] = f"toy/{run.name}"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception[0].value
    headers = [h.value for h in at.subheader]
    assert headers[-4:] == ["token_f1 per document", "token_f1 per type", "Why answers failed", "Retention"]
    causes = {r.candidate: r for r in at.dataframe[-2].value.itertuples()}
    assert (causes["half"].failed, causes["half"].answered, causes["all"].failed) == (6, 12, 0)
    kept = at.dataframe[-1].value.set_index("candidate")
    assert kept.loc["half", ""] == "lost" and kept.loc["zero-shot", ""] == "base"
    assert any("half: −0.75 [−" in c.value for c in at.caption)


def test_rescoring_a_run_scores_its_retention_answers_again(two_docs, tmp_path, root):
    from bakeoff.cli.eval import rescore_run
    from bakeoff.io import append_jsonl

    answers, scores = two_docs
    run = write_run(tmp_path, scores.to_dict(), answers)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["candidates"] = {
        "all": {"agent": "fewshot", "model": "embedded:smollm2-135m-instruct"},
        "half": {"agent": "finetuned", "model": "embedded:smollm2-135m-instruct"},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    general = {"all": _retention_rows(lambda q: True), "half": _retention_rows(lambda q: q.id < "g05")}
    failed_first = [
        {**general["half"][0], "answer": "", "error": "RuntimeError: gone"}
    ]  # asked again on resume
    append_jsonl(run / "retention-answers.jsonl", ({"candidate": "half", **r} for r in failed_first))
    for cand, rows in general.items():
        append_jsonl(run / "retention-answers.jsonl", ({"candidate": cand, **r} for r in rows))
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        f"name: toy\neval:\n  questions: {root}/data/contract-qa.jsonl\n  metrics: [token_f1]\n"
        f"  retention: {root}/data/general-qa.jsonl\ncandidates:\n  - name: all\n    agent: fewshot\n"
    )
    rescored = rescore_run(run, load_recipe(recipe_path))
    on_disk = Scores.read(run / "scores.json").retention
    assert on_disk == rescored.retention and on_disk.base == "all" and on_disk.n_questions == 20
    assert on_disk.errors == {"all": 0, "half": 0}  # the failed first try was replaced
    assert retention_sentences(Scores.read(run / "scores.json"))[0].startswith("half: −0.75")


def test_a_malformed_retention_set_stops_the_run_before_any_answer(tmp_path, root, bakeoff_cmd):
    bad = tmp_path / "general.jsonl"
    bad.write_text('{"question": "Capital of France?", "reference": "Paris"}\n{"question": "no reference"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: bad-retention\neval:\n  questions: {root}/data/contract-qa.jsonl\n  retention: {bad}\n"
        "candidates:\n  - name: zero-shot\n    agent: fewshot\n"
    )
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert f"{bad}:2: needs a 'reference'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # no run folder was made


def test_slice_by_a_field_no_question_has_stops_the_run(tmp_path, root, bakeoff_cmd):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: bad-slice\neval:\n  questions: {root}/data/general-qa.jsonl\n  slice_by: [type, difficulty]\n"
        "candidates:\n  - name: zero-shot\n    agent: fewshot\n"
    )
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "eval.slice_by: no question has the field(s) difficulty (string fields found: type)" in proc.stderr


# -- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_answers_and_scores_the_retention_set(tmp_path, root, bakeoff_cmd):
    """Two prompt-only candidates on the real embedded model answer 2 contract and 4 general questions."""
    general = tmp_path / "general.jsonl"
    general.write_text(
        "".join(
            json.dumps(json.loads(line)) + "\n"
            for line in (root / "data/general-qa.jsonl").read_text().splitlines()[:4]
        )
    )
    recipe = tmp_path / "retention.yaml"
    recipe.write_text(
        f"""name: retention-e2e
task: qa
eval:
  questions: {root}/data/contract-qa.jsonl
  limit: 2
  metrics: [token_f1]
  retention: {general}
candidates:
  - name: zero-shot
    agent: fewshot
    generation: {{max_new_tokens: 12}}
  - name: terse
    agent: fewshot
    system: "Answer in one or two words."
    generation: {{max_new_tokens: 12}}
"""
    )
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "retention · token_f1 on 4 general questions" in proc.stdout
    [run_dir] = list((runs / "retention-e2e").iterdir())
    rows = [json.loads(line) for line in (run_dir / "retention-answers.jsonl").read_text().splitlines()]
    assert sorted((r["candidate"], r["question_id"]) for r in rows) == sorted(
        (c, f"g0{i}") for c in ("zero-shot", "terse") for i in range(1, 5)
    )
    assert all(r["answer"].strip() and r["error"] is None for r in rows)  # the real model answered
    main = [json.loads(line) for line in (run_dir / "answers.jsonl").read_text().splitlines()]
    assert {r["question_id"] for r in main} == {"q01", "q02"}  # the main answers stay apart
    scores = Scores.read(run_dir / "scores.json")
    retention = scores.retention
    assert retention.base == "zero-shot" and retention.n_questions == 4 and retention.metric == "token_f1"
    assert set(retention.per_answer["terse"]) == {"g01", "g02", "g03", "g04"}
    assert all(0.0 <= retention.candidates[c].mean <= 1.0 for c in ("zero-shot", "terse"))
    [loss] = retention.comparisons
    assert loss.candidate == "terse" and loss.n == 4 and 0.0 <= loss.p_holm <= 1.0
    assert scores.n_questions == 2 and set(scores.per_answer["terse"]) == {"q01", "q02"}
    assert "retention" in json.loads((run_dir / "manifest.json").read_text())["timings_s"]
    # the contract questions name their documents: the split and the causes are there too
    assert set(scores.slices.table("source")) == {"master-services-agreement.md"}
    assert set(scores.failure_causes.counts) == {"zero-shot", "terse"}
    assert all(set(c) <= {"not learned", "truncated"} for c in scores.failure_causes.counts.values())
    shown = subprocess.run(
        [*bakeoff_cmd, "show", str(run_dir), "--by-source", "--errors"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "token_f1 by document" in shown.stdout and "why answers failed" in shown.stdout
    rescored = subprocess.run(
        [*bakeoff_cmd, "score", str(run_dir), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rescored.returncode == 0, rescored.stderr[-2000:]
    assert Scores.read(run_dir / "scores.json").retention.per_answer == retention.per_answer
