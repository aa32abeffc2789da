"""Retrieval: ingestion chunks/s and query latency of embedded Chroma through ``bakeoff.rag``, by size.

The benchmark writes a synthetic corpus (contract-like clauses from a fixed vocabulary, seeded) as Markdown
files and grows it in steps — 1k, 10k, then 50k chunks of the default 512 characters — syncing the same store
after each step with :func:`bakeoff.rag.indexing.index_corpus`, so each step reads and chunks the whole corpus
and embeds only the new chunks, as a re-run does.

all-MiniLM-L6-v2 embeds about 10-30 chunks of 512 characters per second on 2 CPU cores, so embedding 50k
chunks would take the better part of an hour. Therefore:

1. the embedding batch size is tuned on a sample of the corpus (each size timed on the same chunks);
2. the first step (1k chunks) runs the whole pipeline with the real model at the tuned size;
3. the growth to 10k and 50k runs the same pipeline with a *hashing embedder* (384-dimensional signed
   bag-of-words vectors, normalised; microseconds per chunk), which measures everything but the model —
   reading, chunking, hashing ids, Chroma's writes and its HNSW index — at each size;
4. ingestion at 10k and 50k with the real model is then reported as a projection: the store's measured
   time plus the chunks at the embedding rate measured in step 2.

Queries go through :meth:`VectorStore.search` (embed the question with the real model, then Chroma's
nearest-neighbour query, k=4), one at a time, at every size; Chroma's own query time is reported apart.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Result, Scale, cli, percentile, quiet_libraries

CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"sizes": [30, 80], "real_size": 30, "queries": 5, "tune_sample": 8, "tune_sizes": [4, 8]},
    "full": {
        "sizes": [1000, 10000, 50000],
        "real_size": 1000,
        "queries": 100,
        "tune_sample": 64,
        "tune_sizes": [16, 32, 128],  # and the default, 64
    },
}
CHUNK_CHARS = 512
CHUNKS_PER_FILE = 50

_PARTIES = ["the Supplier", "the Customer", "either party", "the Processor", "the Licensee", "the Agent"]
_VERBS = ["shall deliver", "may terminate", "must notify", "shall pay", "may suspend", "shall indemnify"]
_OBJECTS = [
    "the Subscription Services",
    "all undisputed invoices",
    "written notice of a material breach",
    "the Platform Fee",
    "Customer Data held in the EU region",
    "the service credits listed in Schedule 2",
    "a security incident affecting personal data",
    "the Renewal Term",
]
_WHEN = [
    "within {n} days",
    "no later than {n} business days after the request",
    "every {n} months",
    "before day {n}",
]


def clause(rng: random.Random, number: str) -> str:
    n = rng.randint(2, 180)
    sentences = [
        f"{rng.choice(_PARTIES).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
        f"{rng.choice(_WHEN).format(n=n)}, subject to clause {rng.randint(1, 30)}.{rng.randint(1, 9)}."
        for _ in range(rng.randint(2, 4))
    ]
    return f"{number} " + " ".join(sentences)


def write_corpus(folder: Path, chunks: int, *, start_file: int = 0, seed: int = 0) -> int:
    """Write Markdown files of about ``CHUNKS_PER_FILE`` chunks each until about ``chunks`` chunks exist in
    the new files; returns the index of the next file."""
    folder.mkdir(parents=True, exist_ok=True)
    target_chars = int(chunks * (CHUNK_CHARS - 64) * 0.81)  # overlaps and paragraph ends (measured: ±2%)
    written, i = 0, start_file
    while written < target_chars:
        rng = random.Random(seed * 1_000_003 + i)
        parts, size = [f"# Agreement {i}\n"], 0
        while size < CHUNKS_PER_FILE * (CHUNK_CHARS - 64) and written + size < target_chars:
            text = clause(rng, f"{rng.randint(1, 30)}.{rng.randint(1, 20)}")
            parts.append(text + "\n")
            size += len(text) + 1
        (folder / f"agreement-{i:05d}.md").write_text("\n".join(parts), encoding="utf-8")
        written += size
        i += 1
    return i


def queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [
        f"When {rng.choice(_VERBS).split()[0]} {rng.choice(_PARTIES)} {rng.choice(_VERBS).split()[1]} "
        f"{rng.choice(_OBJECTS)}?"
        for _ in range(n)
    ]


class HashingEmbedder:
    """Signed bag-of-words vectors (feature hashing): the store's cost without a model's."""

    def __init__(self, dimension: int = 384) -> None:
        import numpy as np

        self.name = "bench:hashing-384"
        self.dimension = dimension
        self._table = np.random.default_rng(0).standard_normal((1 << 14, dimension)).astype("float32")

    def embed(self, texts: list[str]) -> list[list[float]]:
        import zlib

        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype="float32")
        for row, text in enumerate(texts):
            ids = [zlib.crc32(w.encode()) & 0x3FFF for w in text.lower().split()]
            if ids:
                out[row] = self._table[ids].sum(axis=0)
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-9)
        return out.tolist()


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent embedding."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.seconds = 0.0
        self.texts = 0

    @property
    def tokenizer(self):
        return getattr(self.inner, "tokenizer", None)

    def embed(self, texts: list[str]) -> list[list[float]]:
        t0 = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - t0
            self.texts += len(texts)


def tune_batch_size(embedder, texts: list[str], sizes: list[int]) -> dict[int, float]:
    """Chunks/s of the embedding model at each batch size, on the same texts (one warm-up first), through
    ``embed`` as indexing calls it (on bakeoff's CPU threads)."""
    saved = embedder.batch_size
    embedder.embed(texts[:4])
    rates = {}
    try:
        for size in sizes:
            embedder.batch_size = size
            t0 = time.perf_counter()
            embedder.embed(texts)
            rates[size] = len(texts) / (time.perf_counter() - t0)
    finally:
        embedder.batch_size = saved
    return rates


def sync(folder: Path, store_dir: Path, embedder, recipe: str):
    """One ``index_corpus`` call with ``embedder`` in place of the recipe's model."""
    from unittest import mock

    from bakeoff.models.refs import DEFAULT_EMBEDDINGS
    from bakeoff.rag.chroma import ChromaSpec
    from bakeoff.rag.corpus import CorpusSpec
    from bakeoff.rag.indexing import index_corpus

    spec = ChromaSpec(path=str(store_dir))
    # index_corpus loads the recipe's embedder by reference; give it this one (real or hashing).
    with mock.patch("bakeoff.models.embeddings.load_embedder", lambda ref, ollama_host=None: embedder):
        return index_corpus(
            corpus=CorpusSpec(paths=[str(folder)]),
            base_dir=folder.parent,
            embeddings=DEFAULT_EMBEDDINGS,
            recipe_name=recipe,
            chroma=spec,
        )


def time_queries(store, questions: list[str]) -> dict[str, float]:
    """p50/p95 of whole searches (embed + query) and of Chroma's query alone, one question at a time."""
    total, chroma = [], []
    for q in questions:
        t0 = time.perf_counter()
        store.search([q], k=4)
        total.append(time.perf_counter() - t0)
    vectors = store.embedder.embed(questions)
    for vec in vectors:
        t0 = time.perf_counter()
        store.collection.query(
            query_embeddings=[vec], n_results=4, include=["documents", "metadatas", "distances"]
        )
        chroma.append(time.perf_counter() - t0)
    ms = 1000.0
    return {
        "search_p50_ms": percentile(total, 50) * ms,
        "search_p95_ms": percentile(total, 95) * ms,
        "chroma_p50_ms": percentile(chroma, 50) * ms,
        "chroma_p95_ms": percentile(chroma, 95) * ms,
    }


def run(scale: Scale = "full") -> Result:
    import tempfile

    from bakeoff.models.embeddings import load_embedder
    from bakeoff.models.refs import DEFAULT_EMBEDDINGS

    quiet_libraries()
    cfg = CONFIGS[scale]
    real = load_embedder(DEFAULT_EMBEDDINGS)
    qs = queries(cfg["queries"])
    default_batch = real.batch_size
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-retrieval-") as tmp:
        root = Path(tmp)
        # 1. the embedding batch size, on a sample of real chunks
        rates = tune_on_sample(real, root / "sample", cfg, default_batch)
        best = max(rates, key=rates.get)
        real.batch_size = best
        # 2. the real pipeline on the first step, 3. the store alone on every step
        pipeline = real_pipeline(real, best, root / "real", cfg["real_size"], qs)
        steps = store_steps(real, root / "hashed", cfg["sizes"], pipeline["embed_rate"], qs)
    return _result(scale, cfg, real, rates, default_batch, best, pipeline, steps)


def tune_on_sample(real, folder: Path, cfg: dict[str, Any], default_batch: int) -> dict[int, float]:
    """Chunks/s of the real model at each batch size, on the same sample of chunks."""
    from bakeoff.rag.corpus import ChunkSpec, Document, chunk_documents

    write_corpus(folder, cfg["tune_sample"], seed=99)
    docs = [Document(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.md"))]
    sample = [c.text for c in chunk_documents(docs, ChunkSpec())][: cfg["tune_sample"]]
    return tune_batch_size(real, sample, sorted(set(cfg["tune_sizes"]) | {default_batch}))


def real_pipeline(real, best: int, root: Path, size: int, qs: list[str]) -> dict[str, Any]:
    """Index ``size`` chunks with the real model (at batch ``best``) and time queries on the result."""
    from bakeoff.rag import sync as rag_sync

    corpus = root / "docs"
    write_corpus(corpus, size)
    timed = TimedEmbedder(real)
    saved_batch = rag_sync.EMBED_BATCH
    rag_sync.EMBED_BATCH = max(saved_batch, best)  # chunks per step: at least one model batch
    try:
        t0 = time.perf_counter()
        store, report = sync(corpus, root / "chroma", timed, "bench-real")
        seconds = time.perf_counter() - t0
        embed_s = timed.seconds
        return {
            "added": report.added,
            "seconds": seconds,
            "embed_s": embed_s,
            "embed_rate": report.added / embed_s,  # the model's rate inside the real pipeline
            "queries": time_queries(store, qs),
        }
    finally:
        rag_sync.EMBED_BATCH = saved_batch


def store_steps(
    real, root: Path, sizes: list[int], embed_rate: float, qs: list[str]
) -> dict[str, dict[str, Any]]:
    """Grow one store step by step with hashed vectors: Chroma's own cost per step, and query latency."""
    from bakeoff.rag.vectorstore import VectorStore

    corpus = root / "docs"
    steps: dict[str, dict[str, Any]] = {}
    hashing = TimedEmbedder(HashingEmbedder(real.dimension))
    next_file, written = 0, 0
    for size in sizes:
        next_file = write_corpus(corpus, size - written, start_file=next_file)
        written = size
        hashing.seconds = 0.0
        t0 = time.perf_counter()
        hstore, hreport = sync(corpus, root / "chroma", hashing, "bench-hashed")
        store_s = time.perf_counter() - t0 - hashing.seconds
        # the same collection, searched with the real model's query vectors (same dimension)
        searching = VectorStore(hstore.collection, real, hstore.where, hstore.lock_path)
        lat = time_queries(searching, qs)
        added = hreport.added
        projected_s = store_s + added / embed_rate
        steps[str(size)] = {
            "chunks": hreport.collection_size,
            "added": added,
            "store_s": round(store_s, 3),
            "store_chunks_per_s": round(added / store_s, 1),
            "projected_ingest_chunks_per_s": round(added / projected_s, 2),
            **{k: round(v, 2) for k, v in lat.items()},
        }
    return steps


def _result(
    scale: Scale,
    cfg: dict[str, Any],
    real,
    rates: dict[int, float],
    default_batch: int,
    best: int,
    pipeline: dict[str, Any],
    steps: dict[str, dict[str, Any]],
) -> Result:
    import torch

    result = Result("retrieval", scale)
    first, last = steps[str(cfg["sizes"][0])], steps[str(cfg["sizes"][-1])]
    added, real_s, real_queries = pipeline["added"], pipeline["seconds"], pipeline["queries"]
    real_rate = added / real_s
    result.add(
        "embed_batch_tuned_vs_default",
        pipeline["embed_rate"] / rates[default_batch],
        note=f"batch {best} vs {default_batch}",
    )
    result.add("ingest_chunks_per_s", real_rate, unit="chunks/s", note=f"{added} chunks, real model")
    result.add("search_p50", real_queries["search_p50_ms"], unit="ms", note=f"{added} chunks")
    result.add("search_p95", real_queries["search_p95_ms"], unit="ms", note=f"{added} chunks")
    result.add(
        "chroma_p50_growth",
        last["chroma_p50_ms"] / first["chroma_p50_ms"],
        note=f"{last['chunks']} vs {first['chunks']} chunks",
    )
    result.add(
        "store_chunks_per_s_growth",
        last["store_chunks_per_s"] / first["store_chunks_per_s"],
        note=f"adding at {last['chunks']} vs at {first['chunks']} chunks",
    )
    result.raw = {
        "embedding_model": real.name,
        "torch_threads": torch.get_num_threads(),
        "embed_chunks_per_s_by_batch": {str(k): round(v, 2) for k, v in sorted(rates.items())},
        "embed_batch_default": default_batch,
        "embed_batch_tuned": best,
        "real_pipeline": {
            "chunks": added,
            "seconds": round(real_s, 2),
            "embed_s": round(pipeline["embed_s"], 2),
            "store_and_read_s": round(real_s - pipeline["embed_s"], 2),
            "chunks_per_s": round(real_rate, 2),
            **{k: round(v, 2) for k, v in real_queries.items()},
        },
        "by_size": steps,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    return cli("bench_retrieval", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
