"""Reading evaluation sets and example files (JSONL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bakeoff.core import Question
from bakeoff.errors import BakeoffError

__all__ = ["MAX_QUESTION_CHARS", "DataError", "iter_records", "load_questions", "read_records"]

MAX_QUESTION_CHARS = 20_000
"""A question longer than this is cut to it (and reported): several times any supported model's context, and
a 5 MB question would otherwise stall its whole batch in tokenization for minutes."""

_QUESTION_KEYS = ("question", "text", "input", "instruction")
_REFERENCE_KEYS = ("reference", "answer", "label", "output")
_KNOWN_KEYS = {"id", "passage", "source", *_QUESTION_KEYS, *_REFERENCE_KEYS}


class DataError(BakeoffError):
    """A data file is malformed; the message names file and line."""


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one at a time (blank lines skipped; ``__line__`` is the line number).

    The file is read line by line, so a file larger than memory can be read in part (``eval.limit``).

    Raises:
        DataError: unreadable file, a line that is not a JSON object.
    """
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a JSONL file")
    try:
        handle = path.open(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is read, not rejected
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
                except RecursionError:
                    raise DataError(f"{path}:{lineno}: JSON nested too deeply to read") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: each line must be a JSON object")
                row["__line__"] = lineno
                yield row
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSONL file (see :func:`iter_records`).

    Raises:
        DataError: unreadable file, a line that is not a JSON object.
    """
    return list(iter_records(path))


def _pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    return None


def load_questions(
    path: Path,
    *,
    task: str,
    labels: list[str] | None = None,
    limit: int | None = None,
    notes: list[str] | None = None,
) -> list[Question]:
    """Load an evaluation set.

    Each line has an ``id`` (optional: the line number is used), a question (``question``, ``text`` or
    ``input``) and a reference (``reference``, ``answer``, ``label`` or ``output``); ``passage`` and
    ``source`` are kept for retrieval metrics, and every other string field (e.g. ``type``) in
    :attr:`~bakeoff.core.Question.fields`, for slicing scores. A question over :data:`MAX_QUESTION_CHARS` is
    cut to it, and ``notes`` (when given) gets one line per cut question.

    Raises:
        DataError: malformed lines, duplicate ids, labels outside the label set, an empty file.
    """
    questions: list[Question] = []
    seen: set[str] = set()
    for row in iter_records(path):  # lazily: with `limit`, only the lines needed are read
        where = f"{path}:{row['__line__']}"
        text, reference = _pick(row, _QUESTION_KEYS), _pick(row, _REFERENCE_KEYS)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: needs a non-empty 'question' (or 'text')")
        if not isinstance(reference, str | int | float):
            raise DataError(f"{where}: needs a 'reference' (or 'answer' / 'label')")
        qid = str(row.get("id", f"line{row['__line__']}"))
        if qid in seen:
            raise DataError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        for key in ("passage", "source"):  # compared with retrieved text when scoring: text or nothing
            if row.get(key) is not None and not isinstance(row[key], str):
                raise DataError(f"{where}: '{key}' must be text, got {type(row[key]).__name__}")
        reference = str(reference)
        if len(text) > MAX_QUESTION_CHARS:
            if notes is not None:
                notes.append(
                    f"{where}: question {qid!r} is {len(text):,} characters; cut to the first "
                    f"{MAX_QUESTION_CHARS:,}"
                )
            text = text[:MAX_QUESTION_CHARS]
        if task == "classification" and labels and reference not in labels:
            raise DataError(f"{where}: label {reference!r} is not one of {labels}")
        questions.append(
            Question(
                id=qid,
                question=text,
                reference=reference,
                passage=row.get("passage"),
                source=row.get("source"),
                fields={
                    k: v
                    for k, v in row.items()
                    if isinstance(v, str) and k not in _KNOWN_KEYS and not k.startswith("__")
                },
            )
        )
        if limit and len(questions) >= limit:
            break
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions
