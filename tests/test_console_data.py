"""The console's tables, joins, filters and readers, on fixture files in the run formats (no Streamlit)."""

import json

import pytest
from console_fixtures import write_corrupt_run, write_rich_run

from bakeoff.run.store import list_runs, read_answers, read_run
from bakeoff.ui.compare import (
    aggregate_rows,
    chart_rows,
    classification_rows,
    cost_rows,
    disagreement,
    filter_disagreements,
    format_cell,
    join_questions,
    merge_runs,
    metric_interval,
    question_table,
)
from bakeoff.ui.runs import headline, runs_table
from bakeoff.ui.training import curve_rows, read_training, selected_steps, training_facts


@pytest.fixture
def rich(tmp_path):
    path = write_rich_run(tmp_path)
    return read_run(path), read_answers(path)


def test_runs_table_lists_a_corrupt_run_as_unreadable(tmp_path):
    write_rich_run(tmp_path)
    write_corrupt_run(tmp_path)
    rows = {r["recipe"]: r for r in runs_table(list_runs(tmp_path))}
    assert rows["broken"]["status"] == "unreadable" and "manifest.json" in rows["broken"]["problem"]
    good = rows["contract-rag"]
    assert good["status"] == "complete" and good["candidates"] == "rag, lora, lora+rag"
    assert good["duration_s"] == 330.0 and good["questions"] == 4
    assert (good["metric"], good["best"]) == ("token_f1", "lora+rag")  # token_f1 is a headline metric
    assert [r["recipe"] for r in runs_table(list_runs(tmp_path), ["broken"])] == ["broken"]


def test_headline_prefers_task_metrics_and_handles_missing_scores():
    assert headline(None) is None
    scores = {"metrics": ["bleu", "rougeL"], "candidates": {"a": {"metrics": {"rougeL": {"mean": 0.2}}}}}
    assert headline(scores) == ("rougeL", "a", 0.2)
    assert headline({"metrics": ["accuracy", "macro_f1"], "candidates": {}}) is None


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}, (0.4, 0.6)),
        ({"mean": 0.5, "ci95_low": 0.3, "ci95_high": 0.7}, (0.3, 0.7)),
        ({"mean": 0.5, "ci": [0.1, 0.9]}, (0.1, 0.9)),
        ({"mean": 0.5, "ci95": {"low": 0.2, "high": 0.8}}, (0.2, 0.8)),
        ({"mean": 0.5}, (None, None)),
        ({"mean": 0.5, "ci_low": None, "ci_high": 0.6}, (None, None)),
        ({"mean": 0.5, "ci_low": float("nan"), "ci_high": 0.6}, (None, None)),
        (None, (None, None)),
    ],
)
def test_metric_interval_reads_the_spellings_in_use(entry, expected):
    assert metric_interval(entry) == expected


def test_aggregate_rows_mark_best_and_carry_intervals(rich):
    info, _ = rich
    rows = {r["candidate"]: r for r in aggregate_rows(info.scores)}
    assert set(rows) == {"rag", "lora", "lora+rag"}
    assert rows["lora+rag"]["rougeL_best"] and not rows["rag"]["rougeL_best"]
    low, mean, high = rows["rag"]["rougeL_low"], rows["rag"]["rougeL"], rows["rag"]["rougeL_high"]
    assert low < mean < high
    assert format_cell(0.41234, 0.35, 0.47, True) == "0.412 [0.35, 0.47] ★"
    assert format_cell(None, None, None, False) == "—"
    bars = chart_rows(info.scores)
    assert len(bars) == 3 * 2 and all(b["ci_low"] is not None for b in bars)


def test_cost_rows(rich):
    info, _ = rich
    row = next(r for r in cost_rows(info.scores) if r["candidate"] == "rag")
    assert row["latency_p50_s"] == 0.5 and row["completion_tokens"] == 48 and row["tokens_per_answer"] == 12.0


def test_join_questions_puts_answers_beside_reference_with_scores_and_contexts(rich):
    info, answers = rich
    views = join_questions(info.scores, answers)
    assert [v.id for v in views] == ["q1", "q2", "q3", "q4"]
    q1 = views[0]
    assert q1.reference == "The laws of Delaware."
    assert (
        q1.answers["rag"]["answer"] == "The laws of Delaware."
        and q1.answers["rag"]["scores"]["rougeL"] == 1.0
    )
    assert q1.answers["rag"]["contexts"][0]["source"] == "master-services-agreement.md"
    assert q1.answers["lora"]["contexts"] == []
    table = question_table(views, ["rag", "lora"], metric="rougeL")
    assert table[0]["rag"] == "The laws of Delaware." and table[0]["rag · rougeL"] == 1.0
    assert table[1]["lora"] == "Sixty days."


