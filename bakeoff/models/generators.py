"""Generation backends: one object per loaded model, shared by every candidate that uses it.

A backend turns chat conversations (``[{"role", "content"}]``) into :class:`Generation` results, batched,
and can stream one reply. :func:`load_generator` maps a parsed :class:`~bakeoff.models.refs.ModelRef` to a
backend; heavy libraries are imported only there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bakeoff.agents.base import GenerationSettings
from bakeoff.models.refs import (
    CandidateRef,
    EmbeddedGGUFRef,
    EmbeddedRef,
    HFRef,
    ModelRef,
    OllamaRef,
    OpenAICompatibleRef,
)

__all__ = ["BackendError", "Generation", "Generator", "Message", "generate_concurrently", "load_generator"]

Message = dict[str, str]


class BackendError(Exception):
    """A model cannot be loaded or reached; the message says what to do."""


@dataclass
class Generation:
    """One generated reply."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # wall time of the batch divided by its size
    truncated: bool = False  # stopped by max_new_tokens, not by end of turn
    prompt_truncated: bool = False  # the prompt was cut (from the left) to fit the context window
    error: str | None = None


def generate_concurrently(
    one: Callable[[list[Message]], Generation],
    conversations: Sequence[list[Message]],
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """``one(conversation)`` for each conversation on ``workers`` threads (remote servers batch on their side);
    replies in order, ``progress(1)`` as each is collected."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, c) for c in conversations]
        results = []
        for fut in futures:
            results.append(fut.result())
            if progress:
                progress(1)
    return results


@runtime_checkable
class Generator(Protocol):
    """What every backend offers."""

    name: str

    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """Reply to each conversation; ``progress(n)`` is called as ``n`` more replies finish."""
        ...

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        """Yield the reply to one conversation piece by piece."""
        ...


def load_generator(ref: ModelRef, *, ollama_host: str | None = None) -> Generator:
    """Load (or connect to) the model a reference names.

    Args:
        ref: the model reference.
        ollama_host: the Ollama server for ``ollama:`` models (the recipe's ``ollama_host``); ``None`` means
            ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``.

    Raises:
        BackendError: the model cannot be found, imported or reached.
    """
    if isinstance(ref, EmbeddedRef):
        from bakeoff.models.embedded import ensure_imported
        from bakeoff.models.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_path(ensure_imported(ref.name), name=str(ref))
    if isinstance(ref, HFRef):
        from bakeoff.models.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_path(ref.path, name=str(ref))
    if isinstance(ref, OpenAICompatibleRef):
        from bakeoff.models.openai_compatible import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator(ref.base_url, ref.model)
    if isinstance(ref, OllamaRef):
        from bakeoff.models.ollama_backend import OllamaGenerator

        return OllamaGenerator(ref.model, host=ollama_host)
    if isinstance(ref, EmbeddedGGUFRef):
        from bakeoff.models.llama_cpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(ref.path, name=str(ref))
    if isinstance(ref, CandidateRef):
        raise BackendError(f"{ref} names a candidate; resolve it through the run context, not load_generator")
    raise BackendError(f"no backend for model reference {ref}")
