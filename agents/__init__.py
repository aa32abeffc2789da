"""Agents, imported as ``bakeoff.agents``: the candidates a recipe compares, and the contract plugins implement.

A plugin subclasses :class:`Agent` with its own :class:`AgentSettings` and registers it under the entry-point
group ``bakeoff.agents`` (see the README)."""

from bakeoff.agents.base import Agent, AgentError, AgentSettings
from bakeoff.core import Answer, GenerationSettings, Question

__all__ = ["Agent", "AgentError", "AgentSettings", "Answer", "GenerationSettings", "Question"]
