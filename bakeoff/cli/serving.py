"""``bakeoff export`` and ``bakeoff models register|list|remove`` (GGUF export and Ollama).

Heavy imports (torch, peft, llama.cpp, the ollama client) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from bakeoff.cli._common import DEFAULT_RUNS, RunArg, RunsDir, console, err, fail, find_run_or_exit

__all__ = ["export", "models"]

CandidateArg = Annotated[str, typer.Argument(help="The fine-tuned candidate's name.")]
HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Ollama server (default: the run's recipe `ollama_host`, else OLLAMA_HOST, else 127.0.0.1:11434).",
    ),
]
QuantizeOpt = Annotated[
    str | None,
    typer.Option("--quantize", "-q", help="f16 (default for export), q8_0 or q4_k_m (default for register)."),
]


def _recipe_host(run_dir: Path) -> str | None:
    """The ``ollama_host`` of the recipe the run was made from, if it set one."""
    try:
        from bakeoff.recipe._yaml import load_yaml

        data, _ = load_yaml((run_dir / "recipe.yaml").read_bytes())
        host = data.get("ollama_host") if isinstance(data, dict) else None
        return host if isinstance(host, str) and host.strip() else None
    except Exception:  # noqa: BLE001 - an unreadable recipe just means "no host from the recipe"
        return None


def export(
    run_ref: RunArg,
    candidate: CandidateArg,
    fmt: Annotated[str, typer.Option("--format", help="Export format (only gguf).")] = "gguf",
    quantize: QuantizeOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Copy the file here (a file or a folder).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if an identical export exists.")
    ] = False,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """Export a fine-tuned candidate as a GGUF file (merged adapter, chat template, llama.cpp quantization)."""
    if fmt.lower() != "gguf":
        raise fail(f"unsupported format {fmt!r}; bakeoff exports gguf (llama.cpp, Ollama, LM Studio)", 2)
    from bakeoff.serving.export import ExportError, check_quantization, export_gguf

    try:
        q = check_quantization(quantize)
    except ExportError as exc:
        raise fail(str(exc), 2) from None
    run_dir = find_run_or_exit(runs_dir, run_ref, readable=False).path
    try:
        result = export_gguf(run_dir, candidate, quantize=q, out=output, force=force, console=err)
    except ExportError as exc:
        raise fail(str(exc), 1) from None
    how = "reused (unchanged inputs)" if result.reused else f"in {result.seconds:.1f}s"
    console.print(
        f"[green]✓[/] {result.path} ({result.quantize}, {result.size_bytes / 2**20:.1f} MiB, {how})",
        highlight=False,
    )
    console.print(f"  run it: base_model/model: embedded-gguf:{result.path}", highlight=False)


models = typer.Typer(
    name="models",
    help="Ollama models: register fine-tuned candidates, list and remove them.",
    no_args_is_help=True,
)


@models.command("register")
def register_cmd(
    run_ref: RunArg,
    candidate: CandidateArg,
    name: Annotated[str, typer.Option("--name", help="Model name in Ollama, e.g. contract-lora.")],
    quantize: QuantizeOpt = None,
    host: HostOpt = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an existing model of that name.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Export and print the /api/create request; contact no server."),
    ] = False,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """Export a fine-tuned candidate to GGUF and register it in Ollama with an explicit template."""
    from bakeoff.serving.export import ExportError, check_quantization
    from bakeoff.serving.ollama import OllamaError, resolve_host
    from bakeoff.serving.ollama_template import TemplateError
    from bakeoff.serving.register import RegistrationError, register_run_candidate

    try:
        q = check_quantization(quantize or "q4_k_m")
    except ExportError as exc:
        raise fail(str(exc), 2) from None
    run_dir = find_run_or_exit(runs_dir, run_ref, readable=False).path
    target = resolve_host(host or _recipe_host(run_dir))
    try:
        out = register_run_candidate(
            run_dir,
            candidate,
            name,
            quantize=q,
            host=target,
            replace=replace,
            dry_run=dry_run,
            console=err,
        )
    except TemplateError as exc:
        raise fail(f"template error for {candidate!r}: {exc}", 1) from None
    except (ExportError, OllamaError, RegistrationError) as exc:
        raise fail(str(exc), 1) from None
    if dry_run:
        plan = out["plan"]
        blob = plan["blob"]
        err.print(
            f"dry run: would upload {blob['file']} as {blob['digest']} ({blob['size_bytes'] / 2**20:.1f} MiB) "
            f"to {target} unless it is there (HEAD /api/blobs/{blob['digest']}), then send POST "
            f"{target}/api/create with ({plan['template_family']} template):",
            highlight=False,
        )
        sys.stdout.write(json.dumps(plan["create"], indent=2, ensure_ascii=False) + "\n")
        return
    reg = out["registration"]
    console.print(
        f"[green]✓[/] {reg['name']} on {reg['host']} (Ollama {reg['server_version']}, {reg['template_family']} "
        f"template, stop {reg['stop']}); chat: OLLAMA_HOST={reg['host']} ollama run {reg['name']}",
        highlight=False,
    )


@models.command("list")
def list_cmd(host: HostOpt = None) -> None:
    """List the models on the Ollama server."""
    from rich.table import Table

    from bakeoff.serving.ollama import OllamaError, OllamaServer

    try:
        with OllamaServer(host) as server:
            rows = server.list()
    except OllamaError as exc:
        raise fail(str(exc), 1) from None
    if not rows:
        console.print(f"no models on {server.host}")
        return
    table = Table(title=f"Ollama models on {server.host}", title_justify="left")
    for col in ("name", "size", "family", "parameters", "quantization", "modified"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for m in rows:
        size = m.get("size") or 0
        table.add_row(
            str(m.get("name")),
            f"{int(size) / 2**20:.0f} MiB",
            str(m.get("family") or ""),
            str(m.get("parameter_size") or ""),
            str(m.get("quantization") or ""),
            str(m.get("modified_at") or "")[:19],
        )
    console.print(table)


@models.command("remove")
def remove_cmd(
    name: Annotated[str, typer.Argument(help="Model name in Ollama.")],
    host: HostOpt = None,
) -> None:
    """Delete a model from the Ollama server."""
    from bakeoff.serving.ollama import OllamaError, OllamaServer

    try:
        with OllamaServer(host) as server:
            server.delete(name)
    except OllamaError as exc:
        raise fail(str(exc), 1) from None
    console.print(f"[green]✓[/] removed {name} from {server.host}")

