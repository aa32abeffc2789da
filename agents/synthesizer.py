"""The ``synthesizer`` helper: writes question/answer and instruction records from document chunks, and labels
unlabelled texts, with any generator — and checks every reply before it becomes data.

It is a helper, not a candidate: it does not answer evaluation questions, so it is not registered in the
``bakeoff.agents`` entry-point group (a recipe could otherwise name it as a candidate). ``bakeoff synthesize``
(:mod:`bakeoff.synth.run`) plans the work, fans it out on Dask and writes the files; everything here is plain
Python over a :class:`~bakeoff.models.generators.Generator`, testable without Dask.

Every reply goes through the same checks; a rejected reply is counted by its reason:

``generation_error``
    the backend failed (the unit is retried on the next run).
``malformed_json``
    no JSON object could be read from the reply (often: cut off at ``max_new_tokens``).
``empty_field``
    the object lacks the question or the answer, or one is blank.
``unsupported``
    the answer is not grounded in its chunk: fewer than ``min_support`` (default 0.6) of the answer's
    content words occur in the chunk, or the answer states a number the chunk does not contain.
``echo``
    the question (or instruction) and the answer are the same text once normalised, or the question contains
    the whole answer — a copied sentence, not a question.
``duplicate``
    the normalised question (lower case, punctuation and extra spaces removed) was already accepted.
``unparseable_label``
    labelling: the reply names none of the labels.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bakeoff.agents.prompts import CLASSIFY_JSON_SYSTEM, parse_label
from bakeoff.core import GenerationSettings

if TYPE_CHECKING:
    from bakeoff.core import Generation
    from bakeoff.models.generators import Generator

__all__ = [
    "DEFAULT_MIN_SUPPORT",
    "Deduplicator",
    "Kind",
    "LabelTask",
    "Labeller",
    "REASONS",
    "Rejection",
    "ChunkTask",
    "Synthesizer",
    "UnitResult",
    "check_label",
    "check_reply",
    "focus_sentences",
    "normalise",
    "parse_json_object",
    "support",
    "ungrounded_numbers",
]

Kind = Literal["qa", "instruction"]
REASONS = (
    "generation_error",
    "malformed_json",
    "empty_field",
    "unsupported",
    "echo",
    "duplicate",
    "unparseable_label",
)
DEFAULT_MIN_SUPPORT = 0.6

# -- prompts ------------------------------------------------------------------------------------------------
# One worked example as chat turns (small instruct models copy the format of a previous assistant turn far
# more reliably than they follow a description of it). Each request points at one sentence of the chunk, so
# the N records of a chunk ask about different facts even with greedy decoding.
_EXAMPLE_TEXT = (
    "5.2 The Supplier shall deliver the monthly report within ten Business Days after the end of each month. "
    "Reports are sent by email to the Customer's contract manager."
)
_EXAMPLE_FOCUS = (
    "5.2 The Supplier shall deliver the monthly report within ten Business Days after the end of each month."
)
_PROMPTS: dict[str, dict[str, str]] = {
    "qa": {
        "system": 'You write quiz questions about a text. Reply with JSON only: {"question": "...", '
        '"answer": "..."}. The answer is short and copied from the text.',
        "focus": 'Text:\n{text}\n\nWrite one question about this part of the text: "{focus}"',
        "whole": "Text:\n{text}\n\nWrite one question about the text and its short answer.",
        "example": json.dumps(
            {
                "question": "When must the Supplier deliver the monthly report?",
                "answer": "Within ten Business Days after the end of each month.",
            }
        ),
    },
    "instruction": {
        "system": "You write tasks that a user could ask an assistant about a text, with the correct response. "
        'Reply with JSON only: {"instruction": "...", "response": "..."}. The response uses the words of the '
        "text.",
        "focus": 'Text:\n{text}\n\nWrite one instruction about this part of the text: "{focus}"',
        "whole": "Text:\n{text}\n\nWrite one instruction about the text and its response.",
        "example": json.dumps(
            {
                "instruction": "Explain the deadline for the monthly report.",
                "response": "The Supplier must deliver the monthly report within ten Business Days after the "
                "end of each month.",
            }
        ),
    },
}
_QUESTION_KEYS = ("question", "instruction")
_ANSWER_KEYS = ("answer", "response", "output")


# -- work units and results ---------------------------------------------------------------------------------
@dataclass
class ChunkTask:
    """One unit of generation: ``n`` records of one ``kind`` from one chunk."""

    key: str  # resume key: chunk id + kind + per_chunk + generator
    chunk_id: str
    source: str
    text: str
    kind: Kind
    n: int
    seed: int = 0


@dataclass
class LabelTask:
    """One unit of labelling: one text."""

    key: str  # resume key: text + labels + prompt + generator
    id: str
    text: str
    gold: str | None = None  # a label the input already had (reported as agreement, never used)


@dataclass
class Rejection:
    """Why one reply did not become a record."""

    reason: str
    detail: str = ""
    reply: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}; known: {', '.join(REASONS)}")


@dataclass
class UnitResult:
    """What one unit produced: candidate records (not yet checked for duplicates) and rejections."""

    key: str
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    generated: int = 0
    failed: bool = False  # a generation error: the unit is not done and is retried on the next run


# -- checks -------------------------------------------------------------------------------------------------
_STOPWORD_TEXT = """a an and are as at be been by can could do does for from had has have he her his how i if in into is it
    its may must no not of on or our shall should so such than that the their them then there these they this
    those to under upon us was we were what when where which while who whom whose why will with within would
    you your"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (the duplicate key)."""
    return " ".join(_WORD.findall(text.lower()))


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _content_words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def support(answer: str, passage: str) -> float:
    """The share of the answer's content words (stop words dropped, plural ``s`` ignored) found in the passage;
    0.0 for an answer without content words."""
    words = _content_words(answer)
    if not words:
        return 0.0
    vocab = set(_content_words(passage))
    return sum(w in vocab for w in words) / len(words)


