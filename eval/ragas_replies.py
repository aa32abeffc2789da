"""Stricter reply schemas for RAGAS' faithfulness and context recall, so a small judge cannot answer "nothing".

ragas asks the judge for a list (the answer's statements, their verdicts, the reference's classified
statements) through instructor, whose JSON schema allows an empty list. A 135M judge, constrained to that
schema, takes the shortest way out — ``{"statements": []}`` — and ragas returns NaN: faithfulness and context
recall were missing for every answer. These subclasses of ragas' own reply models require at least one item
(and at most :data:`MAX_ITEMS`, so a looping judge stops), statements that start with a letter or digit,
strings without control characters (:data:`STATEMENT_PATTERN`) and 0/1 verdicts; the JSON
schema sent to the judge says so, and an embedded judge decodes to it (llama.cpp turns the schema into a
grammar). :func:`strict_replies` wraps the judge's ragas LLM so the metrics ask for these models instead of
ragas' defaults. A bigger judge is unaffected: it returns statements anyway. ragas is imported on use.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["MAX_ITEMS", "REASON_PATTERN", "STATEMENT_PATTERN", "strict_models", "strict_replies"]

MAX_ITEMS = 6
# A statement starts with a letter or digit and holds no quote, backslash or control character; a reason
# holds none of those either. llama-cpp-python's JSON grammar lets a string hold raw newlines, which JSON
# forbids: a 135M judge wrote `{"statements": ["]\n", "\n    "]}`, unparseable and empty of meaning.
STATEMENT_PATTERN = r'^[A-Za-z0-9][^"\\\x00-\x1f]*$'
REASON_PATTERN = r'^[^"\\\x00-\x1f]*$'


@cache
def strict_models() -> dict[type, type]:
    """ragas reply model -> its strict subclass (at least one item, non-empty text, 0/1 verdicts)."""
    from typing import Annotated, Literal

    from pydantic import Field, StringConstraints
    from ragas.metrics.collections.context_recall import util as recall
    from ragas.metrics.collections.faithfulness import util as faith

    text = Annotated[str, StringConstraints(min_length=1, pattern=STATEMENT_PATTERN)]
    why = Annotated[str, StringConstraints(pattern=REASON_PATTERN)]

    class Statements(faith.StatementGeneratorOutput):
        statements: list[text] = Field(  # type: ignore[assignment]
            ..., min_length=1, max_length=MAX_ITEMS, description="The generated statements from the answer"
        )

    class Verdict(faith.StatementFaithfulnessAnswer):
        statement: text = Field(..., description="the original statement, word-by-word")  # type: ignore[assignment]
        reason: why = Field(..., description="the reason of the verdict")  # type: ignore[assignment]
        verdict: Literal[0, 1] = Field(..., description="the verdict(0/1) of the faithfulness")  # type: ignore[assignment]

    class Verdicts(faith.NLIStatementOutput):
        statements: list[Verdict] = Field(  # type: ignore[assignment]
            ..., min_length=1, max_length=MAX_ITEMS, description="one verdict per statement"
        )

    class Classification(recall.ContextRecallClassification):
        statement: text = Field(..., description="Individual statement extracted from the answer")  # type: ignore[assignment]
        reason: why = Field(..., description="Why the statement is or isn't attributable to context")  # type: ignore[assignment]
        attributed: Literal[0, 1] = Field(  # type: ignore[assignment]
            ...,
            description="Binary classification: 1 if the statement can be attributed to context, 0 otherwise",
        )

    class Classifications(recall.ContextRecallOutput):
        classifications: list[Classification] = Field(  # type: ignore[assignment]
            ..., min_length=1, max_length=MAX_ITEMS, description="List of statement classifications"
        )

    return {
        faith.StatementGeneratorOutput: Statements,
        faith.NLIStatementOutput: Verdicts,
        recall.ContextRecallOutput: Classifications,
    }


def strict_replies(llm: Any) -> Any:
    """``llm`` (a ragas ``InstructorBaseRagasLLM``) asking for the strict reply models of
    :func:`strict_models` wherever ragas asks for its own."""
    from ragas.llms.base import InstructorBaseRagasLLM

    models = strict_models()

    class StrictReplies(InstructorBaseRagasLLM):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:  # everything else (settings, counters) from the wrapped LLM
            return getattr(self.inner, name)

        def generate(self, prompt: str, response_model: type) -> Any:
            return self.inner.generate(prompt, models.get(response_model, response_model))

        async def agenerate(self, prompt: str, response_model: type) -> Any:
            return await self.inner.agenerate(prompt, models.get(response_model, response_model))

    return StrictReplies(llm)
