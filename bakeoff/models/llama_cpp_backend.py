"""``embedded-gguf:PATH`` — a GGUF file run in-process by llama.cpp (llama-cpp-python).

This is the served-artifact check: after ``bakeoff export --quantize q4_k_m`` a recipe can evaluate *exactly*
the file that ``bakeoff models register`` hands to Ollama, beside the PyTorch adapter, and see what the export
and the quantization cost. Prompts are rendered with the chat template stored in the GGUF (the same Jinja
renderer transformers uses), a leading BOS is left to the tokenizer when the GGUF says ``add_bos_token`` (as
llama.cpp and Ollama do), and generation stops at llama.cpp's end-of-generation tokens. Conversations are
answered one after another (llama.cpp is ~110 tokens/s single-stream on 2 cores for SmolLM2, several times
faster than transformers on CPU); greedy unless a temperature is set.

:class:`LlamaCppChat` is the other way to run a GGUF here: through llama-cpp-python's own chat completion, with
a repeat penalty and decoding constrained to a JSON schema (:class:`~bakeoff.models.generators.JSONReplies`).
It is how bakeoff serves the embedded model as a judge.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.models.generators import BackendError

__all__ = [
    "LLAMA_CPP_PYTHON",
    "LLAMA_CPP_SETTINGS",
    "REPEAT_PENALTY",
    "LlamaCppChat",
    "LlamaCppGenerator",
    "cpu_has_amx",
    "import_llama_cpp",
    "load_llama",
]

# llama.cpp's classic repeat penalty: without it a 135M judge greedily loops inside a JSON string until
# max_tokens ("What is the initial term of the initial term of ...") and every such verdict is lost.
REPEAT_PENALTY = 1.1
LLAMA_CPP_SETTINGS = f"repeat_penalty={REPEAT_PENALTY}"  # part of judge-cache keys: change it, re-judge

_LOAD_LOCK = threading.Lock()
LLAMA_CPP_PYTHON = "0.3.36"  # the release requirements/lock.txt pins (the vendored converter's too)


def import_llama_cpp(what: str, error: type[Exception] = BackendError):
    """The ``llama_cpp`` module, or ``error`` with a one-line message naming the command that installs it.

    llama.cpp is optional at run time: ``make demo`` runs without it and ``make llama`` builds it.

    Raises:
        BackendError (or ``error``): llama-cpp-python is not installed, or its library does not load here.
    """
    try:
        import llama_cpp
    except ModuleNotFoundError as exc:
        if exc.name != "llama_cpp":
            raise
        raise error(
            f"{what} needs llama.cpp, which is not installed: run `make llama` in the bakeoff checkout "
            f"(or `pip install llama-cpp-python=={LLAMA_CPP_PYTHON}`)"
        ) from None
    except (ImportError, OSError, RuntimeError) as exc:  # RuntimeError: llama_cpp's library did not load
        raise error(f"{what} needs llama.cpp, whose library does not load here ({exc}): `make llama` rebuilds it") from None
    return llama_cpp


def cpu_has_amx() -> bool:
    """Whether this CPU reports Intel AMX tiles (``amx_tile`` in /proc/cpuinfo; False where unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return any(line.startswith("flags") and " amx_tile" in line for line in fh)
    except OSError:
        return False


def load_llama(path: str | Path, **kwargs: Any):
    """A ``llama_cpp.Llama`` for a GGUF file, safe on CPUs with AMX.

    llama.cpp built natively on an AMX CPU (Sapphire Rapids and later) repacks quantized weights into its AMX
    buffer type, whose matrix multiply crashes the process (SIGSEGV in ``ggml_backend_amx_mul_mat``, seen with
    llama-cpp-python 0.3.36 on the embedded Q4_1 model). On such CPUs the extra (repacking) buffer types are
    turned off for the load; ``BAKEOFF_LLAMA_EXTRA_BUFTS=1`` keeps them. llama-cpp-python does not expose the
    flag, so its default model parameters are wrapped for the duration of the constructor (under a lock).

    Raises:
        BackendError: llama-cpp-python is not installed.
    """
    llama_cpp = import_llama_cpp("a GGUF model in llama.cpp")
    import llama_cpp.llama as llama_module

    if not cpu_has_amx() or os.environ.get("BAKEOFF_LLAMA_EXTRA_BUFTS") == "1":
        return llama_cpp.Llama(str(path), **kwargs)
    original = llama_module.llama_cpp.llama_model_default_params

    def without_extra_buffers():
        params = original()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        llama_module.llama_cpp.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(str(path), **kwargs)
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


class LlamaCppGenerator:
    """One GGUF model in llama.cpp."""

    def __init__(self, path: str | Path, *, name: str | None = None, n_ctx: int = 4096) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise BackendError(
                f"GGUF file not found: {path}; export one with `bakeoff export RUN CANDIDATE --format gguf` "
                "or give the path of an existing .gguf file"
            )
        llama_cpp = import_llama_cpp("an embedded-gguf: model")
        try:
            # Threads: llama-cpp-python's default (half the CPUs). All CPUs is slower as soon as anything else
            # runs: llama.cpp's threads spin-wait for each other (measured here: 1 thread ~10-20 tokens/s,
            # 2 threads ~1 token/s on a busy 2-core machine).
            self.llm = load_llama(path, n_ctx=n_ctx, n_batch=512, verbose=False, seed=0)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp cannot load {path}: {exc}") from None
        self._llama_cpp = llama_cpp
        self.path = path
        self.name = name or f"embedded-gguf:{path}"
        model = self.llm._model
        self.chat_template: str = self.llm.metadata.get("tokenizer.chat_template", "")
        self.bos_token = model.token_get_text(model.token_bos()) if model.token_bos() >= 0 else ""
        self.eos_token = model.token_get_text(model.token_eos()) if model.token_eos() >= 0 else ""
        self.add_bos = bool(model.add_bos_token())
        self.context_length = int(self.llm.n_ctx())
        self._lock = threading.Lock()

    def close(self) -> None:
        """Free the model (llama.cpp memory) now rather than at interpreter exit."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None

    # -- prompts -------------------------------------------------------------------------------------------
    def render(self, conversation: list[Message]) -> str:
        """The prompt text for a conversation (the GGUF's chat template), ending where the reply starts."""
        if not self.chat_template:
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
            return "\n\n".join(lines) + "\n\nAssistant:"
        from bakeoff.serving.ollama_template import render_jinja

        text = render_jinja(
            self.chat_template, conversation, bos_token=self.bos_token, eos_token=self.eos_token
        )
        if self.add_bos and self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]  # the tokenizer adds BOS itself
        return text

    def tokenize(self, conversation: list[Message]) -> list[int]:
        """Prompt token ids as llama.cpp (and Ollama) feed them: BOS per the GGUF, special tokens parsed."""
        return self.llm.tokenize(
            self.render(conversation).encode("utf-8"), add_bos=self.add_bos, special=True
        )

    def _sampling(self, settings: GenerationSettings) -> dict[str, Any]:
        if settings.temperature > 0:
            self.llm.set_seed(settings.seed)
            return {"temp": settings.temperature, "top_p": settings.top_p, "top_k": 0, "min_p": 0.0}
        return {"temp": 0.0}

    def generate_ids(self, prompt: list[int], settings: GenerationSettings) -> tuple[list[int], bool]:
        """Generated token ids for one prompt, and whether generation ended by itself (not by the budget)."""
        is_eog = self._llama_cpp.llama_vocab_is_eog
        vocab = self.llm._model.vocab
        budget = min(settings.max_new_tokens, self.context_length - len(prompt))
        out: list[int] = []
        if budget <= 0:
            return out, False
        self.llm.reset()  # no KV-cache reuse across prompts: an answer must not depend on the previous one
        for tok in self.llm.generate(prompt, reset=True, **self._sampling(settings)):
            if is_eog(vocab, tok):
                return out, True
            out.append(tok)
            if len(out) >= budget:
                break
        return out, False

    def _fit(self, prompt: list[int], settings: GenerationSettings) -> list[int]:
        keep = max(16, self.context_length - settings.max_new_tokens)
        return prompt[-keep:] if len(prompt) > keep else prompt

    # -- generation ----------------------------------------------------------------------------------------
    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        results = []
        with self._lock:
            for convo in conversations:
                t0 = time.perf_counter()
                try:
                    full = self.tokenize(convo)
                    prompt = self._fit(full, settings)
                    ids, ended = self.generate_ids(prompt, settings)
                    text = self.llm.detokenize(ids, special=False).decode("utf-8", errors="replace").strip()
                    gen = Generation(
                        text,
                        prompt_tokens=len(prompt),
                        completion_tokens=len(ids),
                        truncated=not ended,
                        prompt_truncated=len(prompt) < len(full),
                    )
                except (RuntimeError, ValueError) as exc:
                    gen = Generation("", error=f"{type(exc).__name__}: {exc}")
                gen.latency_s = time.perf_counter() - t0
                results.append(gen)
                if progress:
                    progress(1)
        return results

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        is_eog = self._llama_cpp.llama_vocab_is_eog
        with self._lock:
            vocab = self.llm._model.vocab
            prompt = self._fit(self.tokenize(conversation), settings)
            ids: list[int] = []
            shown = ""
            self.llm.reset()
            for tok in self.llm.generate(prompt, reset=True, **self._sampling(settings)):
                if is_eog(vocab, tok):
                    break
                ids.append(tok)
                # Decode the whole reply each time, so multi-byte characters split across tokens stay whole.
                text = self.llm.detokenize(ids, special=False).decode("utf-8", errors="ignore")
                if len(text) > len(shown):
                    yield text[len(shown) :].lstrip() if not shown else text[len(shown) :]
                    shown = text
                if len(ids) >= settings.max_new_tokens:
                    break


class LlamaCppChat:
    """A GGUF model through llama-cpp-python's chat completion, with JSON-schema constrained decoding.

    Unlike :class:`LlamaCppGenerator` (bakeoff renders the prompt and stops at the GGUF's end-of-generation
    tokens, to answer exactly as Ollama would), this one lets llama-cpp-python format the chat, applies
    :data:`REPEAT_PENALTY`, keeps a small RAM cache of prompt prefixes and can decode to a grammar — what a
    judge needs. Sampling: the request's temperature; llama-cpp-python's defaults otherwise.
    """

    def __init__(self, gguf: Path, *, n_ctx: int = 8192, seed: int = 0, cache_mib: int = 64) -> None:
        # OpenMP threads that spin while waiting cost a shared or busy CPU more than they gain (measured on
        # 2 busy cores: prompt evaluation 2.3x and decoding 5x faster with passive waiting). Read once, when
        # llama.cpp's OpenMP runtime loads, so it must be set before the import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        LlamaRAMCache = import_llama_cpp("the embedded judge's llama.cpp server").LlamaRAMCache
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.llm = load_llama(gguf, n_ctx=n_ctx, n_batch=256, n_threads=threads, seed=seed, verbose=False)
        # Judge prompts share long prefixes (instructions, examples, the JSON schema); the RAM cache keeps the
        # KV state of recent prompts so only the new suffix is evaluated, also when two prompt kinds alternate.
        # Its capacity counts only the KV bytes (~20 KB a token here); every entry also holds a copy of the
        # n_batch x vocabulary logits (~50 MB), so the capacity is kept small: a few entries, < 0.5 GB in all.
        self.llm.set_cache(LlamaRAMCache(capacity_bytes=cache_mib << 20))
        self.name = gguf.name
        self._lock = threading.Lock()

    def _kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        return {
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "repeat_penalty": REPEAT_PENALTY,
        }

    def _complete(
        self,
        conversation: list[Message],
        settings: GenerationSettings,
        response_format: dict[str, Any] | None,
    ) -> Generation:
        kwargs = self._kwargs(settings)
        if response_format is not None:
            kwargs["response_format"] = response_format
        t0 = time.perf_counter()
        try:
            with self._lock:
                out = self.llm.create_chat_completion(messages=conversation, **kwargs)
        except (RuntimeError, ValueError) as exc:
            return Generation("", error=f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - t0)
        return Generation.from_chat_completion(out, time.perf_counter() - t0)

    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        results = []
        for convo in conversations:
            results.append(self._complete(convo, settings, None))
            if progress:
                progress(1)
        return results

    def generate_json(
        self, conversation: list[Message], settings: GenerationSettings, schema: dict[str, Any] | None
    ) -> Generation:
        fmt: dict[str, Any] = {"type": "json_object"}
        if schema is not None:
            fmt["schema"] = schema
        return self._complete(conversation, settings, fmt)

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        with self._lock:
            for chunk in self.llm.create_chat_completion(
                messages=conversation, stream=True, **self._kwargs(settings)
            ):
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    yield piece