def ungrounded_numbers(answer: str, passage: str) -> list[str]:
    """Numbers the answer states that the passage does not contain (thousands separators ignored)."""
    known = {n.replace(",", "") for n in _NUMBER.findall(passage)}
    return [n for n in _NUMBER.findall(answer) if n.replace(",", "") not in known]


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a reply (code fences and text around it allowed), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _field(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return ""


def check_reply(
    reply: str, passage: str, *, min_support: float = DEFAULT_MIN_SUPPORT, truncated: bool = False
) -> tuple[str, str] | Rejection:
    """Read and check one generated reply against its chunk.

    Args:
        reply: the model's text.
        passage: the chunk it was written from.
        min_support: least share of the answer's content words that must occur in the chunk.
        truncated: the reply stopped at ``max_new_tokens`` (named in the rejection detail).

    Returns:
        ``(question, answer)``, or the :class:`Rejection` (duplicates are checked later, across units).
    """
    obj = parse_json_object(reply)
    if obj is None:
        detail = "cut off at max_new_tokens" if truncated else "no JSON object in the reply"
        return Rejection("malformed_json", detail, reply)
    question, answer = _field(obj, _QUESTION_KEYS), _field(obj, _ANSWER_KEYS)
    if not question or not answer:
        missing = [name for name, value in (("question", question), ("answer", answer)) if not value]
        return Rejection("empty_field", f"missing or blank: {', '.join(missing)}", reply)
    q_norm, a_norm = normalise(question), normalise(answer)
    if q_norm == a_norm or (len(a_norm.split()) >= 3 and f" {a_norm} " in f" {q_norm} "):
        return Rejection("echo", "the question repeats the answer", reply)
    numbers = ungrounded_numbers(answer, passage)
    if numbers:
        return Rejection("unsupported", f"numbers not in the chunk: {', '.join(numbers)}", reply)
    score = support(answer, passage)
    if score < min_support:
        return Rejection("unsupported", f"support {score:.2f} < {min_support}", reply)
    return question, answer


def check_label(reply: str, labels: Sequence[str]) -> str | Rejection:
    """The label a reply names (``{"label": ...}`` first, then the earliest label word), or a rejection."""
    label = parse_label(reply, labels, json_mode=True)
    if label is None:
        return Rejection("unparseable_label", f"names none of {', '.join(labels)}", reply)
    return label


class Deduplicator:
    """Remembers normalised texts; :meth:`admit` is True the first time a text is seen."""

    def __init__(self, texts: Sequence[str] = ()) -> None:
        self._seen = {normalise(t) for t in texts}

    def admit(self, text: str) -> bool:
        key = normalise(text)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


# -- sentences ----------------------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def focus_sentences(text: str, n: int, seed: str | int) -> list[str | None]:
    """``n`` different sentences of a chunk to ask about, in a seeded order (None: ask about the whole chunk,
    when the chunk has fewer usable sentences than ``n``). Headings and fragments under five words are skipped."""
    sentences = [
        s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= 5 and not s.lstrip().startswith("#")
    ]
    random.Random(str(seed)).shuffle(sentences)
    picked: list[str | None] = list(sentences[:n])
    picked += [None] * (n - len(picked))
    return picked


# -- the helpers --------------------------------------------------------------------------------------------
def _failed_unit(key: str, outs: Sequence[Generation]) -> UnitResult:
    errors = [o.error for o in outs if o.error]
    return UnitResult(
        key,
        rejected=[Rejection("generation_error", e or "") for e in errors],
        generated=len(outs),
        failed=True,
    )


class Synthesizer:
    """Writes question/answer or instruction records from chunks with one generator.

    Args:
        generator: any backend (embedded, hf, ollama, openai-compatible).
        generation: decoding settings (greedy by default: the focus sentence, not sampling, makes the records
            of one chunk differ).
        min_support: grounding threshold, see :func:`check_reply`.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        generation: GenerationSettings | None = None,
        min_support: float = DEFAULT_MIN_SUPPORT,
    ) -> None:
        self.generator = generator
        self.generation = generation or GenerationSettings(max_new_tokens=96)
        self.min_support = min_support

    @staticmethod
    def conversations(task: ChunkTask) -> list[list[dict[str, str]]]:
        """The chat messages for each of the task's ``n`` records."""
        prompt = _PROMPTS[task.kind]
        example = prompt["focus"].format(text=_EXAMPLE_TEXT, focus=_EXAMPLE_FOCUS)
        convos = []
        for focus in focus_sentences(task.text, task.n, f"{task.seed}:{task.chunk_id}:{task.kind}"):
            user = (
                prompt["focus"].format(text=task.text, focus=focus)
                if focus
                else prompt["whole"].format(text=task.text)
            )
            convos.append(
                [
                    {"role": "system", "content": prompt["system"]},
                    {"role": "user", "content": example},
                    {"role": "assistant", "content": prompt["example"]},
                    {"role": "user", "content": user},
                ]
            )
        return convos

    def run(self, tasks: Sequence[ChunkTask]) -> list[UnitResult]:
        """Generate and check every task's records in one batched call (duplicates are left to the caller)."""
        convos, owner = [], []
        for i, task in enumerate(tasks):
            for convo in self.conversations(task):
                convos.append(convo)
                owner.append(i)
        outs = self.generator.generate(convos, self.generation) if convos else []
        by_task: list[list[Generation]] = [[] for _ in tasks]
        for i, out in zip(owner, outs, strict=True):
            by_task[i].append(out)
        results = []
        for task, task_outs in zip(tasks, by_task, strict=True):
            if any(o.error for o in task_outs):
                results.append(_failed_unit(task.key, task_outs))
                continue
            result = UnitResult(task.key, generated=len(task_outs))
            for j, out in enumerate(task_outs):
                checked = check_reply(
                    out.text, task.text, min_support=self.min_support, truncated=out.truncated
                )
                if isinstance(checked, Rejection):
                    result.rejected.append(checked)
                    continue
                question, answer = checked
                result.records.append(
                    {
                        "id": f"{task.key[:16]}-{j}",
                        "kind": task.kind,
                        "question": question,
                        "answer": answer,
                        "chunk_id": task.chunk_id,
                        "source": task.source,
                        "passage": task.text,
                        "generator": self.generator.name,
                        "unit": task.key,
                    }
                )
            results.append(result)
        return results


class Labeller:
    """Classifies texts into a label set with a few-shot prompt (examples as chat turns, JSON reply).

    Args:
        generator: any backend.
        labels: the label set.
        examples: worked ``(text, label)`` pairs shown before each text.
        generation: decoding settings (greedy, short replies by default).
    """

    def __init__(
        self,
        generator: Generator,
        *,
        labels: Sequence[str],
        examples: Sequence[tuple[str, str]] = (),
        generation: GenerationSettings | None = None,
    ) -> None:
        self.generator = generator
        self.labels = list(labels)
        self.examples = list(examples)
        self.generation = generation or GenerationSettings(max_new_tokens=16)

    def conversation(self, text: str) -> list[dict[str, str]]:
        system = CLASSIFY_JSON_SYSTEM.replace("{labels}", ", ".join(self.labels)).replace("{{", "{")
        system = system.replace("}}", "}")
        messages = [{"role": "system", "content": system}]
        for ex_text, ex_label in self.examples:
            messages.append({"role": "user", "content": ex_text})
            messages.append({"role": "assistant", "content": json.dumps({"label": ex_label})})
        messages.append({"role": "user", "content": text})
        return messages

    def run(self, tasks: Sequence[LabelTask]) -> list[UnitResult]:
        """Label every task's text in one batched call (duplicates are left to the caller)."""
        outs = (
            self.generator.generate([self.conversation(t.text) for t in tasks], self.generation)
            if tasks
            else []
        )
        results = []
        for task, out in zip(tasks, outs, strict=True):
            if out.error:
                results.append(_failed_unit(task.key, [out]))
                continue
            result = UnitResult(task.key, generated=1)
            checked = check_label(out.text, self.labels)
            if isinstance(checked, Rejection):
                result.rejected.append(checked)
            else:
                record = {"id": task.id, "kind": "label", "text": task.text, "label": checked}
                if task.gold is not None:
                    record["gold"] = task.gold
                record.update(generator=self.generator.name, unit=task.key)
                result.records.append(record)
            results.append(result)
        return results
