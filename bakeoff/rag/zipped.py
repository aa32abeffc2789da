"""Bounded reading of zip-based documents (``.docx``): a small file must not be able to expand into gigabytes.

A zip member's declared size is checked before it is opened, and its bytes are then streamed through an
incremental XML parser that keeps no more than one paragraph's elements, counting what comes out, so neither
a member that lies about its size nor a deeply compressed one (a few hundred KB of zeros expanding to
hundreds of MB) can raise memory beyond a few MB. Only the text parts are read (body, headers, footers,
foot- and endnotes); images and other members are never decompressed.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path
from xml.etree.ElementTree import ParseError, XMLPullParser

__all__ = ["MAX_MEMBER_BYTES", "TooLargeError", "read_docx_text"]

MAX_MEMBER_BYTES = 64 * 1024 * 1024
"""The most one text part of a zip-based document may expand to (a 1000-page .docx body is ~20 MB)."""

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_PARTS = re.compile(r"word/(header\d*|document|footer\d*|footnotes|endnotes)\.xml")
_ORDER = {"header": 0, "document": 1, "footnotes": 2, "endnotes": 3, "footer": 4}
_READ = 1 << 16


class TooLargeError(ValueError):
    """A member of a zip-based document expands beyond :data:`MAX_MEMBER_BYTES`."""


def _text_parts(names: list[str]) -> list[str]:
    parts = [n for n in names if _PARTS.fullmatch(n)]
    return sorted(parts, key=lambda n: (_ORDER[re.sub(r"\d+$", "", n[5:-4])], n))


def _member_text(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> str:
    if info.file_size > limit:
        raise TooLargeError(
            f"too large: {info.filename} expands to {info.file_size / 1e6:.0f} MB (limit {limit / 1e6:.0f} MB)"
        )
    parser = XMLPullParser(events=("start", "end"))
    out: list[str] = []
    read = 0
    with zf.open(info) as member:
        while chunk := member.read(_READ):
            read += len(chunk)
            if read > limit:  # the declared size lied
                raise TooLargeError(f"too large: {info.filename} expands beyond {limit / 1e6:.0f} MB")
            parser.feed(chunk)
            _drain(parser, out)
    parser.close()
    _drain(parser, out)
    return "".join(out)


def _drain(parser: XMLPullParser, out: list[str]) -> None:
    # The same text docx2txt gives: runs' text, tabs, breaks, a blank line after each paragraph.
    for event, elem in parser.read_events():
        if event != "end":
            continue
        tag = elem.tag
        if tag == f"{_W}t":
            out.append(elem.text or "")
        elif tag == f"{_W}tab":
            out.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            out.append("\n")
        elif tag == f"{_W}p":
            out.append("\n\n")
            elem.clear()  # a finished paragraph's elements are not kept
        elif tag == f"{_W}body":
            elem.clear()


def read_docx_text(path: Path, *, limit: int = MAX_MEMBER_BYTES) -> str:
    """The text of a ``.docx`` (headers, body, notes, footers), reading at most ``limit`` bytes per part.

    Raises:
        TooLargeError: a text part expands beyond ``limit`` (the message starts "too large").
        ValueError: not a zip, no ``word/document.xml``, or malformed XML.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            parts = _text_parts(zf.namelist())
            if "word/document.xml" not in parts:
                raise ValueError("unreadable DOCX (no word/document.xml)")
            return "".join(_member_text(zf, zf.getinfo(name), limit) for name in parts).strip()
    # a damaged archive fails in many ways (found by tests/test_fuzz_inputs.py: zlib.error on a corrupt
    # deflate stream, OSError seeking to a bogus header offset); encrypted members raise RuntimeError
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        zlib.error,
        OSError,
        RuntimeError,
        struct.error,
    ) as exc:
        raise ValueError(f"unreadable DOCX ({type(exc).__name__}: {exc})") from None
    except ParseError as exc:
        raise ValueError(f"unreadable DOCX (malformed XML: {exc})") from None