def test_disagreement_filter(rich):
    info, answers = rich
    views = join_questions(info.scores, answers)
    spreads = {v.id: disagreement(v, metric="rougeL") for v in views}
    assert all(0.0 <= s <= 1.0 for s in spreads.values())
    kept = filter_disagreements(views, metric="rougeL", threshold=0.5)
    assert {v.id for v in kept} == {k for k, s in spreads.items() if s >= 0.5}
    assert filter_disagreements(views, metric="rougeL", threshold=0.0) == views
    # without scores, differing normalised texts disagree; identical ones agree
    same = join_questions({}, [{"candidate": c, "question_id": "x", "answer": "Yes."} for c in "ab"])
    assert disagreement(same[0], metric=None) == 0.0
    differ = join_questions(
        {},
        [{"candidate": "a", "question_id": "x", "answer": "Yes"}]
        + [{"candidate": "b", "question_id": "x", "answer": "No"}],
    )
    assert disagreement(differ[0], metric=None) == 1.0
    labels = join_questions(
        {},
        [
            {"candidate": "a", "question_id": "x", "label": "positive"},
            {"candidate": "b", "question_id": "x", "label": "negative"},
        ],
    )
    assert disagreement(labels[0], metric="accuracy", task="classification") == 1.0


def test_merge_two_runs_renames_candidates(tmp_path):
    one = read_run(write_rich_run(tmp_path, run_id="20260101-120000-aaaa"))
    two = read_run(write_rich_run(tmp_path, run_id="20260102-120000-bbbb"))
    scores, answers = merge_runs([(one, read_answers(one.path)), (two, read_answers(two.path))])
    assert (
        "rag · 20260101-120000-aaaa" in scores.candidates
        and "rag · 20260102-120000-bbbb" in scores.candidates
    )
    assert len(scores.candidates) == 6 and scores.metrics == ["rougeL", "token_f1"]
    views = join_questions(scores, answers)
    assert len(views) == 4 and len(views[0].answers) == 6
    assert views[0].answers["rag · 20260102-120000-bbbb"]["scores"]["rougeL"] == 1.0


def test_training_logs_curves_selected_step_and_facts(tmp_path):
    path = write_rich_run(tmp_path)
    logs = read_training(path)
    assert set(logs) == {"lora", "lora+rag"}
    points = curve_rows(logs, ["lora"])
    splits = {p["split"] for p in points}
    assert splits == {"train", "validation"}
    assert len([p for p in points if p["split"] == "train"]) == 6  # null losses skipped
    assert len([p for p in points if p["split"] == "validation"]) == 3
    assert selected_steps(logs) == [
        {"candidate": "lora", "step": 40, "val_loss": pytest.approx(2.3), "select": "best_val_loss"},
        {"candidate": "lora+rag", "step": 40, "val_loss": pytest.approx(2.45), "select": "best_val_loss"},
    ]
    facts = {f["fact"]: f for f in training_facts(logs)}
    assert facts["train examples"]["lora"] == "120" and facts["requested method"]["lora"] == "qlora"
    assert facts["r"]["lora+rag"] == "8" and facts["final validation loss"]["lora"] == "—"


def test_training_reader_tolerates_torn_and_bad_files(tmp_path):
    folder = tmp_path / "training" / "ft"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "train_loss": 2.0}) + "\nnot json\n" + '{"step": 2, "train_lo'
    )
    (folder / "summary.json").write_text("{broken")
    log = read_training(tmp_path)["ft"]
    assert len(log.points) == 1 and log.problem and "summary" not in log.summary
    assert curve_rows({"ft": log}) == [
        {"candidate": "ft", "step": 1, "epoch": None, "split": "train", "loss": 2.0}
    ]
    assert read_training(tmp_path / "nothing") == {}


def test_classification_rows_read_the_per_label_report():
    from bakeoff.eval.classification import classification_report

    report = classification_report(
        predictions=["a", "b", None], references=["a", "a", "b"], labels=["a", "b"]
    )
    scores = {"task": "classification", "candidates": {"x": {"classification": report}, "y": {}}}
    rows = classification_rows(scores)
    assert list(rows) == ["x"]
    assert rows["x"][0] == {
        "label": "a",
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert rows["x"][-1] == {"label": "(unparsed answers)", "support": 1}
