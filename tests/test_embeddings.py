import math

import pytest

from bakeoff.models.embeddings import EmbeddingError, load_embedder
from bakeoff.models.refs import parse_model_ref


def test_embedded_minilm_is_normalised_and_semantic():
    emb = load_embedder(parse_model_ref("embedded:all-minilm-l6-v2", embedding=True))
    assert emb.dimension == 384 and emb.name == "embedded:all-minilm-l6-v2"
    a, b, c = emb.embed(
        [
            "The invoice is payable within 30 days.",
            "Payment is due thirty days after invoicing.",
            "Penguins live in the southern hemisphere.",
        ]
    )

    def dot(x, y):
        return sum(i * j for i, j in zip(x, y, strict=True))

    assert math.isclose(dot(a, a), 1.0, rel_tol=1e-4)
    assert dot(a, b) > dot(a, c) + 0.3


def test_embedding_refs_reject_llms_and_candidates():
    with pytest.raises(ValueError, match="unknown embedded embedding model"):
        parse_model_ref("embedded:smollm2-135m-instruct", embedding=True)
    with pytest.raises(ValueError, match="unknown model scheme 'candidate'"):
        parse_model_ref("candidate:lora", embedding=True)


def test_unreachable_ollama_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # discard port: nothing listens
    emb = load_embedder(parse_model_ref("ollama:nomic-embed-text", embedding=True))
    with pytest.raises(EmbeddingError, match="cannot reach Ollama at http://127.0.0.1:9"):
        emb.embed(["x"])
