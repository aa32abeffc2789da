"""Chatting with a run's candidates from the console, without Streamlit: rebuild agents from the run's
``recipe.yaml`` and say plainly why a candidate cannot chat.

The recipe is the one stored in the run (what was actually compared), with relative paths resolved against
the folder of the recipe file it was run from (the manifest's ``recipe_path``), as ``bakeoff run`` did.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakeoff.agents.base import Agent
from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.recipe.schema import Recipe
from bakeoff.run.store import RunInfo

__all__ = ["ChatAgents", "chat_problem", "load_chat_agents", "recipe_of_run", "stream_reply"]


def recipe_of_run(info: RunInfo) -> Recipe:
    """The recipe a run was made from, as stored in the run folder.

    Raises:
        RecipeError: the stored recipe no longer validates (for example a data file was moved).
    """
    stored = Path(info.path) / "recipe.yaml"
    try:
        text = stored.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError([]) from exc
    source = info.manifest_document.recipe_path
    # Resolve relative paths as the original run did; fall back to the run folder if that folder is gone.
    where = Path(source) if source and Path(source).parent.is_dir() else stored
    return load_recipe(where, text=text)


def chat_problem(agent: Agent) -> str | None:
    """Why this agent cannot chat, or None when it can."""
    if type(agent).chat is Agent.chat:
        return f"agent kind {agent.settings.agent!r} does not support chat (it only answers evaluation questions)"
    return None


@dataclass
class ChatAgents:
    """Agents ready to chat, by candidate, and the reason for each candidate that is not."""

    agents: dict[str, Agent] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def load_chat_agents(info: RunInfo, names: list[str]) -> ChatAgents:
    """Build and prepare the named candidates of a run (and the candidates they borrow models from).

    A candidate that cannot be built, prepared or chatted with is listed in ``problems`` with the reason; the
    others are ready.
    """
    from rich.console import Console

    from bakeoff.run.runner import RunError, build_agents, make_context, select_candidates

    out = ChatAgents()
    try:
        recipe = recipe_of_run(info)
    except RecipeError as exc:
        reason = "the run's recipe no longer validates: " + (
            "; ".join(str(p) for p in exc.problems) or str(exc)
        )
        return ChatAgents(problems=dict.fromkeys(names, reason))
    console = Console(file=io.StringIO(), width=120)
    ctx = make_context(recipe, console)
    ctx.may_train = False  # the console chats with trained candidates; it never trains them itself
    for name in names:
        todo = []
        try:
            _, needed = select_candidates(recipe, [name])
            todo = [c for c in needed if c.name not in ctx.agents]
            agents = build_agents(todo, ctx)
            for cand in todo:
                agents[cand.name].prepare()
        except RunError as exc:
            out.problems[name] = str(exc)
            continue
        except Exception as exc:  # one broken candidate never takes the others down
            for cand in todo:
                ctx.agents.pop(cand.name, None)
            out.problems[name] = f"cannot load: {type(exc).__name__}: {exc}"
            continue
        agent = ctx.agents[name]
        problem = chat_problem(agent)
        if problem:
            out.problems[name] = problem
        else:
            out.agents[name] = agent
    return out


def stream_reply(agent: Agent, history: list[dict[str, Any]]) -> Iterator[str]:
    """The agent's streamed reply to a chat history; a failure ends the stream with a visible message."""
    try:
        yield from agent.chat([{"role": m["role"], "content": m["content"]} for m in history])
    except NotImplementedError as exc:
        yield f"⚠ {exc}"
    except Exception as exc:  # show it in the conversation rather than crash the page
        yield f"\n\n⚠ {type(exc).__name__}: {exc}"
