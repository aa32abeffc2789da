"""Greedy decoding with a batch that is kept full: finished rows leave, waiting prompts join.

``model.generate`` on a batch runs until its longest answer ends; every row that finished earlier keeps being
computed. Answers to evaluation questions differ a lot in length (most end in 20-40 tokens, a few run to
``max_new_tokens``), so on a CPU — where a decoding step costs about as much as the rows in it — most of a
batch's time went to rows that were already done. Here each step decodes only unfinished rows, and when a
quarter of the batch is free the next prompts (shortest first) are prefilled and merged into the running
key/value cache, left-padded to its length. A beginning that a group's prompts share (the system prompt, the
few-shot examples) is prefilled once for the group. Positions are given per row, so every row decodes exactly
what it would alone (up to float rounding, as in any padded batch).

What a CPU step costs decides the rest (``bench/bench_decoding.py``, docs/benchmarks.md "Answering"):

- Prompts are prefilled a few rows at a time (about :data:`PREFILL_TOKENS` padded tokens per pass): one pass
  over 48 RAG prompts of ~600 tokens ran at 411 tokens/s, passes of ~2,400 tokens at 558 (the attention of a
  huge padded pass and activations that outgrow the caches cost more than the matrix products save).
- The key/value cache lives at the start of buffers with room to grow (:class:`_RoomyLayer`): a step writes
  its new column in place. transformers' ``DynamicLayer`` concatenates, copying the whole cache every step —
  half of a 48-row step's time with 600-token RAG prompts.
- A finished row is handed back at once but stays in the batch, ignored, until a sixteenth of the rows are
  done (or new prompts join): dropping rows copies the cache, which costs more than computing a few idle
  rows for some steps.

Only the plain growing cache (``DynamicCache`` of ``DynamicLayer``) is supported; anything else raises
:class:`Unsupported` before any token is generated and the caller falls back to ``model.generate``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Finished", "Unsupported", "greedy_continuous"]

MIN_SHARED_PREFIX = 8  # tokens; below this a shared beginning is not worth a separate pass
PREFILL_TOKENS = 2048  # padded tokens per prefill pass (at least one row per pass)
ROOM = 128  # free cache columns at most after a merge; a full buffer grows by half (at least this)


class Unsupported(Exception):
    """The model's cache cannot be merged and split by row."""


@dataclass
class Finished:
    index: int  # position of the prompt in the caller's list
    tokens: list[int]  # generated ids, the stop token included when one ended the answer
    prompt_tokens: int
    ended: bool  # a stop token ended it (not max_new_tokens)


def _dynamic_layer():
    from transformers.cache_utils import DynamicLayer

    return DynamicLayer


def _layers(cache):
    dynamic = _dynamic_layer()
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not dynamic for layer in layers):
        raise Unsupported(f"{type(cache).__name__} cannot be batched row by row")
    return layers


def _cache_keyword(model) -> str:
    """The keyword a model's ``forward`` takes its key/value cache by: ``cache`` since transformers 5.24
    (where ``past_key_values`` still works but logs a deprecation warning), ``past_key_values`` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model passes it on
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _cache_of(output):
    """The key/value cache of a forward's output, read without the deprecated ``past_key_values`` alias."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def _common_prefix(rows: list[list[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for row in rows[1:]:
        i = 0
        while i < n and row[i] == first[i]:
            i += 1
        n = i
    return n


def _chunks(lengths: list[int], tokens: int) -> list[range]:
    """Consecutive runs of rows whose padded size (rows × longest) stays within ``tokens``."""
    out, start, longest = [], 0, 0
    for i, n in enumerate(lengths):
        longest_with = max(longest, n)
        if i > start and (i - start + 1) * longest_with > tokens:
            out.append(range(start, i))
            start, longest_with = i, n
        longest = longest_with
    if lengths:
        out.append(range(start, len(lengths)))
    return out


@dataclass
class _Part:
    """Rows of key/value cache, right-aligned: ``keys[l]``/``values[l]`` are [rows, heads, width, dim]."""

    keys: list[Any]
    values: list[Any]
    mask: Any  # [rows, width], 0 on left padding
    first: Any = None  # the greedy next token of each row (after a prefill)


