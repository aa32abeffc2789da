"""Agents, imported as ``bakeoff.agents``: the candidates a recipe compares, and the contract plugins implement.

A plugin subclasses :class:`Agent` with its own :class:`AgentSettings`, answers :class:`Query` batches with
:class:`Answer` lists, sees its run through :class:`AgentContext`, and registers under the entry-point group
``bakeoff.agents`` (see the README, "Adding an agent plugin")."""

from bakeoff.agents.base import (
    Agent,
    AgentContext,
    AgentError,
    AgentSettings,
    Corpus,
    Registrable,
    Retriever,
)
from bakeoff.core import Answer, GenerationSettings, Query

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentSettings",
    "Answer",
    "Corpus",
    "GenerationSettings",
    "Query",
    "Registrable",
    "Retriever",
]
