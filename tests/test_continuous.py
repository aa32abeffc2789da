"""Greedy CPU decoding with a batch kept full (bakeoff/models/_continuous.py) on the real embedded model."""

import pytest

from bakeoff.core import GenerationSettings

SYSTEM = "You answer questions about documents. Answer briefly and factually, in one sentence."
QUESTIONS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "What is 2 + 2?",
    "Who wrote Hamlet?",
    "Write a long story about a dragon.",
    "What is the largest ocean?",
    "How many days are in a week?",
]


@pytest.fixture
def reference(embedded_generator):
    """Answers from transformers' own batched generate (the path used where the fast one cannot run)."""

    def answer(convos, settings):
        embedded_generator._continuous_ok = False
        try:
            return embedded_generator.generate(convos, settings)
        finally:
            embedded_generator._continuous_ok = True

    return answer


def test_refilled_batches_answer_like_model_generate(embedded_generator, reference):
    # 7 prompts through 2 rows: rows finish at different steps and waiting prompts join the running cache;
    # the shared system prompt is prefilled once per group.
    convos = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=24, batch_size=2)
    fast = embedded_generator.generate(convos, settings)
    slow = reference(convos, settings)
    assert [f.error for f in fast] == [None] * len(QUESTIONS)
    same = sum(f.text == s.text for f, s in zip(fast, slow, strict=True))
    assert same >= len(QUESTIONS) - 1, [(f.text, s.text) for f, s in zip(fast, slow, strict=True)]
    assert [f.prompt_tokens for f in fast] == [s.prompt_tokens for s in slow]
    assert [f.truncated for f in fast] == [s.truncated for s in slow]
    assert any(f.truncated and f.completion_tokens == 24 for f in fast)  # the dragon story runs out of tokens
    assert "Paris" in fast[0].text


def test_shared_prefix_prefill_gives_the_plain_prefill_tokens(embedded_generator):
    from bakeoff.models import _continuous
    from bakeoff.threads import torch_threads

    prompts = [
        embedded_generator.render([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])
        for q in QUESTIONS[:3]
    ]
    model, tok = embedded_generator.model, embedded_generator.tokenizer
    saved = _continuous.MIN_SHARED_PREFIX
    with torch_threads():  # on the free cores, as generation runs it
        shared = _continuous._prefill(model, tok, prompts, budget=512)
        _continuous.MIN_SHARED_PREFIX = 10**9  # no shared pass
        try:
            plain = _continuous._prefill(model, tok, prompts, budget=512)
        finally:
            _continuous.MIN_SHARED_PREFIX = saved
    assert shared.first.tolist() == plain.first.tolist()
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert plain.mask.sum(-1).tolist() == lengths


def test_a_cache_that_cannot_be_split_by_row_is_refused():
    from bakeoff.models._continuous import Unsupported, _layers

    with pytest.raises(Unsupported):
        _layers(object())


def test_prefill_in_small_passes_and_a_growing_cache_answer_like_model_generate(
    embedded_generator, reference, monkeypatch
):
    # Passes of at most 40 padded tokens (one or two prompts each), 4 free cache columns after a merge (the
    # buffers grow several times within an answer), and rows dropped only when a sixteenth of them are done.
    from bakeoff.models import _continuous

    monkeypatch.setattr(_continuous, "PREFILL_TOKENS", 40)
    monkeypatch.setattr(_continuous, "ROOM", 4)
    passes = []
    real = _continuous._chunks
    monkeypatch.setattr(_continuous, "_chunks", lambda n, t: passes.append(real(n, t)) or passes[-1])
    convos = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=20, batch_size=7)
    fast = embedded_generator.generate(convos, settings)
    slow = reference(convos, settings)
    assert len(passes[0]) >= 3  # 7 prompts (after their shared system prompt) in 3 or more passes
    same = sum(f.text == s.text for f, s in zip(fast, slow, strict=True))
    assert same >= len(QUESTIONS) - 1, [(f.text, s.text) for f, s in zip(fast, slow, strict=True)]
    assert [f.completion_tokens for f in fast] == [s.completion_tokens for s in slow]


def test_passes_hold_consecutive_rows_within_the_token_budget():
    from bakeoff.models._continuous import _chunks

    assert _chunks([10, 10, 10, 30, 30, 100], 60) == [range(0, 3), range(3, 5), range(5, 6)]
    assert _chunks([5] * 10, 1000) == [range(0, 10)]
    assert _chunks([], 60) == []
