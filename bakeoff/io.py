"""Writing files so that a crash never leaves half of one: atomic replaces, JSONL appends, torn-tail recovery.

Every writer in bakeoff goes through these (the run store, synthesized data, votes, training logs, the judge
cache, registrations, saved recipes). Whole files are written to a temporary name beside the target and
renamed over it, so a reader sees the old file or the new one; JSONL rows are appended in one write, flushed
and fsynced, so a crash loses at most a partial last line, which :func:`cut_torn_tail` removes before the next
append and :func:`read_jsonl` never returns. Leaf module: imports nothing from bakeoff.

Because every file goes through here, so does the one secret-redaction pass (:func:`redact`): whatever a
server replied (an error body that echoes the ``Authorization`` header, a judge's complaint) is written with
the values of secret-named environment variables (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``)
and bearer tokens replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "append_jsonl",
    "atomic_path",
    "cut_torn_tail",
    "dumps_jsonl",
    "read_jsonl",
    "redact",
    "write_json_atomic",
    "write_text_atomic",
]


REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
# A credential after Bearer/Basic or an Authorization header name. It must hold a digit and be 8+ characters:
# "bearer instruments" or a contract's "Authorization: The Supplier ..." is prose, not a key.
_TOKEN = r"(?=[A-Za-z0-9._~+/=:-]*\d)[A-Za-z0-9._~+/=:-]{8,}"
_AUTH = re.compile(rf"\b(Bearer|Basic)(\s+){_TOKEN}", re.IGNORECASE)
_HEADER = re.compile(rf"""(\bauthorization["']?\s*[:=]\s*["']?){_TOKEN}""", re.IGNORECASE)
_MIN_SECRET = 8  # shorter values ("1", "true") are settings, not secrets


def _environment_secrets() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET}
    # as they appear in text and inside JSON strings (escaped), longest first
    spelled = values | {json.dumps(v, ensure_ascii=False)[1:-1] for v in values}
    return sorted(spelled, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets replaced by ``[redacted]``: ``secrets``, the values of secret-named environment
    variables (``OPENAI_API_KEY``, ``HF_TOKEN``, ...) and ``Bearer``/``Basic`` credentials."""
    for value in [*sorted((s for s in secrets if s), key=len, reverse=True), *_environment_secrets()]:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _AUTH.sub(rf"\1\2{REDACTED}", text)
    return _HEADER.sub(rf"\1{REDACTED}", text)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write a file or a folder into; renamed over ``path`` when the block
    ends without an exception (an existing folder there is replaced), removed when it raises.

    The temporary name carries the process and thread, so concurrent writers never share one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (secrets redacted: :func:`redact`) to ``path`` through a temporary file and an atomic
    rename."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write(redact(text))
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (non-JSON values as ``str``) through a temporary file and an atomic rename."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    write_text_atomic(path, text + "\n" if indent is not None else text)


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as JSONL text, one object per line (secrets redacted: :func:`redact`)."""
    return redact("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def append_jsonl(target: Path | Any, rows: Iterable[dict[str, Any]], *, fsync: bool = True) -> None:
    """Append rows to a JSONL file (a path, or a file opened for appending) in one write, flushed to disk."""
    data = dumps_jsonl(rows)
    if not data:
        return
    if isinstance(target, str | os.PathLike):
        with Path(target).open("a", encoding="utf-8") as fh:
            _write_synced(fh, data, fsync)
    else:
        _write_synced(target, data, fsync)


def _write_synced(fh: Any, data: str, fsync: bool) -> None:
    fh.write(data)
    fh.flush()
    if fsync:
        os.fsync(fh.fileno())


def cut_torn_tail(path: Path) -> int:
    """Cut a partial last line (a crash mid-append) so that appending goes on from a clean line end.

    Returns:
        The number of bytes cut (0 when the file ends with a newline, is empty or does not exist).
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        return len(data) - keep


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, in order; a torn last line (no newline) and lines that are not JSON
    objects are left out. A missing file reads as no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn last line
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows
