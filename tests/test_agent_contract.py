"""The narrow agent contract: what `answer()` receives, what the context shows, the optional capabilities that
replace attribute sniffing, slow work in `prepare()`, and labels read from every classification candidate."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from bakeoff.agents.base import Agent, AgentContext, Registrable, Retriever, load_agent_class
from bakeoff.agents.prompts import CLASSIFY_SYSTEM, QA_SYSTEM, RAG_CLASSIFY_SYSTEM, RAG_SYSTEM, parse_label
from bakeoff.core import Query
from bakeoff.recipe.load import load_recipe
from bakeoff.run.runner import build_agents, make_context, run_recipe
from bakeoff.run.store import read_answers, read_run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LABELS = ["positive", "negative", "neutral"]
REVIEWS = [
    ("r1", "Superb offline sync, every scan uploaded.", "positive"),
    ("r2", "Logs me out every time; unusable in a truck.", "negative"),
    ("r3", "It lists shipment status and ETA.", "neutral"),
    ("r4", "Reports are basic; no strong opinion.", "neutral"),
]


@pytest.fixture(autouse=True)
def _toys_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # toy_agents, toy_finetune


@pytest.fixture
def spy():
    """The spy agent class the runner will load (cleared)."""
    cls = load_agent_class("toy_agents:SpyAgent")
    cls.seen.clear()
    return cls


def classification_recipe(tmp_path: Path, candidates: str, *, extra: str = "", eval_extra: str = "") -> Path:
    (tmp_path / "reviews.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t, "label": lab}) + "\n" for i, t, lab in REVIEWS)
    )
    path = tmp_path / "r.yaml"
    path.write_text(
        f"name: cls\ntask: classification\nlabels: [{', '.join(LABELS)}]\n{extra}"
        f"eval:\n  questions: reviews.jsonl\n{eval_extra}candidates:\n{candidates}"
    )
    return path


def protocol_members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def run(path: Path, tmp_path: Path) -> Path:
    return run_recipe(
        load_recipe(path),
        recipe_text=path.read_text(),
        runs_dir=tmp_path / "runs",
        console=Console(quiet=True),
    )


def labels_of(run_dir: Path, candidate: str) -> dict[str, str | None]:
    return {r["question_id"]: r["label"] for r in read_answers(run_dir) if r["candidate"] == candidate}


def test_answer_gets_queries_without_references_and_a_narrow_context(spy, tmp_path):
    path = classification_recipe(tmp_path, "  - {name: spy, agent: 'toy_agents:SpyAgent'}\n")
    run_dir = run(path, tmp_path)
    [seen] = spy.seen
    assert [type(q) for q in seen["questions"]] == [Query] * 4
    assert seen["questions"][0] == Query("r1", REVIEWS[0][1])
    assert not any(hasattr(q, key) for q in seen["questions"] for key in ("reference", "passage", "source"))
    ctx = seen["ctx"]
    public = {name for name in dir(ctx) if not name.startswith("_")}
    assert public == {
        "task", "labels", "console", "base_model", "run_dir", "folder", "corpus", "retrain", "may_train",
        "generator_for", "note", "data_path",
    }  # fmt: skip
    assert public == protocol_members(AgentContext)  # the runner's view implements the documented contract
    assert ctx.task == "classification" and list(ctx.labels) == LABELS and ctx.corpus is None
    assert ctx.run_dir == run_dir and ctx.folder == run_dir / "training" / "spy"
    # the runner kept the references for scoring: the echo of a review is no label
    assert read_run(run_dir).scores["candidates"]["spy"]["classification"]["unparsed"] == 4


def test_labels_are_read_from_every_classification_candidate(tmp_path):
    """An agent that leaves `label` unset gets it read from its text (JSON first where it asks for JSON); an
    agent that sets a label keeps it."""
    words = {"r1": "This is positive.", "r2": "Clearly negative!", "r3": "neutral", "r4": "no idea"}
    as_json = {
        "r1": '{"label": "positive"}',
        "r2": 'negative, so {"label": "negative"}',
        "r3": 'positive? no: {"label": "neutral"}',  # JSON first: a text reading would say positive
        "r4": '{"label": "meh"} neutral',
    }
    path = classification_recipe(
        tmp_path,
        f"  - {{name: words, agent: 'toy_agents:ScriptedAgent', replies: {json.dumps(words)}}}\n"
        f"  - {{name: json, agent: 'toy_agents:ScriptedAgent', output: json, replies: {json.dumps(as_json)}}}\n"
        f"  - {{name: own, agent: 'toy_agents:ScriptedAgent', own_label: neutral, replies: {json.dumps(words)}}}\n",
    )
    run_dir = run(path, tmp_path)
    assert labels_of(run_dir, "words") == {"r1": "positive", "r2": "negative", "r3": "neutral", "r4": None}
    assert labels_of(run_dir, "json") == {
        "r1": "positive",
        "r2": "negative",
        "r3": "neutral",
        "r4": "neutral",
    }
    assert labels_of(run_dir, "own") == dict.fromkeys(["r1", "r2", "r3", "r4"], "neutral")
    scores = read_run(run_dir).scores["candidates"]
    assert scores["words"]["classification"]["unparsed"] == 1
    assert scores["words"]["classification"]["accuracy"] == pytest.approx(3 / 4)
    assert scores["json"]["classification"]["accuracy"] == 1.0
    assert scores["own"]["classification"]["accuracy"] == pytest.approx(2 / 4)


def test_a_qa_recipe_reads_no_labels(tmp_path):
    (tmp_path / "qa.jsonl").write_text('{"id": "q1", "question": "positive?", "reference": "positive"}\n')
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: qa\neval:\n  questions: qa.jsonl\ncandidates:\n  - {name: e, agent: 'toy_agents:EchoAgent'}\n"
    )
    assert [r["label"] for r in read_answers(run(path, tmp_path))] == [None]


def test_only_declared_retrievers_are_scored_on_retrieval(tmp_path):
    (tmp_path / "qa.jsonl").write_text(
        '{"id": "q1", "question": "Term?", "reference": "36 months", "passage": "The term is 36 months.", '
        '"source": "doc.md"}\n'
    )
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: ret\neval:\n  questions: qa.jsonl\ncandidates:\n"
        "  - {name: declared, agent: 'toy_agents:FixedRetrieverAgent', passage: The term is 36 months.}\n"
        "  - {name: undeclared, agent: 'toy_agents:UndeclaredRetrieverAgent', passage: The term is 36 months.}\n"
    )
    scores = read_run(run(path, tmp_path)).scores["candidates"]
    assert scores["declared"]["metrics"]["hit_rate@1"]["mean"] == 1.0
    assert (
        "hit_rate@1" not in scores["undeclared"]["metrics"] and "mrr" not in scores["undeclared"]["metrics"]
    )


def test_registration_is_asked_of_registrable_agents_only(tmp_path, monkeypatch):
    """A `register:` key on settings whose agent is not `Registrable` registers nothing (no register stage)."""
    import toy_finetune

    class Unregistrable(Agent):  # the toy fine-tune's settings, but not the capability
        settings_model = toy_finetune.ToyFinetuneSettings
        answer = toy_finetune.ToyFinetuneAgent.answer

    monkeypatch.setattr(toy_finetune, "Unregistrable", Unregistrable, raising=False)
    (tmp_path / "qa.jsonl").write_text('{"id": "q1", "question": "Q?", "reference": "A."}\n')
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: reg\neval:\n  questions: qa.jsonl\ncandidates:\n"
        f"  - {{name: lora, agent: 'toy_finetune:Unregistrable', source_run: {tmp_path}, "
        "register: {ollama: never-asked}}\n"
    )
    info = read_run(run(path, tmp_path))
    assert info.status == "complete" and "ollama" not in info.manifest
    assert "register" not in info.manifest["timings_s"]
    assert issubclass(toy_finetune.ToyFinetuneAgent, Registrable)
    assert not issubclass(Unregistrable, Registrable | Retriever)


def test_fewshot_reads_its_examples_in_prepare_not_when_built(tmp_path):
    (tmp_path / "ex.jsonl").write_text('{"question": "a", "answer": "b"}\n')
    (tmp_path / "qa.jsonl").write_text('{"id": "q1", "question": "Q?", "reference": "A."}\n')
    path = tmp_path / "r.yaml"
    path.write_text(
        "name: fs\neval:\n  questions: qa.jsonl\ncandidates:\n"
        "  - {name: three, agent: fewshot, k: 3, examples: ex.jsonl}\n"
    )
    recipe = load_recipe(path)
    [agent] = build_agents(recipe.candidates, make_context(recipe, Console(quiet=True))).values()
    assert agent.examples is None  # nothing read yet
    with pytest.raises(ValueError, match="k=3 but only 1 examples available"):
        agent.prepare()


def test_default_prompts_follow_the_task(tmp_path):
    """fewshot and rag ask for a label in a classification recipe; finetuned answers as it was trained."""
    corpus = f"corpus: {{paths: [{ROOT}/data/contract/annex-b-pricing.md]}}\n"
    cands = (
        "  - {name: zero, agent: fewshot}\n  - {name: rag, agent: rag}\n"
        "  - {name: ft, agent: finetuned, train: {data: {kind: instruct, path: ex.jsonl}}}\n"
    )
    (tmp_path / "ex.jsonl").write_text('{"instruction": "a", "output": "positive"}\n')
    ctx = make_context(load_recipe(classification_recipe(tmp_path, cands, extra=corpus)), Console(quiet=True))
    agents = build_agents(load_recipe(tmp_path / "r.yaml").candidates, ctx)
    fill = ", ".join(LABELS)
    assert agents["zero"].conversation("t")[0]["content"] == CLASSIFY_SYSTEM.replace("{labels}", fill)
    assert agents["rag"].conversation("t", [])[0]["content"] == RAG_CLASSIFY_SYSTEM.replace("{labels}", fill)
    assert agents["ft"].conversation("t")[0]["content"] == QA_SYSTEM  # the training prompt's system turn
    qa_path = tmp_path / "qa.yaml"
    qa_path.write_text(
        (tmp_path / "r.yaml")
        .read_text()
        .replace("task: classification\n", "")
        .replace(f"labels: [{fill}]\n", "")
    )
    qa = load_recipe(qa_path)
    rag = build_agents([qa.candidate("rag")], make_context(qa, Console(quiet=True)))["rag"]
    assert rag.conversation("t", [])[0]["content"] == RAG_SYSTEM
    assert isinstance(rag, Retriever) and rag.retrieval_k == 4


def test_the_readme_documents_the_contract_with_the_tested_toy():
    """The plugin section's example is the toy the plugin tests install, and its context table names every
    member of `AgentContext`."""
    import inspect

    import toy_agents

    section = (ROOT / "README.md").read_text().split("## Adding an agent plugin", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    for cls in (toy_agents.EchoSettings, toy_agents.EchoAgent):
        assert inspect.getsource(cls) in example
    for member in protocol_members(AgentContext):
        assert f"`{member}" in section, member
    for hook in (
        "prepare()",
        "chat(messages)",
        "describe()",
        "label_format()",
        "`Retriever`",
        "`Registrable`",
    ):
        assert hook in section, hook


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_classification_recipe_scores_the_labels_of_rag_and_finetuned_candidates(tmp_path):
    """The real `rag` and `finetuned` agents on the embedded model (a tiny LoRA, a few steps): the runner reads
    their labels like fewshot's, so they are scored, not counted as all-unparsed."""
    examples = [
        json.loads(line) for line in (ROOT / "data" / "reviews-examples.jsonl").read_text().splitlines()
    ]
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"instruction": e["text"], "output": e["label"]}) + "\n" for e in examples)
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "positive: the reviewer is pleased with the app and praises it.\n\n"
        "negative: the reviewer is unhappy: the app fails, crashes or is unusable.\n\n"
        "neutral: the reviewer describes what the app does, without an opinion.\n"
    )
    system = f"Classify the text as one of: {', '.join(LABELS)}. Reply with the label only."
    path = classification_recipe(
        tmp_path,
        "  - {name: rag, agent: rag, k: 2, generation: {max_new_tokens: 8}}\n"
        f"  - name: lora\n    agent: finetuned\n    system: {json.dumps(system)}\n"
        "    generation: {max_new_tokens: 8}\n"
        "    train: {method: lora, max_steps: 6, batch_size: 4, learning_rate: 1.0e-3, max_length: 96,\n"
        "            select: last, data: {kind: instruct, path: train.jsonl, validation: 0.0, test: 0.0}}\n",
        extra=f"corpus: {{paths: [{tmp_path / 'docs'}]}}\n",
    )
    run_dir = run(path, tmp_path)
    info = read_run(run_dir)
    assert info.status == "complete", info.manifest.get("error")
    rows = read_answers(run_dir)
    for candidate in ("rag", "lora"):
        mine = [r for r in rows if r["candidate"] == candidate]
        assert len(mine) == 4 and all(r["error"] is None for r in mine)
        assert [r["label"] for r in mine] == [parse_label(r["answer"], LABELS) for r in mine]
        assert any(r["label"] in LABELS for r in mine), [r["answer"] for r in mine]
        report = info.scores["candidates"][candidate]["classification"]
        assert report["unparsed"] == sum(r["label"] is None for r in mine) < 4
        assert 0.0 <= report["accuracy"] <= 1.0
    assert info.manifest["candidates"]["lora"]["training"]["total_steps"] == 6
