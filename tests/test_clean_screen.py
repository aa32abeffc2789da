"""A clean screen: bakeoff's own calls into transformers and peft print no deprecation warning.

transformers 5.24 renamed the key/value cache argument (``past_key_values`` → ``cache``) and deprecated
``is_gradient_checkpointing``; the decoder passes the new name, and the one warning that comes from peft's code
(it reads the old property when it wraps a model) is filtered by its text — every other warning still shows.
"""

import logging
import warnings

import pytest

from bakeoff.training.peft_compat import peft_wrapping


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


class _Tokenizer:
    """Just what the decoder asks of a tokenizer (the ids are the characters' codes, all under 64)."""

    pad_token_id = 0

    def __call__(self, text, **_):
        return {"input_ids": [ord(c) % 64 for c in text]}


@pytest.fixture
def transformers_log():
    """Warnings transformers logs (its logger does not reach pytest's caplog), as a list of messages."""
    from transformers.utils import logging as hf_logging

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    root = hf_logging.get_logger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


def test_the_decoder_passes_the_cache_by_its_current_name(transformers_log):
    from bakeoff.models._continuous import _cache_keyword, greedy_continuous

    model = _tiny_llama()
    assert _cache_keyword(model) == "cache"  # transformers 5.24, as locked
    done = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        greedy_continuous(
            model,
            _Tokenizer(),
            ["a shared beginning, then one", "a shared beginning, then two"],
            batch_size=2,
            max_new_tokens=4,
            stop_ids=[],
            budget=48,
            on_done=done.append,
        )
    assert sorted(d.index for d in done) == [0, 1] and all(len(d.tokens) == 4 for d in done)
    said = [str(w.message) for w in caught] + transformers_log
    assert not [m for m in said if "deprecated" in m], said
    # the old name warns (so the check above can fail)
    import torch

    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        model(input_ids=torch.tensor([[1, 2]]), past_key_values=None, use_cache=True)
    said = [str(w.message) for w in caught] + transformers_log
    assert any("past_key_values" in m and "deprecated" in m for m in said), said


def test_peft_wrapping_hides_only_the_is_gradient_checkpointing_warning():
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        get_peft_model(_tiny_llama(), config)
    assert any("is_gradient_checkpointing" in str(w.message) for w in outside)  # what peft does today
    with warnings.catch_warnings(record=True) as inside:
        warnings.simplefilter("always")
        with peft_wrapping():
            get_peft_model(_tiny_llama(), config)
            warnings.warn("another library warning", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in inside]
    assert not [m for m in messages if "is_gradient_checkpointing" in m]
    assert "another library warning" in messages  # only that one is filtered
