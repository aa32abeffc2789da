"""The Chroma store with the real embedding model: idempotent indexing, per-file sync, bad files, model
mismatch, the write lock, and the `bakeoff index` / `bakeoff retrieve` commands."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bakeoff.cli.app import app
from bakeoff.models.embeddings import embedded_embedding_path, load_embedder
from bakeoff.models.refs import EmbeddedRef, HFRef
from bakeoff.rag.chroma import ChromaSpec, VectorStoreError, collection_name, write_lock
from bakeoff.rag.corpus import ChunkSpec, CorpusSpec, load_corpus
from bakeoff.rag.indexing import index_corpus
from bakeoff.rag.vectorstore import open_store

ROOT = Path(__file__).resolve().parent.parent
MINILM = EmbeddedRef("all-minilm-l6-v2")


def contract_recipe(tmp_path: Path, name: str) -> Path:
    """A recipe over a private copy of the sample contract (so the test may edit it)."""
    shutil.copytree(ROOT / "data" / "contract", tmp_path / "contract")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: {name}\n"
        f"eval:\n  questions: {ROOT}/data/contract-qa.jsonl\n"
        "corpus:\n  paths: [contract]\n  chunk: {size: 512, overlap: 64}\n"
        "candidates:\n  - {name: rag, agent: rag, k: 4}\n"
    )
    return recipe


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_index_twice_adds_nothing(tmp_path):
    recipe = contract_recipe(tmp_path, "index-twice")
    code, first = invoke("index", str(recipe))
    assert code == 0, first
    expected = load_corpus(CorpusSpec(paths=["contract"]), tmp_path)
    line = f"documents: 3, chunks: {len(expected.chunks)}, skipped: 0"
    assert line in first and f"added {len(expected.chunks)}, removed 0" in first
    code, second = invoke("index", str(recipe))
    assert code == 0, second
    assert line in second and f"added 0, removed 0, unchanged {len(expected.chunks)}" in second
    assert f"holds {len(expected.chunks)} chunks" in second  # the collection did not grow

    code, out = invoke("retrieve", str(recipe), "How many days' notice stops automatic renewal?", "-k", "2")
    assert code == 0, out
    assert "#1 score 0." in out and "#2 score" in out and "#3" not in out
    assert "contract/master-services-agreement.md, chars " in out and "120 days" in out


def test_editing_one_file_reingests_only_its_chunks(tmp_path):
    recipe = contract_recipe(tmp_path, "edit-one")
    spec = CorpusSpec(paths=["contract/annex-*.md"], chunk=ChunkSpec(size=512, overlap=64))  # 2 of 3 files
    store, first = index_corpus(corpus=spec, base_dir=tmp_path, embeddings=MINILM, recipe_name="edit-one")
    assert first.added == first.chunks == store.count() and first.removed == 0
    before = {c.id: c for c in load_corpus(spec, tmp_path).chunks}

    annex = recipe.parent / "contract" / "annex-b-pricing.md"
    text = annex.read_text()
    annex.write_text(text.replace("\n\n", "\n\nRevised schedule, see clause 4.\n\n", 1))
    after = {c.id: c for c in load_corpus(spec, tmp_path).chunks}
    new_ids, gone_ids = after.keys() - before.keys(), before.keys() - after.keys()
    assert new_ids and gone_ids
    assert (
        {after[i].source for i in new_ids}
        == {before[i].source for i in gone_ids}
        == {"contract/annex-b-pricing.md"}
    )

    store, second = index_corpus(corpus=spec, base_dir=tmp_path, embeddings=MINILM, recipe_name="edit-one")
    assert second.added == len(new_ids) and second.removed == len(gone_ids)
    assert second.unchanged == len(after) - len(new_ids)
    assert second.changed_sources == ["contract/annex-b-pricing.md"]
    assert store.count() == len(after) == second.collection_size
    stored = set(store.collection.get(include=[])["ids"])
    assert stored == set(after)

    (tmp_path / "contract" / "annex-a-service-levels.md").unlink()  # a deleted file loses its chunks
    store, third = index_corpus(corpus=spec, base_dir=tmp_path, embeddings=MINILM, recipe_name="edit-one")
    assert third.removed_sources == ["contract/annex-a-service-levels.md"] and third.added == 0
    assert store.count() == third.chunks == len(load_corpus(spec, tmp_path).chunks)


def _truncated_pdf() -> bytes:
    from test_corpus import _tiny_pdf

    data = _tiny_pdf("Invoices are due in 30 days.")
    return data[: len(data) // 2]


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Payment\n\nInvoices are payable within thirty days of receipt.")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "truncated.pdf").write_bytes(_truncated_pdf())
    (docs / "latin.txt").write_bytes(
        "Caf\xe9 cr\xe8me: the late fee is \xa3500 per invoice.".encode("latin-1")
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: bad-files\neval:\n  questions: {ROOT}/data/contract-qa.jsonl\n"
        "corpus:\n  paths: [docs]\ncandidates:\n  - {name: rag, agent: rag}\n"
    )
    code, out = invoke("index", str(recipe))
    assert code == 0, out
    assert "documents: 2, chunks: 2, skipped: 3" in out
    lines = out.splitlines()
    for name, reason in [
        ("empty.txt", "empty file"),
        ("binary.txt", "binary"),
        ("truncated.pdf", "unreadable PDF"),
    ]:
        assert any(line.startswith(f"warning: skipped docs/{name}: ") and reason in line for line in lines), (
            out
        )
    assert "docs/latin.txt: not UTF-8; decoded as cp1252" in out
    code, out = invoke("retrieve", str(recipe), "What is the late fee?", "-k", "1")
    assert code == 0 and "docs/latin.txt" in out and "Café crème" in out and "£500" in out


def test_another_embedding_model_is_a_clear_error(tmp_path):
    spec = ChromaSpec(path=tmp_path / "store")
    minilm = load_embedder(MINILM)
    store = open_store(minilm, recipe_name="mismatch", spec=spec)
    store.sync(load_corpus(CorpusSpec(paths=["data/contract/annex-b-pricing.md"]), ROOT))
    # Same weights, another reference: still refused, because the store cannot know they are the same.
    other = load_embedder(HFRef(str(embedded_embedding_path("all-minilm-l6-v2"))))
    with pytest.raises(VectorStoreError) as info:
        open_store(other, recipe_name="mismatch", spec=spec)
    message = str(info.value)
    assert "embedded:all-minilm-l6-v2 (384 dimensions)" in message and f"{other.name} (384" in message
    assert "bakeoff index RECIPE --reset" in message and "chroma: {collection:" in message
    rebuilt = open_store(other, recipe_name="mismatch", spec=spec, reset=True)
    assert rebuilt.count() == 0 and rebuilt.collection.metadata["embedding_model"] == other.name


def test_writers_wait_for_the_lock_and_say_who_holds_it(tmp_path):
    lock = tmp_path / "store.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom bakeoff.rag.chroma import write_lock\nfrom pathlib import Path\n"
            f"with write_lock(Path({str(lock)!r})):\n    print('held', flush=True)\n    time.sleep(1.5)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(
                VectorStoreError, match=f"gave up after 0s waiting for lock .* held by PID {holder.pid}"
            ),
            write_lock(lock, timeout_s=0.3),
        ):
            pass
        out = io.StringIO()
        with write_lock(lock, Console(file=out, width=200)):
            pass  # got it once the holder let go
        assert f"held by PID {holder.pid}" in out.getvalue() and "waiting for lock" in out.getvalue()
    finally:
        holder.wait(timeout=30)


def test_chroma_spec_and_collection_names():
    assert collection_name("quickstart") == "bakeoff-quickstart"
    assert collection_name("a.") == "bakeoff-a"
    with pytest.raises(ValueError, match="not both"):
        ChromaSpec(path=Path("x"), host="localhost")


def test_unreachable_chroma_server_says_how_to_fix(tmp_path):
    with pytest.raises(VectorStoreError, match="cannot reach the Chroma server http://127.0.0.1:9"):
        open_store(load_embedder(MINILM), recipe_name="server", spec=ChromaSpec(host="127.0.0.1", port=9))
