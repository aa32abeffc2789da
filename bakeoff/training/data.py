"""Training examples: read, rendered into TRL's dataset forms, split, and hashed.

Instruct examples become *conversational prompt-completion* records (``prompt``: system + user turns,
``completion``: the assistant's answer), so TRL renders them with the tokenizer's chat template and, by
default, computes the loss on the answer only. The Alpaca prompt is applied the same way, as a chat template
(:data:`ALPACA_CHAT_TEMPLATE`) that the adapter carries, so answering renders questions exactly as training
did. Causal examples are the corpus chunks as plain ``text``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakeoff.questions import DataError, read_records
from bakeoff.training.config import DataSettings

__all__ = ["ALPACA_CHAT_TEMPLATE", "TrainingData", "build_training_data", "split_sizes"]

# The Alpaca prompt (Taori et al., 2023) as a chat template: a system message replaces the preamble, user turns
# are instructions, assistant turns are responses ended by the end-of-sequence token.
ALPACA_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}"
    "{% set loop_messages = messages[1:] %}{% else %}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\\n\\n' }}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)


@dataclass
class TrainingData:
    """The three splits in TRL's record forms, and a content hash of all of them."""

    kind: str
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]
    source: str  # where the examples came from, for the model card
    notes: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """sha256 of the rendered records of every split (what training actually sees)."""
        h = hashlib.sha256()
        for name, rows in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            h.update(name.encode())
            for row in rows:
                h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                h.update(b"\n")
        return h.hexdigest()


def _text(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise DataError(f"{where}: needs a non-empty string '{key}'")
    return value


def _instruct_record(row: dict[str, Any], where: str, system: str | None, alpaca: bool) -> dict[str, Any]:
    head = [{"role": "system", "content": system}] if system else []
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
        for j, msg in enumerate(messages):
            if (
                not isinstance(msg, dict)
                or msg.get("role") not in ("system", "user", "assistant")
                or not isinstance(msg.get("content"), str)
            ):
                raise DataError(
                    f"{where}: messages[{j}] must be {{role: system|user|assistant, content: string}}"
                )
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must be the assistant's (it is what is trained)")
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
        if not any(m["role"] == "user" for m in prompt):
            raise DataError(f"{where}: 'messages' needs a user turn before the assistant's")
        if prompt[0]["role"] != "system":
            prompt = head + prompt
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": messages[-1]["content"]}]}
    if "instruction" in row or "output" in row:
        instruction = _text(row, "instruction", where)
        extra = _text(row, "input", where, required=False).strip()
        output = _text(row, "output", where)
        if extra:
            user = f"{instruction}\n\n### Input:\n{extra}" if alpaca else f"{instruction}\n\n{extra}"
        else:
            user = instruction
        return {
            "prompt": [*head, {"role": "user", "content": user}],
            "completion": [{"role": "assistant", "content": output}],
        }
    raise DataError(
        f"{where}: an example needs 'instruction' and 'output' (Alpaca form) or 'messages' (chat form); "
        f"found keys {sorted(k for k in row if k != '__line__')}"
    )


def read_instruct(path: Path, system: str | None, *, alpaca: bool = False) -> list[dict[str, Any]]:
    """Instruct examples of a JSONL file as prompt-completion records (``alpaca``: an Alpaca ``input`` goes
    under its own ``### Input:`` heading).

    Raises:
        DataError: unreadable file, a malformed example (file:line says which), no examples.
    """
    rows = read_records(path)
    if not rows:
        raise DataError(f"{path}: no examples")
    return [_instruct_record(row, f"{path}:{row['__line__']}", system, alpaca) for row in rows]


def split_sizes(n: int, validation: float, test: float) -> tuple[int, int, int]:
    """Train/validation/test sizes for ``n`` examples: each held-out split gets at least one example when its
    fraction is positive, and at least one example is left to train on.

    Raises:
        DataError: too few examples for the requested split.
    """
    n_val = max(1, round(validation * n)) if validation > 0 else 0
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_val - n_test < 1:
        raise DataError(
            f"{n} example(s) cannot be split into train/validation/test with validation={validation}, "
            f"test={test}; add examples or lower the fractions"
        )
    return n - n_val - n_test, n_val, n_test


def build_training_data(
    spec: DataSettings,
    *,
    system: str | None,
    seed: int,
    chunks: Sequence[str] | None = None,
    path: Path | None = None,
) -> TrainingData:
    """Read and split the examples a ``data:`` block names.

    Args:
        spec: the candidate's ``train.data`` block.
        system: system prompt put before every instruct example (None: the chat template's default).
        seed: shuffles the examples before they are split.
        chunks: the corpus chunk texts (``kind: causal``).
        path: the file ``spec.path`` names, resolved by the caller when it is ``{synthesized: JOB}``
            (:func:`bakeoff.synth.outputs.resolve_data_path`); default ``spec.path``.

    Raises:
        DataError: unreadable or malformed data, or too few examples for the split.
    """
    notes: list[str] = []
    if spec.kind == "causal":
        if not chunks:
            raise DataError("kind: causal found no corpus chunks to train on (is the corpus empty?)")
        records = [{"text": text} for text in chunks]
        source = f"{len(records)} corpus chunks"
        default_test = 0.0
    else:
        assert spec.path is not None  # the settings validator guarantees it
        alpaca = spec.template == "alpaca"
        if isinstance(spec.path, Path):
            records = read_instruct(path or spec.path, system, alpaca=alpaca)
        else:  # {synthesized: JOB}: the job's question/answer records, as Alpaca examples
            from bakeoff.synth.outputs import load_synthesized

            if path is None:
                raise DataError(
                    f"{spec.path}: resolve the job's output file first (bakeoff.synth.outputs.resolve_data_path)"
                )
            rows = load_synthesized(path, form="alpaca")
            if not rows:
                raise DataError(f"{spec.path}: {path} has no records; run `bakeoff synthesize RECIPE`")
            records = [_instruct_record(row, f"{path}:{i}", system, alpaca) for i, row in enumerate(rows, 1)]
        source = str(spec.path) if isinstance(spec.path, Path) else f"{spec.path} ({path})"
        default_test = 0.1 if len(records) >= 20 else 0.0
    if spec.limit is not None and spec.limit < len(records):
        notes.append(f"data.limit: using the first {spec.limit} of {len(records)} examples")
        records = records[: spec.limit]

    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    shuffled = [records[i] for i in order]
    test_frac = default_test if spec.test is None else spec.test
    if isinstance(spec.validation, Path):
        validation = read_instruct(spec.validation, system, alpaca=spec.template == "alpaca")
        n_train, _, n_test = split_sizes(len(shuffled), 0.0, test_frac)
        train, test = shuffled[:n_train], shuffled[n_train:]
        source += f" (validation: {spec.validation})"
    else:
        val_frac = 0.1 if spec.validation is None else float(spec.validation)
        n_train, n_val, n_test = split_sizes(len(shuffled), val_frac, test_frac)
        train = shuffled[:n_train]
        validation = shuffled[n_train : n_train + n_val]
        test = shuffled[n_train + n_val :]
    return TrainingData(spec.kind, train, validation, test, source, notes)
