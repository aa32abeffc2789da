"""Typed run documents: a real run's scores.json and manifest.json load and dump back as they were written;
old, partial and foreign files load; a file that does not fit is a located problem, not a crash; the
terminal table, the report and the console render the same from the typed model as from the raw dict."""

import io
import json
from pathlib import Path

import pytest
from console_fixtures import write_rich_run
from eval_toys import write_run
from pydantic import ValidationError
from rich.console import Console

from bakeoff.core import Question
from bakeoff.eval.formatting import interval, mean_cell, number, percent
from bakeoff.eval.report import build_report
from bakeoff.eval.report.blocks import render_markdown
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.eval.table import classification_tables, print_scores
from bakeoff.recipe.load import load_recipe
from bakeoff.run.documents.manifest import Manifest
from bakeoff.run.documents.scores import MetricSummary, Scores
from bakeoff.run.runner import run_recipe
from bakeoff.run.store import RunWriter, list_runs, read_answers, read_run
from bakeoff.ui.compare import aggregate_rows, cost_rows, format_cell, join_questions, question_table
from bakeoff.ui.runs import headline, runs_table


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A run made by ``bakeoff run``'s own code path: two toy candidates that answer, one that fails."""
    tmp = tmp_path_factory.mktemp("documents")
    (tmp / "qa.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": f"q{i}", "question": f"what is {i}", "reference": f"what is {i}" if i % 3 else "no"}
            )
            + "\n"
            for i in range(12)
        )
    )
    (tmp / "r.yaml").write_text(
        "name: docs\ntask: qa\neval:\n  questions: qa.jsonl\n  metrics: [token_f1, exact_match, chrf]\n"
        "candidates:\n"
        "  - name: echo\n    agent: toy_agents:EchoAgent\n"
        "  - name: loud\n    agent: toy_agents:EchoAgent\n    prefix: 'A: '\n"
        "  - name: broken\n    agent: toy_agents:BrokenAgent\n"
    )
    recipe = load_recipe(tmp / "r.yaml")
    return run_recipe(recipe, recipe_text="x", runs_dir=tmp / "runs", console=Console(quiet=True))


