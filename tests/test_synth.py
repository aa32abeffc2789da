"""The synthesize stage without Dask or the real model: recipe keys, resume, torn batches, reports, leakage,
loaders and `bakeoff run` on a synthesized evaluation set (the toy extractive generator, inline)."""

import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from toy_generators import ExtractiveGenerator

from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.synth.jobs import SynthesizedRef
from bakeoff.synth.leakage import check_leakage
from bakeoff.synth.outputs import find_job, load_synthesized, resolve_data_path, synthesized_path
from bakeoff.synth.run import run_job, run_jobs

FACTS = {
    "a.txt": [
        "The notice period for termination is ninety days for either party.",
        "Invoices are payable within thirty days of the invoice date.",
        "The Supplier keeps daily backups for at least 35 days.",
    ],
    "b.txt": [
        "The Customer may audit the Supplier once in each Contract Year.",
        "The notice period for termination is ninety days for either party.",  # same fact as a.txt
        "Severity 1 incidents get a response within 30 minutes.",
    ],
}

RECIPE = """\
name: synth-test
corpus:
  paths: [docs]
  chunk: {{size: 80, overlap: 0}}
eval:
  questions: {questions}
synthesize:
  - name: train
    per_chunk: 1
    kinds: [qa]
    output: out/train.jsonl
    scheduler: inline
    chunks_per_task: 2
{extra}candidates:
  - name: echo
    agent: toy_agents:EchoAgent
"""

EVAL_JOB = """\
  - name: heldout
    per_chunk: 1
    max_chunks: 2
    disjoint_from: [train]
    output: out/eval.jsonl
    scheduler: inline
"""


def make(tmp_path: Path, extra: str = "", questions: str = "qa.jsonl", facts=FACTS) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name, lines in facts.items():
        (docs / name).write_text("\n\n".join(lines) + "\n")
    (tmp_path / "qa.jsonl").write_text('{"id": "1", "question": "Who?", "reference": "Ann"}\n')
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(questions=questions, extra=extra))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    return [str(p) for p in exc.value.problems]


# -- recipe keys --------------------------------------------------------------------------------------------
def test_jobs_validate_with_defaults_and_resolved_paths(tmp_path):
    recipe = load_recipe(make(tmp_path, EVAL_JOB, questions="{synthesized: heldout}"))
    train, heldout = recipe.synthesize
    assert train.mode == "generate" and train.from_ == "corpus" and train.kinds == ["qa"]
    assert train.output == (tmp_path / "out" / "train.jsonl").resolve()
    assert (
        train.min_support == 0.6
        and train.generation.max_new_tokens == 96
        and train.generation.temperature == 0
    )
    assert heldout.disjoint_from == ["train"] and heldout.disjoint_by == "chunk"
    assert recipe.eval.questions == SynthesizedRef("heldout")
    assert synthesized_path(recipe, "heldout") == heldout.output
    assert recipe.model_dump(mode="json")["eval"]["questions"] == {"synthesized": "heldout"}


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "per_chunk: 1",
            "per_chunck: 1",
            ":9:5: synthesize[0].per_chunck: unknown key 'per_chunck'; did you mean 'per_chunk'?",
        ),
        (
            "    per_chunk: 1",
            "    mode: labels",
            ":8:5: synthesize[0]: unknown mode 'labels'; use one of: generate, label",
        ),
        (
            "kinds: [qa]",
            "kinds: [qa, essay]",
            ":10:17: synthesize[0].kinds[1]: Input should be 'qa' or 'instruction'",
        ),
        (
            "per_chunk: 1",
            "disjoint_from: [nope]",
            ":9:21: synthesize[0].disjoint_from[0]: no synthesize job named 'nope'",
        ),
        (
            "per_chunk: 1",
            "disjoint_from: [train]",
            "synthesize[0].disjoint_from[0]: a job cannot be disjoint from itself",
        ),
        (
            "scheduler: inline",
            "scheduler: tcp://10.0.0.5:8786\n    workers: 2",
            "workers: only for scheduler: local",
        ),
        (
            "scheduler: inline",
            "scheduler: dask",
            "scheduler: write `local` (default), `inline` or a scheduler address",
        ),
        (
            "per_chunk: 1",
            "min_support: 1.5",
            ":9:18: synthesize[0].min_support: Input should be less than or equal to 1",
        ),
        ("per_chunk: 1", "generator: candidate:echo", "a candidate's model cannot be shipped to workers"),
    ],
)
def test_job_problems_are_located(tmp_path, old, new, expected):
    path = make(tmp_path)
    path.write_text(path.read_text().replace(old, new, 1))
    found = problems(path)
    assert any(expected in p for p in found), found


def test_cross_job_problems(tmp_path):
    extra = """\
  - name: train
    output: out/train.jsonl
  - name: labelled
    mode: label
    from: qa.jsonl
    output: out/labels.jsonl
  - name: wrong
    from: texts.jsonl
    output: out/w.jsonl
"""
    path = make(tmp_path, extra, questions="{synthesized: missing}")
    found = "\n".join(problems(path))
    assert "synthesize[1].name: duplicate job name 'train' (also synthesize[0])" in found
    assert "synthesize[1].output: output 'out/train.jsonl' is also written by synthesize[0]" in found
    assert "synthesize[2]: a label job needs `labels:`" in found
    assert "synthesize[3].from: from: 'texts.jsonl' — a generate job reads the recipe's corpus" in found
    assert "add `mode: label`" in found
    assert "eval.questions.synthesized: no synthesize job named 'missing'" in found


def test_generate_jobs_need_a_corpus_and_cycles_are_refused(tmp_path):
    path = make(tmp_path, EVAL_JOB.replace("[train]", "[train]") + "")
    text = path.read_text().replace("corpus:\n  paths: [docs]\n  chunk: {size: 80, overlap: 0}\n", "")
    text = text.replace("    scheduler: inline\n    chunks_per_task: 2\n", "    disjoint_from: [heldout]\n")
    path.write_text(text)
    found = "\n".join(problems(path))
    assert "synthesize[0]: a generate job reads the corpus; add a top-level `corpus:` block" in found
    assert "jobs are disjoint from each other in a cycle" in found


# -- running, resuming ---------------------------------------------------------------------------------------
def test_run_writes_records_ledger_and_report_then_skips_everything(tmp_path):
    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    gen = ExtractiveGenerator(broken=("backups",))
    first = run_job(recipe, job, generator=gen)
    assert first.items == 6 and first.units == 6 and first.skipped == 0 and first.generated == 6
    assert first.rejected == {"malformed_json": 1, "duplicate": 1} and first.accepted == 4
    assert gen.calls == 3  # chunks_per_task: 2 → three batches, one generate call each
    records = load_synthesized(job.output)
    assert len(records) == 4 and len({r["id"] for r in records}) == 4
    for r in records:
        assert r["kind"] == "qa" and r["question"].endswith("?") and r["answer"] in r["passage"]
        assert r["source"] in ("docs/a.txt", "docs/b.txt") and len(r["chunk_id"]) == 32
    report = json.loads(Path(str(job.output) + ".report.json").read_text())
    totals = report["totals"]
    assert totals["generated"] == 6 and totals["accepted"] == 4 and totals["records_in_output"] == 4
    assert totals["rejected"] == {"duplicate": 1, "malformed_json": 1} and totals["acceptance_rate"] == 0.6667
    assert report["last_run"]["where"] == "inline" and "60%" in report["checks"]["unsupported"]
    rejected = [
        json.loads(line) for line in Path(str(job.output) + ".rejected.jsonl").read_text().splitlines()
    ]
    assert {r["reason"] for r in rejected} == {"malformed_json", "duplicate"}
    assert all(r["chunk_id"] and r["source"] for r in rejected)

    second = run_job(recipe, job, generator=gen)
    assert second.skipped == 6 and second.generated == 0 and second.accepted == 0 and gen.calls == 3
    assert second.where == "" and load_synthesized(job.output) == records
    assert json.loads(Path(str(job.output) + ".report.json").read_text())["totals"]["accepted"] == 4


def test_a_torn_batch_is_dropped_and_redone(tmp_path):
    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    run_job(recipe, job, generator=ExtractiveGenerator())
    complete = load_synthesized(job.output)
    ledger = Path(str(job.output) + ".ledger.jsonl")
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:-2]))  # the last batch never reached the ledger ...
    with job.output.open("a") as handle:
        handle.write('{"id": "torn", "question": "Wh')  # ... and a write was cut mid-line
    gen = ExtractiveGenerator()
    again = run_job(recipe, job, generator=gen)
    assert again.skipped == 4 and gen.prompts == 2 and again.generated == 2
    after = load_synthesized(job.output)
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in complete)


def test_failed_units_are_retried_and_fresh_starts_over(tmp_path):
    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    first = run_job(recipe, job, generator=ExtractiveGenerator(failing=("audit",)))
    assert first.failed == 1 and first.rejected["generation_error"] == 1
    gen = ExtractiveGenerator()
    second = run_job(recipe, job, generator=gen)
    assert gen.prompts == 1 and second.skipped == 5 and second.accepted == 1
    third = run_job(recipe, job, generator=gen, fresh=True)
    assert third.skipped == 0 and third.generated == 6


def test_changing_per_chunk_makes_new_units_and_reports_stale_ones(tmp_path):
    path = make(tmp_path)
    recipe = load_recipe(path)
    run_job(recipe, find_job(recipe, "train"), generator=ExtractiveGenerator())
    path.write_text(path.read_text().replace("per_chunk: 1", "per_chunk: 2"))
    recipe = load_recipe(path)
    summary = run_job(recipe, find_job(recipe, "train"), generator=ExtractiveGenerator())
    assert summary.skipped == 0 and summary.generated == 12
    assert summary.report["totals"]["units_stale"] == 6


def test_eval_job_is_disjoint_from_training_by_chunk(tmp_path):
    path = make(tmp_path, EVAL_JOB)
    path.write_text(
        path.read_text().replace("    chunks_per_task: 2\n", "    chunks_per_task: 2\n    max_chunks: 4\n")
    )
    recipe = load_recipe(path)
    gen = ExtractiveGenerator()
    train = run_job(recipe, find_job(recipe, "train"), generator=gen)
    heldout = run_job(recipe, find_job(recipe, "heldout"), generator=gen)
    assert train.items == 4 and heldout.items == 2  # the two chunks training did not take
    train_chunks = {r["chunk_id"] for r in load_synthesized(train.output)}
    heldout_chunks = {r["chunk_id"] for r in load_synthesized(heldout.output)}
    assert heldout_chunks and not train_chunks & heldout_chunks
    [leak] = heldout.report["leakage"]
    assert (
        leak["leaks"] is False and leak["shared_chunks"] == [] and leak["records"]["b"] == len(heldout_chunks)
    )


def test_disjoint_by_source_leaves_out_whole_files(tmp_path):
    extra = EVAL_JOB.replace("    max_chunks: 2\n", "    disjoint_by: source\n")
    path = make(tmp_path, extra)
    path.write_text(
        path.read_text().replace("    chunks_per_task: 2\n", "    chunks_per_task: 2\n    max_chunks: 1\n")
    )
    recipe = load_recipe(path)
    gen = ExtractiveGenerator()
    train = run_job(recipe, find_job(recipe, "train"), generator=gen)
    heldout = run_job(recipe, find_job(recipe, "heldout"), generator=gen)
    train_sources = {r["source"] for r in load_synthesized(train.output)}
    heldout_sources = {r["source"] for r in load_synthesized(heldout.output)}
    assert heldout.items == 3 and len(train_sources) == 1 and not train_sources & heldout_sources
    [leak] = heldout.report["leakage"]
    assert leak["shared_chunks"] == [] and leak["shared_sources"] == []
    # the same sentence stands in both files: disjoint sources, yet an identical question is still a leak
    assert leak["leaks"] == bool(leak["shared_questions"])


def test_run_jobs_runs_what_a_job_is_disjoint_from_first(tmp_path, monkeypatch):
    import bakeoff.synth.run as synth_run
    from bakeoff.synth.report import JobSummary

    recipe = load_recipe(make(tmp_path, EVAL_JOB))
    order = []

    def record(recipe, job, **kwargs):
        order.append(job.name)
        return JobSummary(job.name, job.mode, job.output, 0, 0, 0)

    monkeypatch.setattr(synth_run, "run_job", record)
    run_jobs(recipe, ["heldout", "train"])
    assert order == ["train", "heldout"]
    order.clear()
    run_jobs(recipe, ["heldout"])
    assert order == ["heldout"]  # only what was asked; train's plan still decides what heldout leaves out


