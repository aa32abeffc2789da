"""Fuzzing the other two user inputs (recipes: tests/test_fuzz_recipes.py): question files and corpus documents.

Whatever the bytes, reading a question file gives questions or one :class:`~bakeoff.questions.DataError` that
names the file (and the line, for a bad line), and reading a corpus document gives text or a one-line reason it
was skipped (``ValueError``), never another exception, a hang or unbounded memory. The default suite runs a
short profile (well under 60 s); ``-m reliability`` runs the long one (also marked ``slow``, so the default
suite leaves it out).
"""

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpus import _tiny_pdf  # the one hand-built PDF the corpus tests use

from bakeoff.questions import DataError, load_questions
from bakeoff.rag.corpus import SUPPORTED_SUFFIXES, CorpusSpec, load_corpus, load_document

ROOT = Path(__file__).resolve().parent.parent
QUESTION_SEEDS = [
    line.encode()
    for name in ("contract-qa.jsonl", "reviews-eval.jsonl")
    for line in (ROOT / "data" / name).read_text(encoding="utf-8").splitlines(keepends=True)[:6]
]
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- question files -----------------------------------------------------------------------------------------
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["id", "question", "text", "reference", "answer", "label", "passage", "source", "x"]
            )
            | st.text(max_size=6),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=15,
)


