"""``ollama:MODEL`` — a model served by Ollama, through the official ``ollama`` client (``/api/chat``).

Ollama's native API rather than its OpenAI-compatible ``/v1``: decoding options (``num_predict``, temperature,
seed) and token counts (``prompt_eval_count``, ``eval_count``) are exact, and ``done_reason == "length"`` says
when an answer hit the budget. Requests go out concurrently (Ollama queues or batches them itself, see
``OLLAMA_NUM_PARALLEL``); a failed request becomes an answer with an ``error``, never an exception that sinks
the run. Loading checks that the server answers and has the model, so a wrong host or a missing model is one
clear message up front instead of one per question.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.models.generators import BackendError, generate_concurrently
from bakeoff.serving.ollama import OllamaError, OllamaServer

__all__ = ["OllamaGenerator"]


class OllamaGenerator:
    """Chat with one Ollama model."""

    def __init__(self, model: str, *, host: str | None = None, check: bool = True) -> None:
        self.model = model
        self.server = OllamaServer(host)
        self.host = self.server.host
        self.name = f"ollama:{model}"
        if check:
            try:
                self.server.version()
                self.server.show(model)
            except OllamaError as exc:
                raise BackendError(str(exc)) from None

    @staticmethod
    def options(settings: GenerationSettings) -> dict[str, Any]:
        """Ollama ``options`` for bakeoff's decoding settings (temperature 0 is greedy in Ollama too)."""
        opts: dict[str, Any] = {
            "num_predict": settings.max_new_tokens,
            "temperature": settings.temperature,
            "seed": settings.seed,
        }
        if settings.temperature > 0:
            opts["top_p"] = settings.top_p
        return opts

    def _one(self, conversation: list[Message], settings: GenerationSettings) -> Generation:
        t0 = time.perf_counter()
        try:
            resp = self.server.chat(self.model, conversation, options=self.options(settings))
        except OllamaError as exc:
            return Generation("", error=str(exc), latency_s=time.perf_counter() - t0)
        return Generation(
            (resp.message.content or "").strip(),
            prompt_tokens=int(resp.prompt_eval_count or 0),
            completion_tokens=int(resp.eval_count or 0),
            latency_s=time.perf_counter() - t0,
            truncated=resp.done_reason == "length",
        )

    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        return generate_concurrently(
            lambda c: self._one(c, settings), conversations, min(8, settings.batch_size), progress
        )

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        try:
            for chunk in self.server.chat(
                self.model, conversation, options=self.options(settings), stream=True
            ):
                piece = chunk.message.content if chunk.message else ""
                if piece:
                    yield piece
        except OllamaError as exc:
            raise BackendError(str(exc)) from None
