"""Greedy decoding with a batch that is kept full: finished rows leave, waiting prompts join.

``model.generate`` on a batch runs until its longest answer ends; every row that finished earlier keeps being
computed. Answers to evaluation questions differ a lot in length (most end in 20-40 tokens, a few run to
``max_new_tokens``), so on a CPU — where a decoding step costs about as much as the rows in it — most of a
batch's time went to rows that were already done. Here each step decodes only unfinished rows, and when a
quarter of the batch is free the next prompts (shortest first) are prefilled and merged into the running
key/value cache, left-padded to its length. Positions are given per row, so every row decodes exactly what it
would alone (up to float rounding, as in any padded batch).

Only the plain growing cache (``DynamicCache`` of ``DynamicLayer``) is supported; anything else raises
:class:`Unsupported` before any token is generated and the caller falls back to ``model.generate``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Finished", "Unsupported", "greedy_continuous"]


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


def _left_pad(tensor, width: int, dim: int):
    import torch

    if width == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


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

    device = model.device
    stop_ids = set(stop_ids)
    pending = deque(range(len(prompts)))
    rows: list[int] = []  # prompt index of each active row
    out: list[list[int]] = []  # tokens generated so far, per active row
    n_prompt: list[int] = []
    cache = layers = None
    mask = last = None  # attention mask [rows, length]; last generated token per row (not yet fed)
    refill_at = max(1, batch_size // 4)

    def keep(selected: list[int]) -> None:
        nonlocal mask, last, rows, out, n_prompt
        index = torch.tensor(selected, dtype=torch.long, device=device)
        for layer in layers:
            layer.keys, layer.values = layer.keys[index], layer.values[index]
        mask, last = mask[index], last[index]
        rows = [rows[i] for i in selected]
        out = [out[i] for i in selected]
        n_prompt = [n_prompt[i] for i in selected]
        # Columns that are padding in every remaining row are dropped: attention then reads less.
        first = int(mask.any(dim=0).nonzero()[0]) if mask.numel() else 0
        if first:
            mask = mask[:, first:]
            for layer in layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def finish(done: list[int]) -> None:
        for i in done:
            tokens = out[i]
            on_done(Finished(rows[i], tokens, n_prompt[i], bool(tokens) and tokens[-1] in stop_ids))
        if done:
            gone = set(done)
            keep([i for i in range(len(rows)) if i not in gone])

    with torch.inference_mode():
        while pending or rows:
            before_step()
            free = batch_size - len(rows)
            if pending and (not rows or free >= refill_at):
                take = [pending.popleft() for _ in range(min(free, len(pending)))]
                enc = tokenizer(
                    [prompts[i] for i in take],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=budget,
                    add_special_tokens=False,
                ).to(device)
                new_mask = enc["attention_mask"]
                position = (new_mask.cumsum(-1) - 1).clamp(min=0)
                res = model(
                    input_ids=enc["input_ids"],
                    attention_mask=new_mask,
                    position_ids=position,
                    use_cache=True,
                    logits_to_keep=1,
                )
                new_layers = _layers(res.past_key_values)
                first_tokens = res.logits[:, -1].argmax(-1)
                if not rows:  # the first prompts, or every earlier row has finished
                    cache, layers = res.past_key_values, new_layers
                    mask, last = new_mask, first_tokens
                else:
                    width = max(mask.shape[1], new_mask.shape[1])
                    for old, new in zip(layers, new_layers, strict=True):
                        old.keys = torch.cat(
                            [
                                _left_pad(old.keys, width - mask.shape[1], 2),
                                _left_pad(new.keys, width - new_mask.shape[1], 2),
                            ]
                        )
                        old.values = torch.cat(
                            [
                                _left_pad(old.values, width - mask.shape[1], 2),
                                _left_pad(new.values, width - new_mask.shape[1], 2),
                            ]
                        )
                    mask = torch.cat(
                        [
                            _left_pad(mask, width - mask.shape[1], 1),
                            _left_pad(new_mask, width - new_mask.shape[1], 1),
                        ]
                    )
                    last = torch.cat([last, first_tokens])
                rows += take
                firsts = first_tokens.tolist()
                out += [[t] for t in firsts]
                n_prompt += new_mask.sum(-1).tolist()
                start = len(rows) - len(take)
                finish([start + j for j, t in enumerate(firsts) if t in stop_ids or max_new_tokens <= 1])
                continue
            # One decoding step for every active row.
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            position = mask.sum(-1, keepdim=True) - 1
            res = model(
                input_ids=last[:, None],
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            )
            last = res.logits[:, -1].argmax(-1)
            done = []
            for i, t in enumerate(last.tolist()):
                out[i].append(t)
                if t in stop_ids or len(out[i]) >= max_new_tokens:
                    done.append(i)
            finish(done)
