import zipfile
from pathlib import Path

import pytest

from bakeoff.rag.corpus import ChunkSpec, CorpusSpec, chunk_documents, find_files, load_corpus, load_document

ROOT = Path(__file__).resolve().parent.parent


def test_sample_contract_chunks_with_offsets_and_stable_ids():
    spec = CorpusSpec(paths=["data/contract"], chunk=ChunkSpec(size=512, overlap=64))
    a = load_corpus(spec, ROOT)
    b = load_corpus(spec, ROOT)
    assert a.summary()["documents"] == 3 and a.skipped == []
    assert len(a.chunks) > 30
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert len({c.id for c in a.chunks}) == len(a.chunks)
    texts = {d.source: d.text for d in a.documents}
    for chunk in a.chunks:
        assert len(chunk.text) <= 512
        assert texts[chunk.source][chunk.start : chunk.end] == chunk.text  # offsets point at the text


def test_editing_one_file_changes_only_its_chunks(tmp_path):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(" ".join(f"{name} sentence number {i}." for i in range(200)))
    spec = CorpusSpec(paths=["*.txt"], chunk=ChunkSpec(size=200, overlap=20))
    before = load_corpus(spec, tmp_path)
    (tmp_path / "b.txt").write_text("completely new text. " * 50)
    after = load_corpus(spec, tmp_path)

    def ids(c, src):
        return {ch.id for ch in c.chunks if ch.source == src}

    assert ids(before, "a.txt") == ids(after, "a.txt")
    assert not ids(before, "b.txt") & ids(after, "b.txt")


def test_bad_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "good.md").write_text("# Title\n\nThe notice period is thirty days.")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00" * 100)
    (tmp_path / "broken.pdf").write_bytes(
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj <<"
    )
    (tmp_path / "latin.txt").write_bytes("Caf\xe9 cr\xe8me: the fee is \xa3500.".encode("latin-1"))
    (tmp_path / "page.html").write_text(
        "<html><script>alert('x')</script><body><p>Visible fact.</p></body></html>"
    )
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    corpus = load_corpus(CorpusSpec(paths=["."]), tmp_path)
    skipped = {s.source: s.reason for s in corpus.skipped}
    assert skipped["empty.txt"] == "empty file"
    assert "binary" in skipped["binary.txt"]
    assert "PDF" in skipped["broken.pdf"]
    assert "DOCX" in skipped["broken.docx"]
    assert sorted(corpus.files) == ["good.md", "latin.txt", "page.html"]
    text = {d.source: d.text for d in corpus.documents}
    assert "Café crème" in text["latin.txt"] and "£500" in text["latin.txt"]
    assert "alert" not in text["page.html"] and "Visible fact." in text["page.html"]
    assert any("latin.txt" in n and "decoded as" in n for n in corpus.notes)


def test_real_docx_and_pdf(tmp_path):
    docx = tmp_path / "memo.docx"
    with zipfile.ZipFile(docx, "w") as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        zf.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Renewal is automatic.</w:t></w:r></w:p></w:body></w:document>',
        )
    [doc] = load_document(docx, "memo.docx")
    assert "Renewal is automatic." in doc.text
    pdf = tmp_path / "one.pdf"
    pdf.write_bytes(_tiny_pdf("Invoices are due in 30 days."))
    [page] = load_document(pdf, "one.pdf")
    assert page.page == 1 and "Invoices are due in 30 days." in page.text


def _tiny_pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def test_globs_and_excludes(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    for p in ("docs/a.md", "docs/sub/b.md", "docs/sub/c.txt", "docs/skip.md"):
        (tmp_path / p).write_text("text")
    spec = CorpusSpec(paths=["docs/**/*.md", "docs/sub/c.txt"], exclude=["docs/skip.md"])
    names = [p.relative_to(tmp_path).as_posix() for p in find_files(spec, tmp_path)]
    assert names == ["docs/a.md", "docs/sub/b.md", "docs/sub/c.txt"]


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValueError, match="must be smaller"):
        ChunkSpec(size=100, overlap=100)


def test_token_chunks_fit_the_embedding_tokenizer():
    from transformers import AutoTokenizer

    from bakeoff.models.embeddings import embedded_embedding_path

    tok = AutoTokenizer.from_pretrained(embedded_embedding_path("all-minilm-l6-v2"))
    docs = load_corpus(CorpusSpec(paths=["data/contract/annex-a-service-levels.md"]), ROOT).documents
    chunks = chunk_documents(docs, ChunkSpec(size=128, overlap=16, unit="tokens"), tok)
    assert len(chunks) > 3
    assert max(len(tok(c.text, add_special_tokens=False)["input_ids"]) for c in chunks) <= 128


def test_corpus_paths_may_not_escape_the_project(tmp_path, monkeypatch):
    from bakeoff.recipe.load import RecipeError, load_recipe

    monkeypatch.delenv("BAKEOFF_ALLOW_OUTSIDE")
    project = tmp_path / "p"
    (project / "docs").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "qa.jsonl").write_text('{"id": "1", "question": "q", "reference": "r"}\n')
    outside = tmp_path / "private.md"
    outside.write_text("secret salary table")
    (project / "docs" / "leak.md").symlink_to(outside)
    recipe = project / "r.yaml"
    recipe.write_text(
        "name: x\neval: {questions: qa.jsonl}\ncorpus:\n  paths: ['../*.md']\n"
        "candidates: [{name: z, agent: fewshot}]\n"
    )
    with pytest.raises(RecipeError, match=r"r.yaml:4:\d+: corpus.paths: .*outside the project root"):
        load_recipe(recipe)
    # a link inside the corpus to a file outside the project is skipped, named by the link (issue 17)
    (project / "docs" / "kept.md").write_text("public fact")
    assert find_files(CorpusSpec(paths=["docs"]), project) == [(project / "docs" / "kept.md").resolve()]
    corpus = load_corpus(CorpusSpec(paths=["docs"]), project)
    assert corpus.files == ["docs/kept.md"]
    assert [(s.source, "outside the project" in s.reason) for s in corpus.skipped] == [("docs/leak.md", True)]
    assert all("secret" not in c.text for c in corpus.chunks)