# -- labelling ----------------------------------------------------------------------------------------------
def test_label_job_rejects_empty_and_duplicate_texts_and_reports_agreement(tmp_path):
    texts = [
        {"id": "r1", "text": "Really positive experience", "label": "positive"},
        {"id": "r2", "text": "Negative: crashes on start", "label": "negative"},
        {"id": "r3", "text": "really POSITIVE experience!", "label": "positive"},
        {"id": "r4", "text": "   "},
        {"id": "r5", "text": "Nothing to say", "label": "neutral"},
        {"id": "r6", "text": "positive but marked negative", "label": "negative"},
    ]
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    extra = """\
  - name: reviews
    mode: label
    from: texts.jsonl
    labels: [positive, negative, neutral]
    output: out/labels.jsonl
    scheduler: inline
    texts_per_task: 2
"""
    recipe = load_recipe(make(tmp_path, extra))
    job = find_job(recipe, "reviews")
    gen = ExtractiveGenerator()
    summary = run_job(recipe, job, generator=gen)
    assert gen.prompts == 4  # the empty and the duplicate text are never sent
    assert summary.rejected == {"empty_field": 1, "duplicate": 1, "unparseable_label": 1}
    records = load_synthesized(job.output)
    assert [(r["id"], r["label"]) for r in records] == [
        ("r1", "positive"),
        ("r2", "negative"),
        ("r6", "positive"),
    ]
    totals = summary.report["totals"]
    assert totals["agreement_with_input_labels"] == {"records": 3, "agree": 2, "rate": 0.6667}
    assert load_synthesized(job.output, form="alpaca")[0] == {
        "instruction": "Really positive experience",
        "input": "",
        "output": "positive",
    }
    again = run_job(recipe, job, generator=gen)
    assert again.skipped == 6 and gen.prompts == 4


# -- data for other stages ----------------------------------------------------------------------------------
def test_alpaca_form_and_references_through_a_run_context(tmp_path):
    from bakeoff.run.runner import make_context

    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    ctx = make_context(recipe, Console(quiet=True))
    with pytest.raises(Exception, match="does not exist yet; run `bakeoff synthesize RECIPE --job train`"):
        resolve_data_path(ctx, SynthesizedRef("train"))
    run_job(recipe, job, generator=ExtractiveGenerator())
    assert resolve_data_path(ctx, SynthesizedRef("train")) == job.output == synthesized_path(ctx, "train")
    rows = load_synthesized(job.output, form="alpaca")
    records = load_synthesized(job.output)
    assert rows[0] == {"instruction": records[0]["question"], "input": "", "output": records[0]["answer"]}
    with pytest.raises(Exception, match="no synthesize job named 'nope'; jobs: train"):
        synthesized_path(recipe, "nope")


def test_bakeoff_run_evaluates_on_a_synthesized_set(tmp_path):
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_answers, read_run

    path = make(tmp_path, EVAL_JOB.replace("    max_chunks: 2\n", ""), questions="{synthesized: heldout}")
    path.write_text(
        path.read_text().replace("    chunks_per_task: 2\n", "    chunks_per_task: 2\n    max_chunks: 3\n")
    )
    recipe = load_recipe(path)
    for name in ("train", "heldout"):
        run_job(recipe, find_job(recipe, name), generator=ExtractiveGenerator())
    run_dir = run_recipe(
        recipe, recipe_text=path.read_text(), runs_dir=tmp_path / "runs", console=Console(quiet=True)
    )
    info = read_run(run_dir)
    heldout = load_synthesized(find_job(recipe, "heldout").output)
    assert info.status == "complete" and info.manifest["n_questions"] == len(heldout) > 0
    assert set(info.manifest["synthesize"]) == {"train", "heldout"}
    assert info.manifest["synthesize"]["heldout"]["accepted"] == len(heldout)
    assert {r["question_id"] for r in read_answers(run_dir)} == {r["id"] for r in heldout}


