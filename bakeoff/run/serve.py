"""The runner's ``serve`` stage: a fine-tune's served forms (``serve: {forms: [f16, q8_0]}``) as candidates.

For each form of each :class:`~bakeoff.agents.base.Servable` agent: export the trained adapter to GGUF (merge →
llama.cpp convert → quantize) into a folder of :func:`bakeoff.paths.exports_cache_dir` named by a content hash
of the adapter, the base model and the converter — a re-run with the same adapter reuses the files and says so
(``cache_hit``) — then answer with it in-process through llama.cpp (``NAME@FORM``), and, when the recipe names
an ``ollama_host``, register the file there with the explicit template and stop tokens and answer through the
Ollama API as well (``NAME@ollama-FORM``). Failures are data: a form that cannot be exported or registered is
a run note and an ``error`` in the manifest's ``served`` block; the run goes on.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bakeoff.agents.base import Agent, Servable

if TYPE_CHECKING:
    from bakeoff.agents.served import ServedAgent
    from bakeoff.recipe.schema import Recipe
    from bakeoff.run.context import RunContext
    from bakeoff.run.documents.scores import Scores

__all__ = ["add_parity", "ollama_model_name", "serve_forms", "with_served"]


def ollama_model_name(recipe: str, candidate: str, form: str) -> str:
    """The Ollama model a served form is registered as: ``bakeoff-<recipe>-<candidate>:<form>``."""
    stem = re.sub(r"[^A-Za-z0-9._\-]+", "-", f"bakeoff-{recipe}-{candidate}").strip("-.").lower()
    return f"{stem[:150]}:{form}"


def serve_forms(agents: dict[str, Agent], ctx: RunContext) -> tuple[list[ServedAgent], dict[str, Any]]:
    """The served-form candidates of the prepared agents, and the manifest's ``served`` block (by name)."""
    served: list[ServedAgent] = []
    facts: dict[str, Any] = {}
    for agent in agents.values():
        spec = agent.served_forms() if isinstance(agent, Servable) else None
        if spec is None:
            continue
        for form in spec.forms:
            made = _serve_one(agent, form, spec, ctx)
            for name, entry in made.items():
                facts[name] = entry if isinstance(entry, dict) else entry.facts
                if not isinstance(entry, dict):
                    served.append(entry)
    return served, facts


def with_served(answering: list[Agent], served: list[ServedAgent]) -> list[Agent]:
    """The answering agents with each served form right after the candidate it was exported from."""
    out: list[Agent] = []
    for agent in answering:
        out.append(agent)
        out.extend(s for s in served if s.parent is agent)
    return out


def _serve_one(agent: Any, form: str, spec: Any, ctx: RunContext) -> dict[str, Any]:
    """The llama.cpp form (and the Ollama form) of one export: name -> ServedAgent, or name -> error facts."""
    from bakeoff.agents.served import ServedAgent, served_name
    from bakeoff.models.refs import CandidateRef, EmbeddedGGUFRef, OllamaRef
    from bakeoff.paths import exports_cache_dir
    from bakeoff.serving.export import ExportError, export_gguf, export_key
    from bakeoff.serving.ollama_template import TemplateError

    local = served_name(agent.name, form, "llama.cpp")
    base = agent.settings.model or ctx.base_model
    base = None if isinstance(base, CandidateRef) else base
    common = {"of": agent.name, "form": form, "tolerance": spec.tolerance}
    try:
        folder = exports_cache_dir() / export_key(ctx.run_dir, agent.name, base)
        exported = export_gguf(
            ctx.run_dir, agent.name, quantize=form, base_model=base, folder=folder, console=ctx.console
        )
    except ExportError as exc:
        ctx.note(f"served form {local!r} was not evaluated: {exc}")
        return {local: {**common, "engine": "llama.cpp", "error": str(exc)}}
    hit = "cache hit, reused" if exported.reused else f"exported in {exported.seconds:.1f}s"
    ctx.console.print(f"{local}: {exported.path.name} ({exported.size_bytes / 2**20:.0f} MiB, {hit})")
    export = {
        "gguf": str(exported.path),
        "sha256": exported.sha256,
        "size_bytes": exported.size_bytes,
        "cache_hit": exported.reused,
        "export_s": exported.seconds,
    }
    out: dict[str, Any] = {}
    template, stop = _gguf_template(exported.path)
    facts = {**common, "engine": "llama.cpp", **export, "template": template, "stop": stop}
    out[local] = ServedAgent(
        agent, form, "llama.cpp", EmbeddedGGUFRef(str(exported.path)), facts, ctx.for_candidate(local)
    )
    if ctx.ollama_host is None:
        return out
    remote = served_name(agent.name, form, "ollama")
    try:
        registered = _register(exported, ollama_model_name(ctx.recipe_name, agent.name, form), spec, ctx)
    except (ExportError, TemplateError, _ollama_errors()) as exc:
        ctx.note(f"served form {remote!r} was not evaluated: {exc}")
        out[remote] = {**common, "engine": "ollama", **export, "error": str(exc)}
        return out
    facts = {**common, "engine": "ollama", **export, **registered}
    out[remote] = ServedAgent(
        agent, form, "ollama", OllamaRef(registered["ollama_model"]), facts, ctx.for_candidate(remote)
    )
    return out


