"""What a model that replies offers: the :class:`Generator` protocol every backend implements, the optional
:class:`JSONReplies` capability, their error, and the in-order concurrent fan-out that remote backends share.

A backend turns chat conversations (``[{"role", "content"}]``) into :class:`~bakeoff.core.Generation` results,
batched, and can stream one reply; :func:`bakeoff.models.registry.load_generator` builds one per reference.
The same object answers candidates' questions and, served by :class:`~bakeoff.models.local_server.LocalOpenAIServer`,
a judge's requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.errors import BakeoffError

__all__ = ["BackendError", "Generator", "JSONReplies", "generate_concurrently"]


class BackendError(BakeoffError):
    """A model cannot be loaded or reached; the message says what to do."""


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


@runtime_checkable
class JSONReplies(Protocol):
    """An optional capability of a :class:`Generator`: a reply constrained to JSON while it is decoded (a
    grammar), so that even a small model returns parseable JSON. Generators without it are only *asked* for
    JSON in the prompt."""

    def generate_json(
        self, conversation: list[Message], settings: GenerationSettings, schema: dict[str, Any] | None
    ) -> Generation:
        """Reply to one conversation with an instance of the JSON ``schema`` (any JSON object when None)."""
        ...