def _prefill(model, tokenizer, prompts: list[str], budget: int) -> _Part:
    """Run the prompts through the model, a few rows per pass: their cache, mask and first tokens.

    The prompts of one group usually share a long beginning (system prompt, few-shot examples): it is computed
    once and its keys/values copied to every row; the rest of each prompt follows it after padding
    (``[shared][pad][own]``), with positions that count only real tokens, so each row computes what it would
    alone.
    """
    import torch

    device = model.device
    ids = [
        tokenizer(p, truncation=True, max_length=budget, add_special_tokens=False)["input_ids"]
        for p in prompts
    ]
    shared = min(_common_prefix(ids), min(len(r) for r in ids) - 1) if len(ids) > 1 else 0
    head = None
    if shared >= MIN_SHARED_PREFIX:
        head = torch.tensor([ids[0][:shared]], device=device)
        head = _cache_of(model(input_ids=head, use_cache=True, logits_to_keep=1))
        _layers(head)
    else:
        shared = 0
    rest = [r[shared:] for r in ids]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = []
    for rows in _chunks([len(r) for r in rest], PREFILL_TOKENS):
        chunk = [rest[i] for i in rows]
        past = None
        if head is not None:
            past = _expanded(head, len(chunk))
        width = max(len(r) for r in chunk)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in chunk], device=device)
        own = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chunk], device=device)
        mask = torch.cat([own.new_ones((len(chunk), shared)), own], dim=1)
        res = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(shared + own.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            logits_to_keep=1,
            **{_cache_keyword(model): past},
        )
        layers = _layers(_cache_of(res))
        parts.append(
            _Part(
                [layer.keys for layer in layers],
                [layer.values for layer in layers],
                mask,
                res.logits[:, -1].argmax(-1),
            )
        )
    if len(parts) == 1:
        return parts[0]
    joined = _join(parts, room=0)
    joined.first = torch.cat([p.first for p in parts])
    return joined


def _expanded(cache, rows: int):
    """A new plain cache holding ``cache``'s single row ``rows`` times."""
    from transformers.cache_utils import DynamicCache

    out = DynamicCache()
    out.layers = []
    for layer in cache.layers:
        copy = _dynamic_layer()()
        copy.keys = layer.keys.expand(rows, -1, -1, -1).contiguous()
        copy.values = layer.values.expand(rows, -1, -1, -1).contiguous()
        copy.device, copy.is_initialized = layer.keys.device, True
        out.layers.append(copy)
    return out


def _join(parts: list[_Part], room: int) -> _Part:
    """The parts' rows in one cache, left-padded to the widest, with ``room`` free columns after it."""
    import torch

    width = max(p.mask.shape[1] for p in parts)
    rows = sum(p.mask.shape[0] for p in parts)
    keys, values = [], []
    for n, sample in enumerate(parts[0].keys):
        k = sample.new_zeros((rows, sample.shape[1], width + room, sample.shape[3]))
        v = torch.zeros_like(k)
        r = 0
        for p in parts:
            w, h = p.mask.shape[1], p.mask.shape[0]
            k[r : r + h, :, width - w : width] = p.keys[n]
            v[r : r + h, :, width - w : width] = p.values[n]
            r += h
        keys.append(k)
        values.append(v)
    mask = parts[0].mask.new_zeros((rows, width))
    r = 0
    for p in parts:
        w, h = p.mask.shape[1], p.mask.shape[0]
        mask[r : r + h, width - w :] = p.mask
        r += h
    return _Part(keys, values, mask)