# -- leakage ------------------------------------------------------------------------------------------------
def test_leakage_reports_overlapping_chunks_sources_and_questions(tmp_path, bakeoff_cmd):
    train = tmp_path / "train.jsonl"
    held = tmp_path / "eval.jsonl"
    rows_a = [
        {
            "question": "What is the notice period?",
            "answer": "90 days",
            "chunk_id": "c1",
            "source": "docs/a.txt",
        },
        {"question": "When are invoices due?", "answer": "30 days", "chunk_id": "c2", "source": "docs/a.txt"},
    ]
    rows_b = [
        {
            "question": "what is the NOTICE period",
            "answer": "ninety days",
            "chunk_id": "c9",
            "source": "docs/b.txt",
        },
        {
            "question": "How often may the Customer audit?",
            "answer": "Once a year",
            "chunk_id": "c2",
            "source": "a.txt",
        },
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    held.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    leak = check_leakage(train, held)
    assert leak.chunks == ["c2"] and leak.sources == ["a.txt"]
    assert leak.questions == ["What is the notice period?"] and leak.leaks
    proc = subprocess.run(
        [*bakeoff_cmd, "leakage", str(train), str(held)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "shared chunks:    1  c2" in proc.stdout
        and "leakage: the sets share chunks or questions" in proc.stderr
    )
    clean = tmp_path / "clean.jsonl"
    clean.write_text(
        json.dumps({"question": "Other?", "answer": "x", "chunk_id": "c7", "source": "c.txt"}) + "\n"
    )
    proc = subprocess.run(
        [*bakeoff_cmd, "leakage", str(train), str(clean)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "no shared chunks or questions" in proc.stdout


def test_leakage_locates_hand_written_passages_in_the_corpus(tmp_path):
    from bakeoff.rag.corpus import load_corpus

    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    run_job(recipe, job, generator=ExtractiveGenerator())
    handwritten = tmp_path / "qa-handwritten.jsonl"
    handwritten.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "Audits?",
                "reference": "once a year",
                "passage": "audit the Supplier once",
            }
        )
        + "\n"
    )
    chunks = load_corpus(recipe.corpus, tmp_path).chunks
    leak = check_leakage(job.output, handwritten, chunks=chunks)
    assert len(leak.chunks) == 1 and leak.leaks
    assert check_leakage(job.output, handwritten).unlocated == {"b": 1}  # without the corpus: not located


def test_synthesize_cli_without_jobs_is_a_clear_error(tmp_path, bakeoff_cmd):
    path = make(tmp_path)
    text = path.read_text()
    text = text.replace("toy_agents:EchoAgent", "fewshot")
    path.write_text(text[: text.index("synthesize:")] + text[text.index("candidates:") :])
    proc = subprocess.run([*bakeoff_cmd, "synthesize", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "has no `synthesize:` block" in proc.stderr


def test_two_runs_never_write_the_same_output_at_once(tmp_path):
    from filelock import FileLock

    from bakeoff.synth.jobs import SynthError

    recipe = load_recipe(make(tmp_path))
    job = find_job(recipe, "train")
    job.output.parent.mkdir(parents=True)
    with FileLock(str(job.output) + ".lock"), pytest.raises(SynthError, match="another process is writing"):
        run_job(recipe, job, generator=ExtractiveGenerator())
    assert run_job(recipe, job, generator=ExtractiveGenerator()).generated == 6  # free again


# -- training on synthesized data ------------------------------------------------------------------------------
LORA_ON_SYNTH = """\
  - name: tuned
    agent: finetuned
    train:
      method: lora
      data: {{kind: instruct, path: {{synthesized: {job}}}, validation: 0.25, test: 0}}
      max_steps: 2
      batch_size: 2
      max_length: 64
      lora: {{r: 4, alpha: 8}}
"""


def test_a_misnamed_job_in_training_data_is_a_located_error(tmp_path):
    path = make(tmp_path)
    path.write_text(path.read_text() + LORA_ON_SYNTH.format(job="trian"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "synthesized: trian" in text)
    assert any(
        f":{line}:50:" in p
        and "candidates[1].train.data.path.synthesized: no synthesize job named 'trian'; jobs: train" in p
        for p in problems(path)
    ), problems(path)


def test_a_fine_tune_trains_on_a_synthesize_jobs_output(tmp_path):
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    path = make(tmp_path)
    path.write_text(path.read_text() + LORA_ON_SYNTH.format(job="train"))
    recipe = load_recipe(path)
    run_job(recipe, find_job(recipe, "train"), generator=ExtractiveGenerator())
    written = load_synthesized(find_job(recipe, "train").output)
    run_dir = run_recipe(
        recipe,
        recipe_text=path.read_text(),
        runs_dir=tmp_path / "runs",
        console=Console(quiet=True),
        only=["tuned"],
    )
    info = read_run(run_dir)
    assert info.status == "complete"
    summary = json.loads((run_dir / "training" / "tuned" / "summary.json").read_text())
    assert summary["data"]["source"] == f"{{synthesized: train}} ({find_job(recipe, 'train').output})"
    assert summary["train_examples"] + summary["val_examples"] == len(written) >= 4
    assert summary["total_steps"] == 2
