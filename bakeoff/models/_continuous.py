"""Greedy decoding with a batch that is kept full: finished rows leave, waiting prompts join.

``model.generate`` on a batch runs until its longest answer ends; every row that finished earlier keeps being
computed. Answers to evaluation questions differ a lot in length (most end in 20-40 tokens, a few run to
``max_new_tokens``), so on a CPU — where a decoding step costs about as much as the rows in it — most of a
batch's time went to rows that were already done. Here each step decodes only unfinished rows, and when a
quarter of the batch is free the next prompts (shortest first) are prefilled and merged into the running
key/value cache, left-padded to its length. A beginning that a group's prompts share (the system prompt, the
few-shot examples) is prefilled once for the group. Positions are given per row, so every row decodes exactly
what it would alone (up to float rounding, as in any padded batch).

Only the plain growing cache (``DynamicCache`` of ``DynamicLayer``) is supported; anything else raises
:class:`Unsupported` before any token is generated and the caller falls back to ``model.generate``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Finished", "Unsupported", "greedy_continuous"]

MIN_SHARED_PREFIX = 8  # tokens; below this a shared beginning is not worth a separate pass


class Unsupported(Exception):
    """The model's cache cannot be merged and split by row."""


@dataclass
class Finished:
    index: int  # position of the prompt in the caller's list
    tokens: list[int]  # generated ids, the stop token included when one ended the answer
    prompt_tokens: int
    ended: bool  # a stop token ended it (not max_new_tokens)


def _layers(cache):
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
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


def _left_pad(tensor, width: int, dim: int):
    import torch

    if width == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _common_prefix(rows: list[list[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for row in rows[1:]:
        i = 0
        while i < n and row[i] == first[i]:
            i += 1
        n = i
    return n


def _prefill(model, tokenizer, prompts: list[str], budget: int):
    """Run the prompts through the model: (output with its cache, attention mask).

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
    past = None
    if shared >= MIN_SHARED_PREFIX:
        head = torch.tensor([ids[0][:shared]], device=device)
        past = _cache_of(model(input_ids=head, use_cache=True, logits_to_keep=1))
        for layer in _layers(past):
            layer.keys = layer.keys.expand(len(ids), -1, -1, -1).contiguous()
            layer.values = layer.values.expand(len(ids), -1, -1, -1).contiguous()
    else:
        shared = 0
    rest = [r[shared:] for r in ids]
    width = max(len(r) for r in rest)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rest], device=device)
    own = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rest], device=device)
    mask = torch.cat([own.new_ones((len(ids), shared)), own], dim=1)
    position = (shared + own.cumsum(-1) - 1).clamp(min=0)
    res = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position,
        use_cache=True,
        logits_to_keep=1,
        **{_cache_keyword(model): past},
    )
    return res, mask


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
        while pending or batch.rows:
            before_step()
            free = batch_size - len(batch.rows)
            if pending and (not batch.rows or free >= refill_at):
                take = [pending.popleft() for _ in range(min(free, len(pending)))]
                batch.admit(take, *_prefill(model, tokenizer, [prompts[i] for i in take], budget))
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
        self.rows: list[int] = []  # prompt index of each active row
        self.out: list[list[int]] = []  # tokens generated so far, per active row
        self.n_prompt: list[int] = []
        self.cache = self.layers = None
        self.mask = self.last = (
            None  # attention mask [rows, length]; last generated token per row (not yet fed)
        )

    def admit(self, take: list[int], res, new_mask) -> None:
        """Merge freshly prefilled prompts into the running cache (both left-padded to one length)."""
        import torch

        new_layers = _layers(_cache_of(res))
        first_tokens = res.logits[:, -1].argmax(-1)
        if not self.rows:  # the first prompts, or every earlier row has finished
            self.cache, self.layers = _cache_of(res), new_layers
            self.mask, self.last = new_mask, first_tokens
        else:
            old_w, new_w = self.mask.shape[1], new_mask.shape[1]
            width = max(old_w, new_w)
            for old, new in zip(self.layers, new_layers, strict=True):
                old.keys = torch.cat(
                    [_left_pad(old.keys, width - old_w, 2), _left_pad(new.keys, width - new_w, 2)]
                )
                old.values = torch.cat(
                    [_left_pad(old.values, width - old_w, 2), _left_pad(new.values, width - new_w, 2)]
                )
            self.mask = torch.cat(
                [_left_pad(self.mask, width - old_w, 1), _left_pad(new_mask, width - new_w, 1)]
            )
            self.last = torch.cat([self.last, first_tokens])
        self.rows += take
        firsts = first_tokens.tolist()
        self.out += [[t] for t in firsts]
        self.n_prompt += new_mask.sum(-1).tolist()
        start = len(self.rows) - len(take)
        self.finish(
            [start + j for j, t in enumerate(firsts) if t in self.stop_ids or self.max_new_tokens <= 1]
        )

    def step(self) -> None:
        """One decoding step for every active row."""
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
            self.out[i].append(t)
            if t in self.stop_ids or len(self.out[i]) >= self.max_new_tokens:
                done.append(i)
        self.finish(done)

    def finish(self, done: list[int]) -> None:
        """Hand the finished rows to ``on_done`` and drop them from the batch."""
        for i in done:
            tokens = self.out[i]
            self.on_done(
                Finished(self.rows[i], tokens, self.n_prompt[i], bool(tokens) and tokens[-1] in self.stop_ids)
            )
        if done:
            gone = set(done)
            self.keep([i for i in range(len(self.rows)) if i not in gone])

    def keep(self, selected: list[int]) -> None:
        import torch

        index = torch.tensor(selected, dtype=torch.long, device=self.model.device)
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        self.mask, self.last = self.mask[index], self.last[index]
        self.rows = [self.rows[i] for i in selected]
        self.out = [self.out[i] for i in selected]
        self.n_prompt = [self.n_prompt[i] for i in selected]
        # Columns that are padding in every remaining row are dropped: attention then reads less.
        first = int(self.mask.any(dim=0).nonzero()[0]) if self.mask.numel() else 0
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
