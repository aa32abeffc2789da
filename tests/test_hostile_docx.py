"""Issue 17 finding 4: a .docx whose part expands to 300 MB is skipped as "too large" with bounded memory."""

import tracemalloc
import zipfile

import pytest

from bakeoff.rag.corpus import CorpusSpec, load_corpus, load_document
from bakeoff.rag.zipped import TooLargeError, read_docx_text

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx(path, body: str, extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "word/document.xml", f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>'
        )
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


def _bomb(path, member: str, size: int) -> None:
    """A zip whose ``member`` is ``size`` zero bytes, written in pieces so the test itself stays small."""
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(member, "w", force_zip64=True) as out,
    ):
        for _ in range(size // len(block)):
            out.write(block)


def test_a_300_mb_member_is_skipped_as_too_large_within_bounded_memory(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    _bomb(docs / "bomb.docx", "word/document.xml", 300 * (1 << 20))
    _docx(docs / "fine.docx", "<w:p><w:r><w:t>Renewal is automatic.</w:t></w:r></w:p>")
    assert (docs / "bomb.docx").stat().st_size < 1_000_000  # ~300 KB on disk
    tracemalloc.start()
    try:
        corpus = load_corpus(CorpusSpec(paths=["docs"]), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert corpus.files == ["docs/fine.docx"]
    [skipped] = corpus.skipped
    assert skipped.source == "docs/bomb.docx" and skipped.reason.startswith("too large")
    assert "300 MB" in skipped.reason or "315 MB" in skipped.reason
    assert peak < 20 * (1 << 20), f"peak {peak / 1e6:.1f} MB"


def test_the_limit_applies_to_each_text_part(tmp_path):
    path = tmp_path / "long.docx"
    _docx(path, "<w:p><w:r><w:t>" + "x" * 5000 + "</w:t></w:r></w:p>")
    with pytest.raises(TooLargeError, match="too large: word/document.xml"):
        read_docx_text(path, limit=1000)
    assert read_docx_text(path, limit=10_000) == "x" * 5000


def test_docx_text_keeps_headers_paragraphs_tabs_and_notes_but_not_images(tmp_path):
    path = tmp_path / "memo.docx"
    _docx(
        path,
        "<w:p><w:r><w:t>Fees</w:t><w:tab/><w:t>30 days.</w:t></w:r></w:p><w:p><w:r><w:t>Second.</w:t></w:r></w:p>",
        {
            "word/header1.xml": f"<w:hdr {W}><w:p><w:r><w:t>ACME header</w:t></w:r></w:p></w:hdr>".encode(),
            "word/footnotes.xml": f"<w:footnotes {W}><w:p><w:r><w:t>A note.</w:t></w:r></w:p></w:footnotes>".encode(),
            "word/media/big.png": b"\x89PNG" + b"\0" * 1000,
        },
    )
    text = read_docx_text(path)
    assert (
        text.index("ACME header")
        < text.index("Fees\t30 days.")
        < text.index("Second.")
        < text.index("A note.")
    )
    [doc] = load_document(path, "memo.docx")
    assert "Fees\t30 days.\n\nSecond." in doc.text


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"PK\x03\x04 not a zip", "unreadable DOCX"),
        (None, "no word/document.xml"),
        (b"<w:document", "malformed XML"),
    ],
)
def test_broken_docx_files_are_one_reason(tmp_path, data, reason):
    path = tmp_path / "b.docx"
    if data is None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("other.xml", "<x/>")
    elif data.startswith(b"PK"):
        path.write_bytes(data)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("word/document.xml", data)
    with pytest.raises(ValueError, match=reason):
        load_document(path, "b.docx")


def test_damaged_archives_found_by_the_fuzzer_are_one_reason(tmp_path):
    # tests/test_fuzz_inputs.py found these: a corrupt deflate stream (zlib.error) and a bogus header offset
    # (OSError while seeking) escaped as exceptions other than ValueError
    good = tmp_path / "good.docx"
    _docx(good, "<w:p><w:r><w:t>" + "renewal " * 50 + "</w:t></w:r></w:p>")
    data = bytearray(good.read_bytes())
    start = data.index(b"word/document.xml") + len("word/document.xml")
    data[start + 10 : start + 14] = b"\x00\xff\x00\xff"  # inside the compressed body
    bad = tmp_path / "bad.docx"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="unreadable DOCX|malformed XML"):
        load_document(bad, "bad.docx")
    data = bytearray(good.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 42 : central + 46] = (2**31 - 1).to_bytes(
        4, "little"
    )  # local header offset far past the end
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="unreadable DOCX"):
        load_document(bad, "bad.docx")
