"""Register a fine-tuned candidate in Ollama — the path that works on every server since 0.5.5.

1. **Export** the candidate to GGUF (merge → llama.cpp convert → llama.cpp quantize; reused when unchanged).
2. **Template** — derive an explicit Go template and stop sequences from the GGUF's own chat template and prove
   them equal by rendering (:mod:`bakeoff.serving.ollama_template`); an unknown format fails here, before any upload.
3. **Version** — ``GET /api/version``; older than 0.5.5 is refused with what that server cannot do.
4. **Blob** — ``HEAD /api/blobs/sha256:…``; upload only when the server does not have it.
5. **Create** — ``POST /api/create`` with ``files``, ``template`` and ``parameters.stop`` (never the server's
   template guess, never server-side quantization or LoRA adapters, which newer servers refuse).
6. **Verify** — ``/api/show`` must return the template that was sent; one greedy chat turn must answer
   without leaking turn markers. Any failure after the model was created deletes it: no half-registered model
   is left behind (the uploaded blob stays; Ollama prunes unreferenced blobs itself).

A recipe asks for registration on a fine-tuned candidate with ``register: {ollama: NAME, quantize: q4_k_m}``
(:class:`bakeoff.serving.settings.OllamaRegistrationMixin` on its settings; the agent is a
:class:`bakeoff.agents.base.Registrable`, and the runner's register stage calls :func:`register_candidates`);
``bakeoff models register RUN CANDIDATE --name NAME`` does it afterwards.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.errors import BakeoffError
from bakeoff.serving.ollama import OllamaError, OllamaModelMissing, OllamaServer, full_name
from bakeoff.serving.ollama_template import OllamaTemplate, TemplateError, derive_ollama_template

if TYPE_CHECKING:
    from bakeoff.agents.base import Agent
    from bakeoff.run.context import RunContext

__all__ = [
    "RegistrationError",
    "RegistrationPlan",
    "RegistrationResult",
    "plan_registration",
    "register_candidates",
    "register_gguf",
    "register_run_candidate",
]

SMOKE_MESSAGES = [{"role": "user", "content": "In one short sentence: what can you help me with?"}]


class RegistrationError(BakeoffError):
    """Registration failed; the message says what happened, what was cleaned up and what to do."""


# -- planning ----------------------------------------------------------------------------------------------
@dataclass
class RegistrationPlan:
    """Everything that will be sent, computed without talking to the server (``--dry-run`` prints it)."""

    name: str
    gguf: Path
    digest: str
    size_bytes: int
    template: OllamaTemplate
    request: dict[str, Any]
    quantize: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "blob": {"file": str(self.gguf), "digest": self.digest, "size_bytes": self.size_bytes},
            "template_family": self.template.family,
            "create": self.request,
        }


def plan_registration(
    gguf: str | Path,
    name: str,
    *,
    digest: str | None = None,
    quantize: str = "",
    template_context: dict[str, Any] | None = None,
) -> RegistrationPlan:
    """Derive the template and build the ``/api/create`` request for a GGUF file.

    Raises:
        TemplateError: the GGUF's chat template cannot be expressed as an Ollama template (or there is none).
    """
    from bakeoff.serving.export import file_sha256
    from bakeoff.serving.gguf_info import read_gguf_info

    gguf = Path(gguf)
    info = read_gguf_info(gguf)
    template = derive_ollama_template(
        info.chat_template,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        control_tokens=info.control_tokens,
        add_bos=info.add_bos,
        context=template_context,
    )
    digest = digest or f"sha256:{file_sha256(gguf)}"
    if not digest.startswith("sha256:"):
        digest = f"sha256:{digest}"
    request = {
        "model": name,
        "files": {gguf.name: digest},
        "template": template.template,
        "parameters": {"stop": list(template.stop)},
        "stream": True,
    }
    return RegistrationPlan(name, gguf, digest, gguf.stat().st_size, template, request, quantize)


# -- registering -------------------------------------------------------------------------------------------
@dataclass
class RegistrationResult:
    name: str
    host: str
    server_version: str
    digest: str
    uploaded: bool
    template_family: str
    stop: list[str]
    smoke_reply: str
    seconds: float
    statuses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _say(console: Any, msg: str) -> None:
    if console is not None:
        console.print(msg)


def register_gguf(
    plan: RegistrationPlan,
    server: OllamaServer,
    *,
    replace: bool = False,
    smoke: bool = True,
    console: Any = None,
) -> RegistrationResult:
    """Upload and create the model, then verify it; delete it again if anything fails.

    ``smoke=False`` skips the one-turn chat check (the served-forms evaluation asks every question instead and
    diagnoses a template mismatch from all the answers).

    Raises:
        OllamaError: unreachable server, old version (before anything is uploaded).
        RegistrationError: the name is taken, or creating/verifying failed (the model was removed again).
    """
    started = time.perf_counter()
    version = server.require_create()
    _say(console, f"Ollama {version} at {server.host}")
    existed = server.exists(plan.name)
    if existed and not replace:
        raise RegistrationError(
            f"Ollama at {server.host} already has a model {plan.name!r}; choose another --name, or pass --replace "
            "(recipe: `replace: true`) to overwrite it"
        )
    uploaded = _upload(plan, server, console)
    statuses: list[str] = []
    try:
        server.create(
            plan.name,
            files=plan.request["files"],
            template=plan.request["template"],
            parameters=plan.request["parameters"],
            on_status=statuses.append,
        )
        _verify(plan, server)
        text = _smoke_test(plan, server) if smoke else ""
    except (OllamaError, RegistrationError) as exc:
        raise RegistrationError(f"{exc}{_clean_up(plan, server, statuses, existed)}") from None
    _say(
        console, f"[green]✓[/] registered {full_name(plan.name)} on {server.host}; smoke reply: {text[:80]!r}"
    )
    return RegistrationResult(
        name=full_name(plan.name),
        host=server.host,
        server_version=version,
        digest=plan.digest,
        uploaded=uploaded,
        template_family=plan.template.family,
        stop=list(plan.template.stop),
        smoke_reply=text,
        seconds=round(time.perf_counter() - started, 2),
        statuses=statuses,
    )


def _upload(plan: RegistrationPlan, server: OllamaServer, console: Any) -> bool:
    """Push the GGUF blob unless the server has it; whether it was uploaded."""
    if server.has_blob(plan.digest):
        _say(console, f"blob {plan.digest[:19]}… already on the server; not uploading")
        return False
    _say(console, f"uploading {plan.gguf.name} ({plan.size_bytes / 2**20:.0f} MiB) …")
    server.push_blob(plan.gguf, plan.digest)
    return True


def _verify(plan: RegistrationPlan, server: OllamaServer) -> None:
    """The server must have kept the template and the stop parameters that were sent."""
    shown = server.show(plan.name)
    if (shown.template or "") != plan.template.template:
        raise RegistrationError(
            f"Ollama at {server.host} stored a different template for {plan.name!r} than the one sent "
            f"(it starts {str(shown.template or '')[:60]!r}); the model would format chats wrongly"
        )
    params = shown.parameters or ""
    missing = [s for s in plan.template.stop if json.dumps(s) not in params and s not in params]
    if missing:
        raise RegistrationError(
            f"Ollama at {server.host} did not keep the stop parameters {missing} for {plan.name!r}"
        )


def _smoke_test(plan: RegistrationPlan, server: OllamaServer) -> str:
    """One greedy chat turn must answer, without turn markers; the reply."""
    reply = server.chat(plan.name, SMOKE_MESSAGES, options={"num_predict": 32, "temperature": 0, "seed": 0})
    text = (reply.message.content or "").strip()
    markers = [m for m in plan.template.stop if m and m in text]
    if not text or markers:
        what = "an empty reply" if not text else f"a reply containing turn markers {markers}"
        raise RegistrationError(
            f"the smoke-test chat with {plan.name!r} on {server.host} gave {what} ({text[:80]!r}); the "
            "template or stop parameters do not fit the model"
        )
    return text


def _clean_up(plan: RegistrationPlan, server: OllamaServer, statuses: list[str], existed: bool) -> str:
    """Delete a model that was created but failed; what was done, as the end of the error message."""
    # Ollama writes the manifest last: before "writing manifest" nothing was created (and a model being
    # replaced is still intact); after it, the model exists even if an error line followed.
    created = "writing manifest" in statuses or "success" in statuses
    if not created:
        return (
            f"; no model {plan.name!r} was created" if not existed else f"; {plan.name!r} was left as it was"
        )
    try:
        server.delete(plan.name)
        cleaned = f"; the model {plan.name!r} was deleted again, so nothing half-registered is left"
    except OllamaModelMissing:
        cleaned = f"; no model {plan.name!r} was left on the server"
    except OllamaError as del_exc:
        cleaned = (
            f"; deleting the broken model failed too ({del_exc}) — remove it with `ollama rm {plan.name}`"
        )
    if existed:
        cleaned += " (the model it replaced is gone as well)"
    return cleaned


def register_run_candidate(
    run_dir: str | Path,
    candidate: str,
    name: str,
    *,
    quantize: str = "q4_k_m",
    host: str | None = None,
    replace: bool = False,
    dry_run: bool = False,
    base_model: Any = None,
    console: Any = None,
) -> dict[str, Any]:
    """Export (or reuse) a candidate's GGUF and register it; with ``dry_run`` only plan and return the request.

    Returns:
        ``{"plan": ..., "export": ...}`` for a dry run, else also ``"registration"``.

    Raises:
        ExportError, TemplateError, OllamaError, RegistrationError: each with one clear message.
    """
    from bakeoff.serving.export import export_gguf

    run_dir = Path(run_dir)
    exported = export_gguf(run_dir, candidate, quantize=quantize, base_model=base_model, console=console)
    plan = plan_registration(exported.path, name, digest=exported.sha256, quantize=exported.quantize)
    out: dict[str, Any] = {"plan": plan.describe(), "export": exported.to_dict()}
    if dry_run:
        return out
    with OllamaServer(host) as server:
        result = register_gguf(plan, server, replace=replace, console=console)
    record = {
        **result.to_dict(),
        "candidate": candidate,
        "quantize": exported.quantize,
        "gguf": str(exported.path),
    }
    record["registered_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _append_record(run_dir / "exports" / candidate / "registrations.json", record)
    out["registration"] = record
    return out


def register_candidates(agents: list[Agent], ctx: RunContext) -> dict[str, Any]:
    """The runner's ``register`` stage: register each prepared agent's model as its
    :meth:`~bakeoff.agents.base.Registrable.registration` asks.

    Failures are data: each becomes a run note and an ``{"error": ...}`` entry, never an exception, so a missing
    Ollama server does not throw away a finished training.
    """
    from bakeoff.models.refs import CandidateRef
    from bakeoff.serving.export import ExportError

    out: dict[str, Any] = {}
    for agent in agents:
        spec = agent.registration()
        if spec is None:
            continue
        base = agent.settings.model or ctx.base_model
        if isinstance(base, CandidateRef):
            base = None  # let the export read it from the run
        try:
            result = register_run_candidate(
                ctx.run_dir,
                agent.name,
                spec.ollama,
                quantize=spec.quantize,
                host=ctx.ollama_host,
                replace=spec.replace,
                base_model=base,
                console=ctx.console,
            )
            out[agent.name] = result["registration"]
        except (ExportError, TemplateError, OllamaError, RegistrationError) as exc:
            ctx.note(f"candidate {agent.name!r} was not registered in Ollama as {spec.ollama!r}: {exc}")
            out[agent.name] = {"name": spec.ollama, "error": str(exc)}
    return out


def _append_record(path: Path, record: dict[str, Any]) -> None:
    from bakeoff.io import write_json_atomic

    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            records = []
    except (OSError, ValueError):
        records = []
    records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, records)