def _ollama_errors() -> tuple[type[Exception], ...]:
    from bakeoff.serving.ollama import OllamaError
    from bakeoff.serving.register import RegistrationError

    return (OllamaError, RegistrationError)


def _gguf_template(path: Any) -> tuple[str, list[str]]:
    """The chat template llama.cpp renders prompts with (the GGUF's Jinja template) and its stop tokens."""
    from bakeoff.serving.gguf_info import read_gguf_info

    info = read_gguf_info(path)
    stop = [t for t in (info.eos_token,) if t]
    return info.chat_template or "", stop


def _register(exported: Any, name: str, spec: Any, ctx: RunContext) -> dict[str, Any]:
    """Register one GGUF in the recipe's Ollama (explicit template and stop tokens, replacing an earlier
    registration of the same form); the facts the manifest records."""
    from bakeoff.serving.ollama import OllamaServer
    from bakeoff.serving.register import plan_registration, register_gguf

    plan = plan_registration(exported.path, name, digest=exported.sha256, quantize=exported.quantize)
    if spec.ollama_template is not None:
        plan.template = replace(plan.template, template=spec.ollama_template)
        plan.request["template"] = spec.ollama_template
    with OllamaServer(ctx.ollama_host) as server:
        result = register_gguf(plan, server, replace=True, smoke=False, console=ctx.console)
    return {
        "ollama_model": result.name,
        "host": result.host,
        "server_version": result.server_version,
        "uploaded": result.uploaded,
        "template": plan.template.template,
        "template_family": plan.template.family if spec.ollama_template is None else "given by the recipe",
        "stop": list(plan.template.stop),
    }


def add_parity(recipe: Recipe, scores: Scores, answers: dict[str, Any], served: dict[str, Any]) -> None:
    """Score each served form's parity with its candidate (:func:`bakeoff.eval.served.served_parity`, with the
    recipe's statistics settings) into ``scores.served`` and the manifest's ``served.<name>.parity``."""
    from bakeoff.eval.scoring import ScoringSettings
    from bakeoff.eval.served import served_parity
    from bakeoff.eval.settings import StatisticsSpec

    spec = ScoringSettings.from_recipe(recipe).statistics or StatisticsSpec()
    parity = served_parity(
        scores,
        answers,
        served,
        alpha=spec.alpha,
        resamples=spec.resamples,
        permutations=spec.permutations,
        confidence=spec.confidence,
        seed=spec.seed,
    )
    for name, entry in parity.items():
        summary = entry.to_dict()
        summary.pop("most_changed", None)  # the texts stay in scores.json
        served[name]["parity"] = summary
