"""Data larger than memory streams: an evaluation set is read only as far as `eval.limit` needs, and a corpus
is read, chunked, embedded and stored one file at a time (memory measured with tracemalloc)."""

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from bakeoff.models.embeddings import load_embedder
from bakeoff.models.refs import EmbeddedRef
from bakeoff.questions import load_questions
from bakeoff.rag import sync
from bakeoff.rag.chroma import ChromaSpec
from bakeoff.rag.corpus import ChunkSpec, CorpusSpec, iter_corpus, load_document
from bakeoff.rag.vectorstore import open_store

pytestmark = pytest.mark.reliability


def test_eval_limit_reads_only_the_lines_it_needs(tmp_path):
    path = tmp_path / "huge.jsonl"
    row = {"question": "What does clause {} say? " + "context " * 20, "reference": "x" * 100}
    with path.open("w") as fh:
        for i in range(100_000):
            fh.write(json.dumps({"id": f"q{i}", **row}) + "\n")
        fh.write("this line is not JSON\n")  # never reached with a limit
    size = path.stat().st_size
    assert size > 30_000_000

    tracemalloc.start()
    try:
        questions = load_questions(path, task="qa", limit=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [q.id for q in questions] == [f"q{i}" for i in range(50)]
    assert peak < 1_000_000, f"peak {peak} bytes for a {size}-byte file"


def test_corpus_is_indexed_file_by_file_in_bounded_memory(tmp_path, monkeypatch):
    # 60 files of ~90 kB in paragraphs, one chunk each (the embedding model reads a chunk's first 256 tokens,
    # so the test stays fast); new chunks are embedded and stored 4 at a time instead of 64, so that the bound
    # shows at this size: memory holds about 4 chunks and one file being split, never the 5 MB corpus.
    monkeypatch.setattr(sync, "EMBED_BATCH", 4)
    docs = tmp_path / "docs"
    docs.mkdir()
    rng = random.Random(0)
    words = [f"term{i}" for i in range(2000)]
    for i in range(60):
        paragraphs = (" ".join(rng.choice(words) for _ in range(120)) for _ in range(90))
        (docs / f"d{i:02d}.txt").write_text(f"Document {i}.\n\n" + "\n\n".join(paragraphs))
    total = sum(p.stat().st_size for p in docs.iterdir())
    assert total > 5_000_000

    embedder = load_embedder(EmbeddedRef("all-minilm-l6-v2"))
    store = open_store(embedder, recipe_name="streaming", spec=ChromaSpec(path=tmp_path / "db"))
    spec = CorpusSpec(paths=["docs"], chunk=ChunkSpec(size=100_000, overlap=0))
    load_document(docs / "d00.txt", "warm-up")  # import the loaders before measuring
    embedder.embed(["warm-up"])

    tracemalloc.start()
    try:
        report = store.sync(iter_corpus(spec, tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.documents, report.chunks, report.added, store.count()) == (60, 60, 60, 60)
    assert peak < total / 4, f"peak {peak} bytes while indexing {total} bytes"

    # Re-indexing reads every file again but embeds nothing; a file gone from the corpus loses its chunk.
    (docs / "d07.txt").unlink()
    again = store.sync(iter_corpus(spec, tmp_path))
    assert (again.added, again.unchanged, again.removed, again.removed_sources) == (
        0,
        59,
        1,
        ["docs/d07.txt"],
    )
    assert store.count() == 59


def test_truncations_are_counted_in_the_manifest_and_the_scores(tmp_path, monkeypatch):
    """`max_new_tokens` cuts answers; prompts longer than the context window lose their oldest tokens; both are
    counted per candidate. (The context window is made 160 tokens so that retrieved passages overflow it.)"""
    import io

    from rich.console import Console

    from bakeoff.models.transformers_backend import TransformersGenerator
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_answers, read_run

    monkeypatch.setattr(TransformersGenerator, "context_length", property(lambda self: 160))
    root = Path(__file__).resolve().parent.parent
    recipe = tmp_path / "limits.yaml"
    recipe.write_text(
        f"name: limits\ntask: qa\neval: {{questions: {root}/data/contract-qa.jsonl, limit: 4, metrics: [rougeL]}}\n"
        f"corpus: {{paths: [{root}/data/contract/annex-b-pricing.md], chunk: {{size: 800, overlap: 0}}}}\n"
        "candidates:\n"
        "  - {name: closed-book, agent: fewshot, generation: {max_new_tokens: 3, batch_size: 4}}\n"
        "  - {name: rag, agent: rag, k: 3, generation: {max_new_tokens: 40, batch_size: 4}}\n"
    )
    run = run_recipe(
        load_recipe(recipe),
        recipe_text=recipe.read_text(),
        runs_dir=tmp_path / "runs",
        console=Console(file=io.StringIO()),
    )
    info = read_run(run)
    rows = read_answers(run)
    for name in ("closed-book", "rag"):
        mine = [r for r in rows if r["candidate"] == name]
        facts, scores = info.manifest["candidates"][name], info.scores["candidates"][name]
        assert facts["truncated_answers"] == scores["truncated"] == sum(r["truncated"] for r in mine)
        assert (
            facts["truncated_prompts"]
            == scores["prompt_truncated"]
            == sum(r["prompt_truncated"] for r in mine)
        )
        assert all(r["prompt_tokens"] <= 160 - (3 if name == "closed-book" else 40) for r in mine)
    closed, rag = info.manifest["candidates"]["closed-book"], info.manifest["candidates"]["rag"]
    assert (
        closed["truncated_answers"] == 4 and closed["truncated_prompts"] == 0
    )  # 3 tokens never finish an answer
    assert rag["truncated_prompts"] == 4  # three 800-character passages do not fit in 120 tokens