@st.composite
def question_lines(draw) -> bytes:
    """A JSONL file: seed lines (mutated), random JSON values, hostile extremes and raw bytes."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["seed", "seed", "mutated", "json", "object", "extreme", "bytes"]))
        if kind == "seed":
            lines.append(draw(st.sampled_from(QUESTION_SEEDS)))
        elif kind == "mutated":
            line = bytearray(draw(st.sampled_from(QUESTION_SEEDS)))
            pos = draw(st.integers(0, len(line) - 1))
            op = draw(st.sampled_from(["cut", "insert", "replace"]))
            if op == "cut":
                del line[pos:]
            elif op == "insert":
                line[pos:pos] = draw(
                    st.sampled_from([b'"', b"{", b"}", b"\\", b"\n", b"\x00", b"\xff", b",", b"[]"])
                )
            else:
                line[pos : pos + 1] = draw(st.binary(min_size=1, max_size=3))
            lines.append(bytes(line))
        elif kind == "json":
            lines.append(json.dumps(draw(_json)).encode() + b"\n")
        elif kind == "object":
            row = {
                "id": draw(st.text(max_size=5) | st.integers()),
                "question": draw(_json),
                "reference": draw(_json),
            }
            lines.append(json.dumps(row).encode() + b"\n")
        elif kind == "extreme":
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            b'{"question": ' + b"[" * 50_000 + b"]" * 50_000 + b', "reference": "r"}\n',
                            b'{"question": "' + b"q" * 300_000 + b'", "reference": "r"}\n',
                            b"\xef\xbb\xbf" + QUESTION_SEEDS[0],
                            b'{"id": "q01", "question": "dup", "reference": "r"}\n',
                            b'{"question": "q", "reference": 1e999}\n',
                            b"\r\n",
                            b"   \n",
                        ]
                    )
                )
            )
        else:
            lines.append(draw(st.binary(max_size=30)))
    return b"".join(lines)


def _check_questions(tmp_path: Path, data: bytes, task: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(data)
    labels = ["positive", "neutral", "negative"] if task == "classification" else None
    try:
        questions = load_questions(path, task=task, labels=labels, notes=[])
    except DataError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message.strip(), message
        assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", message), message
    else:
        assert questions and len({q.id for q in questions}) == len(questions)
        assert all(isinstance(q.question, str) and q.question.strip() for q in questions)
        assert all(len(q.question) <= 20_000 for q in questions)


def _questions(tmp_path, data, task):
    _check_questions(tmp_path, data, task)


test_question_files_read_or_give_one_located_error = FAST(
    given(data=question_lines(), task=st.sampled_from(["qa", "classification"]))(_questions)
)
test_question_files_long = pytest.mark.slow(
    pytest.mark.reliability(
        LONG(given(data=question_lines(), task=st.sampled_from(["qa", "classification"]))(_questions))
    )
)


# -- corpus documents ---------------------------------------------------------------------------------------
def _docx(xml: bytes, extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", xml)
        for name, data in extra.items():
            zf.writestr(name, data)
    return buf.getvalue()


_text = st.text(max_size=80)
_markup = st.lists(
    st.sampled_from(
        [
            "<p>",
            "</p>",
            "<script>",
            "</script>",
            "<!--",
            "-->",
            "<![CDATA[",
            "&amp;",
            "&#0;",
            "<w:t>",
            "</w:t>",
            "<w:p>",
            "</w:p>",
            "<w:tab/>",
            "<!DOCTYPE x [<!ENTITY a 'aaaa'>]>",
            "&a;",
            "<passage>",
            "\x00",
            "\ufeff",
        ]
    )
    | _text,
    max_size=12,
).map("".join)


@st.composite
def documents(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([*SUPPORTED_SUFFIXES, ".bin"]))
    kind = draw(st.sampled_from(["valid", "mutated", "bytes"]))
    if suffix == ".pdf":
        data = _tiny_pdf(draw(st.text(alphabet="abc xyz()\\", max_size=30)))
    elif suffix == ".docx":
        body = draw(_markup).encode("utf-8", "surrogatepass")
        xml = f'<?xml version="1.0"?><w:document {W}><w:body><w:p><w:r><w:t>'.encode() + body
        xml += b"</w:t></w:r></w:p></w:body></w:document>" if draw(st.booleans()) else b""
        extra = draw(
            st.dictionaries(
                st.sampled_from(
                    ["word/header1.xml", "word/footnotes.xml", "word/media/x.png", "[Content_Types].xml"]
                ),
                st.binary(max_size=40),
                max_size=2,
            )
        )
        data = _docx(xml, extra)
    else:
        data = draw(_markup).encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), "replace")
    if kind == "mutated" and data:
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            data[pos : pos + draw(st.integers(0, 4))] = draw(st.binary(max_size=4))
        data = bytes(data)
    elif kind == "bytes":
        data = draw(st.binary(max_size=200))
    return suffix, data


def _documents(tmp_path, doc):
    suffix, data = doc
    path = tmp_path / f"doc{suffix}"
    path.write_bytes(data)
    try:
        docs = load_document(path, path.name)
    except ValueError as exc:  # the reason the corpus report gives for a skipped file: one line
        assert str(exc).strip() and "\n" not in str(exc), str(exc)
    else:
        assert docs and all(d.text.strip() for d in docs)
    # the whole corpus path (find, read, chunk) never raises for it: it is read or skipped with the reason
    corpus = load_corpus(CorpusSpec(paths=[path.name], chunk={"size": 64, "overlap": 8}), tmp_path)
    assert len(corpus.files) + len(corpus.skipped) <= 1
    assert all(0 <= c.start <= c.end for c in corpus.chunks)


test_corpus_documents_read_or_are_skipped_with_a_reason = FAST(given(doc=documents())(_documents))
test_corpus_documents_long = pytest.mark.slow(
    pytest.mark.reliability(LONG(given(doc=documents())(_documents)))
)


@pytest.mark.parametrize(
    "name, data",
    [("page.html", b"<![\x01CDATA["), ("page.htm", b"<p>ok</p><![\x00CDATA[")],
    ids=["html-rejected-by-the-parser", "html-rejected-after-text"],
)
def test_crashes_the_fuzzer_found_are_one_line_reasons(tmp_path, name, data):
    # bs4 raised ParserRejectedMarkup (not a ValueError) for these, which escaped the corpus reader
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_document(path, name)
    assert "\n" not in str(info.value)
    corpus = load_corpus(CorpusSpec(paths=[name]), tmp_path)
    assert [s.source for s in corpus.skipped] == [name]
