"""Batched generation with transformers (CPU or CUDA).

Prompts are rendered with the tokenizer's chat template, sorted by length (less padding), padded on the left
and generated together under ``torch.inference_mode`` — on 2 CPU cores, 16 prompts batched run about 4x
faster than one at a time. Decoding is greedy unless a temperature is set, and stops at the end of the turn.
On a CPU each batch runs on the cores that are idle when it starts (:mod:`bakeoff.threads`): a busy
neighbour on a shared machine otherwise slows every OpenMP barrier of the decoding loop.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.models._continuous import Unsupported as _Unsupported
from bakeoff.models.generators import BackendError

__all__ = ["TransformersGenerator", "pick_device"]

# Extra end-of-turn markers of common chat formats (ChatML, Llama 3, Gemma, Mistral).
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "</s>", "<|end|>", "<|endoftext|>")


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersGenerator:
    """A causal LM and its tokenizer, generating in batches."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"  # over-long prompts lose their oldest turns, never the question
        self.stop_ids = sorted(
            {tokenizer.eos_token_id}
            | {
                tid
                for tok in _END_OF_TURN
                if (tid := tokenizer.convert_tokens_to_ids(tok)) is not None and tid != tokenizer.unk_token_id
            }
            - {None}
        )
        self._lock = threading.Lock()  # one generate() at a time per model (the console chats from threads)
        self.threads: tuple[int, str] | None = None  # torch threads of the last CPU batch, and why
        self._continuous_ok = True  # greedy CPU decoding keeps its batch full (see _continuous.py)

    @contextlib.contextmanager
    def _cpu_threads(self) -> Iterator[Callable[[], None]]:
        """On a CPU, run the block on the cores other processes leave free (:mod:`bakeoff.threads`); the
        yielded function re-decides (cheaply, at most every few seconds) during long work."""
        if getattr(self.model, "device", None) is None or self.model.device.type != "cpu":
            yield lambda: None
            return
        from bakeoff.threads import adjust_torch_threads, cpu_threads, torch_threads

        def adjust() -> None:
            adjust_torch_threads()
            self.threads = cpu_threads()

        with torch_threads():
            self.threads = cpu_threads()
            yield adjust

    @classmethod
    def from_path(cls, path: str | Path, *, name: str | None = None) -> TransformersGenerator:
        """Load a model folder (or an already-cached hub id; nothing is downloaded)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # bakeoff shows its own progress
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            device = pick_device()
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch.bfloat16 if device == "cuda" else torch.float32
            ).to(device)
        except OSError as exc:
            raise BackendError(
                f"cannot load model {path}: {exc}. Give a local folder (hf:/path/to/model) or a model already in "
                "the Hugging Face cache; bakeoff never downloads weights (HF_HUB_OFFLINE=1)."
            ) from None
        model.eval()
        return cls(model, tokenizer, name=name or str(path))

    # -- prompts -------------------------------------------------------------------------------------------
    def render(self, conversation: list[Message]) -> str:
        """The prompt text for a conversation, ending where the assistant's reply starts."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        # No chat template (a base model): a plain transcript.
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
        return "\n\n".join(lines) + "\n\nAssistant:"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def _prepare(self):
        """Put the model in inference shape: eval mode, KV cache on (training may have turned it off)."""
        self.model.eval()
        if hasattr(self.model, "config"):
            self.model.config.use_cache = True
        checkpointing = getattr(type(self.model), "is_activation_checkpointing", None) or getattr(
            type(self.model), "is_gradient_checkpointing", None
        )
        if (
            checkpointing is not None
            and checkpointing.__get__(self.model)
            and hasattr(self.model, "gradient_checkpointing_disable")
        ):
            self.model.gradient_checkpointing_disable()

    def _gen_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.stop_ids,
            "use_cache": True,
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    # -- generation ----------------------------------------------------------------------------------------
    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        import torch

        prompts = [self.render(c) for c in conversations]
        budget = max(16, self.context_length - settings.max_new_tokens)
        lengths = [self.count_tokens(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        results: list[Generation | None] = [None] * len(prompts)
        with self._lock:
            self._prepare()
            if settings.temperature > 0:
                torch.manual_seed(settings.seed)
            elif self.model.device.type == "cpu" and self._continuous_ok:
                try:
                    self._generate_continuous(prompts, order, lengths, settings, budget, results, progress)
                except _Unsupported:
                    self._continuous_ok = False  # this model's cache: batch by batch from now on
                else:
                    return [r for r in results if r is not None]
            for start in range(0, len(order), settings.batch_size):
                idx = order[start : start + settings.batch_size]
                t0 = time.perf_counter()
                try:
                    with self._cpu_threads():
                        outs = self._generate_batch([prompts[i] for i in idx], settings, budget)
                except (
                    RuntimeError,
                    ValueError,
                ) as exc:  # e.g. out of memory: fail these answers, keep going
                    outs = [Generation("", error=f"{type(exc).__name__}: {exc}") for _ in idx]
                per = (time.perf_counter() - t0) / len(idx)
                for i, out in zip(idx, outs, strict=True):
                    out.latency_s = per
                    out.prompt_truncated = lengths[i] > budget
                    results[i] = out
                if progress:
                    progress(len(idx))
        return [r for r in results if r is not None]

    def _generate_continuous(
        self,
        prompts: list[str],
        order: list[int],
        lengths: list[int],
        settings: GenerationSettings,
        budget: int,
        results: list[Generation | None],
        progress: Callable[[int], None] | None,
    ) -> None:
        """Greedy CPU decoding with a batch kept full (:mod:`bakeoff.models._continuous`).

        Raises:
            _Unsupported: the model's cache cannot be split by row (nothing was generated).
        """
        from bakeoff.models._continuous import Finished, greedy_continuous

        t0 = time.perf_counter()
        finished: list[Finished] = []

        def done(item: Finished) -> None:
            finished.append(item)
            if progress:
                progress(1)

        error = None
        try:
            with self._cpu_threads() as adjust:
                greedy_continuous(
                    self.model,
                    self.tokenizer,
                    [prompts[i] for i in order],
                    batch_size=settings.batch_size,
                    max_new_tokens=settings.max_new_tokens,
                    stop_ids=self.stop_ids,
                    budget=budget,
                    on_done=done,
                    before_step=adjust,
                )
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: fail the unfinished answers
            error = f"{type(exc).__name__}: {exc}"
        # Latency as in batch-by-batch generation: the call's wall time shared by its answers.
        per = (time.perf_counter() - t0) / max(1, len(order))
        for item in finished:
            i = order[item.index]
            results[i] = Generation(
                self.tokenizer.decode(item.tokens, skip_special_tokens=True).strip(),
                prompt_tokens=item.prompt_tokens,
                completion_tokens=len(item.tokens),
                latency_s=per,
                truncated=not item.ended,
                prompt_truncated=lengths[i] > budget,
            )
        for i in order:
            if results[i] is None:
                results[i] = Generation("", error=error or "generation stopped early", latency_s=per)

    def _generate_batch(
        self, prompts: list[str], settings: GenerationSettings, budget: int
    ) -> list[Generation]:
        import torch

        enc = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=budget,
            add_special_tokens=False,
        ).to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, **self._gen_kwargs(settings))
        new = out[:, enc["input_ids"].shape[1] :]
        results = []
        stop = set(self.stop_ids)
        for row, mask in zip(new.tolist(), enc["attention_mask"].tolist(), strict=True):
            n = len(row)
            for j, tok in enumerate(row):
                if tok in stop:
                    n = j + 1
                    break
            ended = n < len(row) or (row and row[n - 1] in stop)
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            results.append(
                Generation(text, prompt_tokens=int(sum(mask)), completion_tokens=n, truncated=not ended)
            )
        return results

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        prompt = self.render(conversation)
        enc = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(**enc, **self._gen_kwargs(settings), streamer=streamer)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, self._cpu_threads(), torch.inference_mode():
                    self._prepare()
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise BackendError(f"generation failed: {errors[0]}")
