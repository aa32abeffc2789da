"""The ``rag`` agent: retrieve passages from the recipe's corpus, then answer from them.

``prepare()`` syncs the corpus into the recipe's Chroma collection (only new or changed chunks are embedded;
every RAG candidate of a run shares one index). For each question the top ``k`` chunks (by cosine similarity,
or by maximal marginal relevance with ``search: mmr``) are numbered and put in the prompt as quoted data:
retrieved text is untrusted, so the prompt says that instructions inside it are not to be followed, and the
delimiters cannot be forged from inside a passage. Each answer records the chunks it was given in
``contexts``, which retrieval metrics (``hit_rate@k``, ``mrr``) score (the agent is a
:class:`~bakeoff.agents.base.Retriever`). In a classification recipe the default system prompt asks for one of
the labels, which the runner reads from the reply.

``model: candidate:NAME`` answers with another candidate's model, e.g. RAG over a fine-tune.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from bakeoff.agents.base import Agent, AgentContext, AgentSettings, Retriever
from bakeoff.agents.prompts import NO_PASSAGES, RAG_CLASSIFY_SYSTEM, RAG_PROMPT, RAG_SYSTEM, fill_labels
from bakeoff.core import Answer, Message, Query

__all__ = ["RagAgent", "RagSettings", "format_passages"]


class RagSettings(AgentSettings):
    """Retrieval-augmented generation over the recipe's `corpus`."""

    agent: Literal["rag"] = "rag"
    k: int = Field(4, ge=1, le=100, description="Number of passages retrieved and shown per question.")
    search: Literal["similarity", "mmr"] = Field(
        "similarity",
        description="`similarity`: the k nearest chunks; `mmr`: maximal marginal relevance (relevant but not "
        "redundant) among the `fetch_k` nearest.",
    )
    fetch_k: int = Field(20, ge=1, le=1000, description="`search: mmr` only: candidates MMR chooses from.")
    mmr_lambda: float = Field(
        0.5, ge=0.0, le=1.0, description="`search: mmr` only: 1 = pure relevance, 0 = pure diversity."
    )
    score_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Drop passages whose cosine similarity to the question is below this (fewer than k may "
        "remain).",
    )
    system: str | None = Field(
        None,
        description="System prompt; `{labels}` is replaced by the label list. Default: answer only from the "
        "numbered passages, treat them as data (never as instructions), briefly; in a classification recipe, "
        "reply with one of the labels.",
    )
    prompt: str = Field(
        RAG_PROMPT,
        description="User message template: `{context}` is replaced by the numbered passages, `{question}` by "
        "the question.",
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> RagSettings:
        problems = [
            f"`prompt` must contain {key}" for key in ("{context}", "{question}") if key not in self.prompt
        ]
        if self.search == "mmr" and self.fetch_k < self.k:
            problems.append(f"fetch_k ({self.fetch_k}) must be at least k ({self.k}) for search: mmr")
        keys = (info.context or {}).get("recipe_keys")
        if keys is not None and "corpus" not in keys:
            problems.append(
                "a rag candidate retrieves from the recipe's corpus, but the recipe has none; add a top-level "
                "`corpus: {paths: [docs/]}`"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


# ``<passage``, ``</PASSAGE``, ``< / Passage`` ...: any spelling a model might read as a delimiter
_DELIMITER = re.compile(r"<(\s*/?\s*passage)", re.IGNORECASE)


def _quote(text: str) -> str:
    # A passage must not be able to close its own block or open a new one and pose as the prompt.
    return _DELIMITER.sub(r"‹\1", text)


def _attribute(text: str) -> str:
    # A source file name goes inside ``source="..."``: a quote or a bracket in it must not end the attribute
    # (``x" n="2``) or the tag.
    return _quote(text).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def format_passages(contexts: Sequence[dict[str, Any]]) -> str:
    """Number the retrieved passages as delimited, quoted blocks."""
    if not contexts:
        return NO_PASSAGES
    blocks = []
    for i, ctx in enumerate(contexts, 1):
        where = str(ctx.get("source", "")).rsplit("/", 1)[-1]
        if ctx.get("page") is not None:
            where += f", page {ctx['page']}"
        blocks.append(
            f'<passage n="{i}" source="{_attribute(where)}">\n{_quote(ctx["text"].strip())}\n</passage>'
        )
    return "\n".join(blocks)


class RagAgent(Agent, Retriever):
    """Retrieves k passages from the corpus and answers from them."""

    settings_model = RagSettings
    settings: RagSettings

    def __init__(self, settings: RagSettings, ctx: AgentContext) -> None:
        super().__init__(settings, ctx)
        if ctx.corpus is None:
            raise ValueError(f"candidate {settings.name!r} (rag) needs a `corpus:` in the recipe")
        self.corpus = ctx.corpus
        self.store = None

    @property
    def retrieval_k(self) -> int:
        return self.settings.k

    def prepare(self) -> None:
        """Sync the corpus into the run's index (shared by every RAG candidate of the run)."""
        self.store = self.corpus.index()

    def retrieve(self, questions: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The contexts (``[{id, text, source, start, end, score, page?}]``) for each question."""
        if self.store is None:
            self.prepare()
        s = self.settings
        hits = self.store.search(
            list(questions),
            k=s.k,
            search=s.search,
            fetch_k=s.fetch_k,
            mmr_lambda=s.mmr_lambda,
            score_threshold=s.score_threshold,
        )
        return [[h.to_dict() for h in found] for found in hits]

    def _system(self) -> str:
        if self.settings.system is not None:
            return fill_labels(self.settings.system, self.ctx.labels)
        if self.ctx.task == "classification":
            return fill_labels(RAG_CLASSIFY_SYSTEM, self.ctx.labels)
        return RAG_SYSTEM

    def conversation(self, question: str, contexts: Sequence[dict[str, Any]]) -> list[Message]:
        """The chat messages sent for one question and its retrieved passages."""
        # Replace {question} last, so braces in retrieved text are never read as placeholders.
        user = self.settings.prompt.replace("{context}", "\x00").replace("{question}", question)
        user = user.replace("\x00", format_passages(contexts))
        return [{"role": "system", "content": self._system()}, {"role": "user", "content": user}]

    def answer(self, questions: Sequence[Query]) -> list[Answer]:
        contexts = self.retrieve([q.question for q in questions])
        convos = [self.conversation(q.question, c) for q, c in zip(questions, contexts, strict=True)]
        outs = self.generator().generate(convos, self.settings.generation)
        return [
            Answer.from_generation(q.id, out, contexts=ctx)
            for q, out, ctx in zip(questions, outs, contexts, strict=True)
        ]

    def chat(self, messages: list[Message]) -> Iterator[str]:
        [contexts] = self.retrieve([messages[-1]["content"]])
        convo = self.conversation(messages[-1]["content"], contexts)
        # Earlier turns carry the conversation; only the last question gets passages.
        yield from self.generator().stream([convo[0], *messages[:-1], convo[1]], self.settings.generation)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "k": s.k,
            "search": s.search,
            **({"fetch_k": s.fetch_k, "mmr_lambda": s.mmr_lambda} if s.search == "mmr" else {}),
            "score_threshold": s.score_threshold,
            "embeddings": str(self.corpus.embeddings),
            "collection": self.store.name if self.store is not None else None,
            "system": self._system(),
        }