def _file_text(document) -> str:
    """How the run store writes a document (write_json_atomic: indent 2, UTF-8, newline at the end)."""
    return json.dumps(document.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def test_a_real_runs_documents_load_and_dump_back_byte_for_byte(real_run):
    raw_scores = (real_run / "scores.json").read_text()
    scores = Scores.read(real_run / "scores.json")
    assert scores.to_dict() == json.loads(raw_scores)
    assert _file_text(scores) == raw_scores  # same keys, same order, ints stay ints
    raw_manifest = (real_run / "manifest.json").read_text()
    manifest = Manifest.read(real_run / "manifest.json")
    assert manifest.to_dict() == json.loads(raw_manifest)
    assert _file_text(manifest) == raw_manifest

    # the typed view says what the raw dict says
    raw = json.loads(raw_scores)
    assert scores.headline == raw["headline"] == "token_f1"
    assert (
        scores.entry("echo", "exact_match").mean
        == raw["candidates"]["echo"]["metrics"]["exact_match"]["mean"]
    )
    assert scores.entry("echo", "exact_match").mean == pytest.approx(8 / 12)
    assert scores.candidates["broken"].errors == 12 and scores.entry("broken", "token_f1").mean == 0.0
    assert scores.entry("echo", "token_f1").ci == raw["candidates"]["echo"]["metrics"]["token_f1"]["ci"]
    # a failed candidate (every answer an error) is compared with nothing
    assert [(c.a, c.b) for c in scores.comparisons("token_f1")] == [("echo", "loud")]
    assert scores.error_analysis.lost["broken"].versus == "echo"
    assert scores.confidence == 0.95
    # every answer of `broken` is an error: a failed candidate, so the run is partial (issue 17)
    assert manifest.status == "partial" and manifest.answering == ["echo", "loud", "broken"]
    assert scores.candidates["broken"].failed and manifest.candidates["broken"].failed
    assert "broken" not in scores.means("token_f1") and set(scores.failed_candidates()) == {"broken"}
    assert (
        manifest.candidates["loud"].agent == "toy_agents:EchoAgent"
        and manifest.candidates["broken"].errors == 12
    )
    assert {"prepare", "answer", "score"} <= set(manifest.timings_s)
    info = read_run(real_run)
    assert info.problem is None and info.scores_document.to_dict() == info.scores
    assert info.manifest_document.run_id == info.run_id


def test_old_partial_and_foreign_documents_load_and_keep_their_keys():
    old = {
        "metrics": ["a"],
        "candidates": {"x": {"metrics": {"a": {"mean": 1, "ci_low": 0.5, "ci_high": 1}}, "gpu_hours": 2}},
        "per_answer": {"x": {"q1": {"a": 1}}},
        "from_a_newer_bakeoff": {"anything": [1, 2]},
    }
    scores = Scores.of(old)
    assert scores.to_dict() == old and json.dumps(scores.to_dict()) == json.dumps(
        old
    )  # 1 stays 1, order kept
    entry = scores.entry("x", "a")
    assert entry.interval() == (0.5, 1.0) and entry.ci is None  # another producer's interval spelling
    assert scores.candidates["x"].errors == 0 and scores.candidates["x"].latency_s.p50 is None  # defaults
    assert scores.entry("x", "missing-metric") == MetricSummary() and scores.entry("nobody", "a").mean is None
    assert scores.headline is None and scores.statistics is None and scores.comparisons("a") == []
    assert Scores.of(scores) is scores and Scores.of(None).to_dict() == {}
    assert Manifest.of({"status": "complete", "recipe": "r"}).to_dict() == {
        "status": "complete",
        "recipe": "r",
    }
    with pytest.raises(ValidationError) as exc:
        Scores.of({"candidates": {"x": {"metrics": {"a": {"mean": "high"}}}}})
    assert "candidates.x.metrics.a.mean" in str(exc.value).replace("\n", ".")


def test_a_document_that_does_not_fit_is_a_located_problem(tmp_path):
    good = RunWriter.create(tmp_path, "demo", "x")
    with pytest.raises(ValidationError):
        good.write_scores({"candidates": []})  # the writer validates what it writes
    good.finish("complete")
    (good.path / "scores.json").write_text(
        json.dumps({"candidates": {"c": {"metrics": {"a": {"mean": "high"}}}}})
    )
    info = read_run(good.path)
    assert info.problem.startswith("scores.json: candidates.c.metrics.a.mean:") and info.scores is None
    bad = RunWriter.create(tmp_path, "broken-manifest", "x")
    bad.manifest["timings_s"] = "slow"
    bad.finish("complete")
    info = read_run(bad.path)
    assert info.status == "unreadable" and info.problem.startswith("manifest.json: timings_s:")
    rows = {r["recipe"]: r for r in runs_table(list_runs(tmp_path))}
    assert rows["demo"]["status"] == "unreadable" and "candidates.c.metrics.a.mean" in rows["demo"]["problem"]
    assert rows["broken-manifest"]["status"] == "unreadable"


def test_the_writer_accepts_the_typed_document_and_a_plain_dict_alike(tmp_path):
    scores = Scores(metrics=["a"], candidates={}, per_answer={})
    one, two = RunWriter.create(tmp_path, "one", "x"), RunWriter.create(tmp_path, "two", "x")
    one.write_scores(scores)
    two.write_scores(scores.to_dict())
    assert (one.path / "scores.json").read_text() == (two.path / "scores.json").read_text()
    assert json.loads((one.path / "scores.json").read_text()) == {
        "metrics": ["a"],
        "candidates": {},
        "per_answer": {},
    }


QUESTIONS = [
    Question(id=f"q{i:02d}", question=f"What is item {i}?", reference=f"item {i} costs {i} euro")
    for i in range(20)
]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    rows = {
        name: [
            {
                "question_id": q.id,
                "question": q.question,
                "reference": q.reference,
                "answer": answer(q),
                "latency_s": 0.1,
            }
            for q in QUESTIONS
        ]
        for name, answer in (
            ("right", lambda q: q.reference),
            ("vague", lambda q: "item" if q.id > "q04" else q.reference),
        )
    }
    scores = score_answers(QUESTIONS, rows, ScoringSettings(metrics=["token_f1", "exact_match"]))
    return scores, rows, write_run(tmp_path_factory.mktemp("typed"), scores.to_dict(), rows)


def _printed(scores, **kw) -> str:
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    print_scores(console, scores, **kw)
    return console.export_text()


def test_scoring_returns_the_typed_document_and_the_readers_render_it(scored):
    scores, rows, run = scored
    assert isinstance(scores, Scores) and scores.metrics == ["token_f1", "exact_match"]
    assert scores.entry("right", "exact_match").mean == 1.0 and scores.best_per_metric()["exact_match"] == {
        "right"
    }
    # the terminal table: the same text from the typed model and from the dict on disk
    typed = _printed(scores, errors=True)
    assert typed == _printed(json.loads((run / "scores.json").read_text()), errors=True)
    right = scores.entry("right", "token_f1")
    assert f"{right.mean:.3f} ★" in typed and interval(right.ci) in typed
    assert "paired comparisons · token_f1" in typed and "✔ right" in typed and "lost to right" in typed
    # the report reads the run's typed documents
    text, files = render_markdown(build_report(read_run(run)), "r")
    assert "**right** has the highest mean" in text and "right beats vague" in text
    assert f"| **token_f1** | {number(right.mean)} {interval(right.ci)} |" in text
    assert len(files) >= 4
    # the console logic: typed in, the same rows as from the raw dict
    info = read_run(run)
    assert aggregate_rows(info.scores_document) == aggregate_rows(info.scores)
    assert aggregate_rows(scores)[0]["token_f1_low"] == right.ci[0]
    assert headline(scores) == ("token_f1", "right", right.mean)
    views = join_questions(scores, read_answers(run))
    assert question_table(views, ["right", "vague"], metric="exact_match")[-1]["vague · exact_match"] == 0.0
    assert cost_rows(scores)[0]["latency_p50_s"] == pytest.approx(0.1)


def test_classification_tables_read_the_typed_report():
    labels = ["pos", "neg"]
    qs = [Question(id=f"r{i}", question=f"text {i}", reference=labels[i % 2]) for i in range(8)]
    rows = [
        {"question_id": q.id, "reference": q.reference, "label": q.reference if i else None}
        for i, q in enumerate(qs)
    ]
    scores = score_answers(qs, {"c": rows}, ScoringSettings(task="classification", labels=labels))
    report = scores.candidates["c"].classification
    assert (
        report.unparsed == 1
        and report.per_label["neg"].recall == 1.0
        and report.per_label["pos"].support == 4
    )
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    for table in classification_tables(scores):
        console.print(table)
    out = console.export_text()
    assert "c: per-label" in out and "unparsed answers: 1" in out and "0.750" in out  # pos recall 3/4


def test_one_interval_formatter_everywhere():
    assert interval([0.15, 0.25]) == "[0.15, 0.25]" and interval([0.15, 0.25], 3) == "[0.150, 0.250]"
    assert interval(None) == "" and interval([None, 0.2]) == ""
    assert mean_cell(0.203, [0.15, 0.25]) == "0.203 [0.15, 0.25]" == format_cell(0.203, 0.15, 0.25, False)
    assert mean_cell(0.203, None, best=True) == "0.203 ★" and mean_cell(None) == "—"
    assert (
        number(None) == "—"
        and number(1.23456, 2) == "1.23"
        and percent(0.125) == "12%"
        and percent(None) == "—"
    )


def test_the_console_reads_a_fixture_run_through_the_typed_model(tmp_path):
    info = read_run(write_rich_run(tmp_path))
    doc = info.scores_document
    assert doc.entry("rag", "rougeL").interval() == (
        pytest.approx(info.scores["candidates"]["rag"]["metrics"]["rougeL"]["ci_low"]),
        pytest.approx(info.scores["candidates"]["rag"]["metrics"]["rougeL"]["ci_high"]),
    )
    assert info.manifest_document.candidates["lora"].agent == "finetuned"
    assert runs_table([info])[0]["duration_s"] == 330.0