def _roomy_layer_class():
    dynamic = _dynamic_layer()

    class _RoomyLayer(dynamic):
        """A ``DynamicLayer`` whose keys/values are the first ``n`` columns of larger buffers: a step writes its
        new columns in place (growing by half when full) instead of concatenating a copy of the cache."""

        def __init__(self, keys, values, n: int):
            super().__init__()
            self.kbuf, self.vbuf, self.n = keys, values, n
            self.device, self.is_initialized = keys.device, True
            self.keys, self.values = keys[:, :, :n], values[:, :, :n]

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            new = key_states.shape[-2]
            if self.n + new > self.kbuf.shape[2]:
                grow = max(ROOM, new, self.n // 2)
                pad = self.kbuf.new_zeros((*self.kbuf.shape[:2], grow, self.kbuf.shape[3]))
                self.kbuf = torch.cat([self.kbuf[:, :, : self.n], pad], dim=2)
                self.vbuf = torch.cat([self.vbuf[:, :, : self.n], pad.clone()], dim=2)
            self.kbuf[:, :, self.n : self.n + new] = key_states
            self.vbuf[:, :, self.n : self.n + new] = value_states
            self.n += new
            self.keys, self.values = self.kbuf[:, :, : self.n], self.vbuf[:, :, : self.n]
            return self.keys, self.values

    return _RoomyLayer


def greedy_continuous(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    budget: int,
    on_done: Callable[[Finished], None],
    before_step: Callable[[], None] = lambda: None,
) -> None:
    """Decode every prompt greedily, calling ``on_done`` as each answer ends (in the order they end).

    Prompts are taken in the order given (callers sort them by length); ``before_step`` runs before each
    forward pass (the caller adjusts CPU threads there). Raises :class:`Unsupported` from the first prefill
    when the model's cache is not a plain dynamic cache.
    """
    import torch

    batch = _Batch(model, set(stop_ids), max_new_tokens, on_done)
    pending = deque(range(len(prompts)))
    refill_at = max(1, batch_size // 4)
    with torch.inference_mode():
        while pending or batch.alive:
            before_step()
            free = batch_size - batch.alive
            if pending and (not batch.alive or free >= refill_at):
                take = [pending.popleft() for _ in range(min(free, len(pending)))]
                batch.admit(take, _prefill(model, tokenizer, [prompts[i] for i in take], budget))
            else:
                batch.step()


class _Batch:
    """The rows being decoded: their key/value cache, attention mask, last token and tokens so far."""

    def __init__(self, model, stop_ids: set[int], max_new_tokens: int, on_done: Callable[[Finished], None]):
        self.model = model
        self.cache_keyword = _cache_keyword(model)
        self.stop_ids = stop_ids
        self.max_new_tokens = max_new_tokens
        self.on_done = on_done
        self.roomy = _roomy_layer_class()
        self.rows: list[int] = []  # prompt index of each row
        self.out: list[list[int]] = []  # tokens generated so far, per row
        self.n_prompt: list[int] = []
        self.dead: set[int] = set()  # rows already handed back, still computed until the next compaction
        self.cache = None
        self.mask = self.last = (
            None  # attention mask [rows, length]; last generated token per row (not yet fed)
        )

    @property
    def alive(self) -> int:
        return len(self.rows) - len(self.dead)

    def _install(self, part: _Part) -> None:
        """Make ``part`` (buffers with room) the batch's cache."""
        from transformers.cache_utils import DynamicCache

        width = part.mask.shape[1]
        self.cache = DynamicCache()
        self.cache.layers = [self.roomy(k, v, width) for k, v in zip(part.keys, part.values, strict=True)]
        self.mask = part.mask

    def _current(self) -> _Part:
        return _Part(
            [layer.keys for layer in self.cache.layers],
            [layer.values for layer in self.cache.layers],
            self.mask,
        )

    def admit(self, take: list[int], new: _Part) -> None:
        """Merge freshly prefilled prompts into the running cache (both left-padded to one length)."""
        import torch

        self.compact()
        parts = [self._current(), new] if self.rows else [new]
        self._install(_join(parts, room=min(self.max_new_tokens, ROOM)))
        self.last = torch.cat([self.last, new.first]) if self.rows else new.first
        self.rows += take
        firsts = new.first.tolist()
        self.out += [[t] for t in firsts]
        self.n_prompt += new.mask.sum(-1).tolist()
        start = len(self.rows) - len(take)
        self.finish(
            [start + j for j, t in enumerate(firsts) if t in self.stop_ids or self.max_new_tokens <= 1]
        )

    def step(self) -> None:
        """One decoding step for every row in the batch."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        position = self.mask.sum(-1, keepdim=True) - 1
        res = self.model(
            input_ids=self.last[:, None],
            attention_mask=self.mask,
            position_ids=position,
            use_cache=True,
            **{self.cache_keyword: self.cache},
        )
        self.last = res.logits[:, -1].argmax(-1)
        done = []
        for i, t in enumerate(self.last.tolist()):
            if i in self.dead:
                continue
            self.out[i].append(t)
            if t in self.stop_ids or len(self.out[i]) >= self.max_new_tokens:
                done.append(i)
        self.finish(done)

    def finish(self, done: list[int]) -> None:
        """Hand the finished rows to ``on_done``; they leave the batch at the next compaction."""
        for i in done:
            tokens = self.out[i]
            self.on_done(
                Finished(self.rows[i], tokens, self.n_prompt[i], bool(tokens) and tokens[-1] in self.stop_ids)
            )
        self.dead.update(done)
        if self.dead and (len(self.dead) * 16 >= len(self.rows) or not self.alive):
            self.compact()

    def compact(self) -> None:
        """Drop the finished rows, and the columns that are padding in every remaining row."""
        import torch

        if not self.dead:
            return
        selected = [i for i in range(len(self.rows)) if i not in self.dead]
        self.dead = set()
        self.rows = [self.rows[i] for i in selected]
        self.out = [self.out[i] for i in selected]
        self.n_prompt = [self.n_prompt[i] for i in selected]
        if not selected:
            self.cache = self.mask = self.last = None
            return
        index = torch.tensor(selected, dtype=torch.long, device=self.model.device)
        mask = self.mask[index]
        first = int(mask.any(dim=0).nonzero()[0])  # attention then reads less
        self.mask, self.last = mask[:, first:], self.last[index]
        for layer in self.cache.layers:
            layer.kbuf, layer.vbuf = layer.kbuf[index, :, first:], layer.vbuf[index, :, first:]
            layer.n -= first
            layer.keys, layer.values = layer.kbuf[:, :, : layer.n], layer.vbuf[:, :, : layer.n]
