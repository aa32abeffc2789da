"""A recipe's corpus: documents found by globs, read with LangChain loaders, split into located chunks.

Every chunk keeps its source file (relative to the recipe), PDF page and character offsets, and its id is a
content hash of (source, page, text) — so ingesting the same corpus twice produces the same ids, and editing
one file changes only that file's chunks. A file that cannot be read (empty, binary, corrupt, undecodable)
is skipped with the reason; the caller reports and counts it, and the run goes on.
"""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bakeoff.recipe.fields import OutsideRootError, check_inside, project_root

__all__ = [
    "Chunk",
    "ChunkSpec",
    "Corpus",
    "CorpusFile",
    "CorpusSpec",
    "Document",
    "SUPPORTED_SUFFIXES",
    "Skipped",
    "chunk_documents",
    "find_corpus_files",
    "find_files",
    "iter_corpus",
    "load_corpus",
    "load_document",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")


class ChunkSpec(BaseModel):
    """How documents are split."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(512, ge=32, le=100_000, description="Chunk size in `unit`s.")
    overlap: int = Field(64, ge=0, description="Overlap between neighbouring chunks, in `unit`s.")
    unit: Literal["chars", "tokens"] = Field(
        "chars", description="`chars`, or `tokens` of the embedding model's tokenizer."
    )

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkSpec:
        if self.overlap >= self.size:
            raise ValueError(f"chunk.overlap ({self.overlap}) must be smaller than chunk.size ({self.size})")
        return self


class CorpusSpec(BaseModel):
    """The documents a recipe's candidates know about (RAG retrieves from them; causal fine-tunes train on them)."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        ...,
        min_length=1,
        description="Files, folders or glob patterns (`**` allowed), relative to the recipe. Folders take every "
        f"supported file below them ({', '.join(SUPPORTED_SUFFIXES)}).",
    )
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of files to leave out.")
    chunk: ChunkSpec = Field(default_factory=ChunkSpec, description="Chunking settings.")

    @field_validator("paths")
    @classmethod
    def _inside_project(cls, paths: list[str], info: ValidationInfo) -> list[str]:
        """Each pattern's fixed part (before any wildcard) must stay inside the project root."""
        context = info.context or {}
        base, root = context.get("base_dir"), context.get("project_root")
        if base is None:
            return paths
        for pattern in paths:
            fixed = Path(pattern.split("*")[0].split("?")[0].split("[")[0] or ".").expanduser()
            check_inside(fixed if fixed.is_absolute() else Path(base) / fixed, root)
        return paths


@dataclass
class Document:
    """One readable unit: a file, or one page of a PDF."""

    source: str  # path relative to the corpus base folder
    text: str
    page: int | None = None
    note: str | None = None  # e.g. "decoded as cp1252"


@dataclass
class Chunk:
    id: str
    text: str
    source: str
    page: int | None
    start: int  # character offsets in the document (page) text
    end: int

    def metadata(self) -> dict[str, str | int]:
        meta: dict[str, str | int] = {"source": self.source, "start": self.start, "end": self.end}
        if self.page is not None:
            meta["page"] = self.page
        return meta


@dataclass
class Skipped:
    source: str
    reason: str


@dataclass
class CorpusFile:
    """One file of a corpus as read: its documents and chunks, or why it was skipped."""

    source: str
    documents: list[Document] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    skipped: str | None = None  # the reason the file could not be read
    note: str | None = None  # e.g. "decoded as cp1252"


@dataclass
class Corpus:
    files: list[str] = field(default_factory=list)  # sources that were read
    documents: list[Document] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"documents": len(self.files), "chunks": len(self.chunks), "skipped": len(self.skipped)}

    def by_file(self) -> Iterator[CorpusFile]:
        """The corpus file by file, as :func:`iter_corpus` yields it (for :meth:`VectorStore.sync`)."""
        chunks: dict[str, list[Chunk]] = {}
        for chunk in self.chunks:
            chunks.setdefault(chunk.source, []).append(chunk)
        docs: dict[str, list[Document]] = {}
        for doc in self.documents:
            docs.setdefault(doc.source, []).append(doc)
        for source in self.files:
            found = docs.get(source, [])
            yield CorpusFile(
                source, found, chunks.get(source, []), note=next((d.note for d in found[:1]), None)
            )
        for skipped in self.skipped:
            yield CorpusFile(skipped.source, skipped=skipped.reason)


def find_files(spec: CorpusSpec, base_dir: Path) -> list[Path]:
    """The files a corpus spec names, sorted, without duplicates or excluded files (a link that leads outside
    the project is left out: :func:`find_corpus_files` says which)."""
    return find_corpus_files(spec, base_dir)[0]


def find_corpus_files(spec: CorpusSpec, base_dir: Path) -> tuple[list[Path], list[Skipped]]:
    """The files a corpus spec names (sorted, without duplicates or excluded files) and the symlinks left out
    because they lead outside the project, each named by the link, not its target."""
    found: dict[Path, None] = {}
    outside: dict[str, Skipped] = {}
    root = project_root(base_dir)
    for pattern in spec.paths:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else base_dir / full
        if full.is_dir():
            candidates = [p for p in sorted(full.rglob("*")) if p.suffix.lower() in SUPPORTED_SUFFIXES]
        else:
            candidates = [Path(p) for p in sorted(glob.glob(str(full), recursive=True))]
        for path in candidates:
            if path.is_file():
                # a symlink inside the corpus must not lead outside the project: skipped, the rest is read
                try:
                    found[check_inside(path.resolve(), root)] = None
                except OutsideRootError:
                    source = _relative(path, base_dir)
                    outside[source] = Skipped(
                        source, "a link to a file outside the project (not read; --allow-outside reads it)"
                    )
    excluded = set()
    for pattern in spec.exclude:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        excluded |= {Path(p).resolve() for p in glob.glob(full, recursive=True)}
    return [p for p in found if p not in excluded], list(outside.values())


def _relative(path: Path, base_dir: Path) -> str:
    """The path as chunks record it: relative to the recipe's folder (``../data/doc.md`` for a file beside
    it), so a store's sources read the same on every machine; absolute only across drives."""
    try:
        return Path(os.path.relpath(path, base_dir.resolve())).as_posix()
    except ValueError:
        return str(path)


def _decode_text(raw: bytes) -> tuple[str, str | None]:
    """UTF-8, else Windows-1252/Latin-1 when the bytes look like text; raises ValueError for binary data."""
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    for encoding in ("cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text[:8192])
        if printable / max(1, min(len(text), 8192)) > 0.95:
            return text, f"not UTF-8; decoded as {encoding}"
    raise ValueError("undecodable bytes (neither UTF-8 nor Latin-1 text)")


def load_document(path: Path, source: str) -> list[Document]:
    """Read one file into documents (one per PDF page).

    Raises:
        ValueError: the file is empty, binary, corrupt or has no text; the message is the reason.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    docs: list[Document] = []
    if suffix in (".txt", ".md", ".markdown"):
        from langchain_community.document_loaders import TextLoader

        text, note = _decode_text(path.read_bytes())
        encoding = "utf-8-sig" if note is None else note.rsplit(" ", 1)[-1]
        loaded = TextLoader(str(path), encoding=encoding).load()
        docs = [Document(source, d.page_content, note=note) for d in loaded]
    elif suffix in (".html", ".htm"):
        # Parsed as text by BeautifulSoup: no scripts run, nothing is fetched; script/style content is dropped.
        from bs4 import BeautifulSoup
        from bs4.exceptions import ParserRejectedMarkup

        text, note = _decode_text(path.read_bytes())
        try:
            soup = BeautifulSoup(text, "html.parser")
        except ParserRejectedMarkup as exc:  # e.g. "<![\x01CDATA[" (found by tests/test_fuzz_inputs.py)
            raise ValueError(f"unreadable HTML ({str(exc).splitlines()[-1].strip()})") from None
        for tag in soup(["script", "style", "noscript", "template", "iframe"]):
            tag.decompose()
        docs = [Document(source, soup.get_text("\n"), note=note)]
    elif suffix == ".pdf":
        import logging  # here, not at the top: a recipe is validated without it (start-up)

        from langchain_community.document_loaders import PyPDFLoader

        # pypdf logs its complaints about broken files ("EOF marker not found"); the reason is reported
        # once, by the caller, so its logger is quiet while reading.
        pypdf_log = logging.getLogger("pypdf")
        level = pypdf_log.level
        pypdf_log.setLevel(logging.CRITICAL)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pages = PyPDFLoader(str(path)).load()
        except Exception as exc:  # pypdf raises many types for broken files
            raise ValueError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
        finally:
            pypdf_log.setLevel(level)
        docs = [
            Document(source, p.page_content, page=int(p.metadata.get("page", i)) + 1)
            for i, p in enumerate(pages)
        ]
    elif suffix == ".docx":
        from bakeoff.rag.zipped import read_docx_text

        # bounded: a few hundred KB of .docx cannot expand into gigabytes (TooLargeError: "too large: ...")
        docs = [Document(source, read_docx_text(path))]
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise ValueError("no text found")
    return docs


def _splitter(spec: ChunkSpec, tokenizer=None):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if spec.unit == "tokens":
        if tokenizer is None:
            raise ValueError("chunk.unit 'tokens' needs a tokenizer")
        return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer, chunk_size=spec.size, chunk_overlap=spec.overlap, add_start_index=True
        )
    return RecursiveCharacterTextSplitter(
        chunk_size=spec.size, chunk_overlap=spec.overlap, add_start_index=True
    )


def chunk_id(source: str, page: int | None, text: str, occurrence: int = 0) -> str:
    digest = hashlib.sha256(f"{source}\x00{page}\x00{occurrence}\x00{text}".encode()).hexdigest()
    return digest[:32]


def chunk_documents(
    documents: list[Document], spec: ChunkSpec, tokenizer=None, *, splitter=None
) -> list[Chunk]:
    """Split documents into chunks with offsets and content-hash ids (``splitter``: one already made for
    ``spec``, reused across calls)."""
    splitter = splitter or _splitter(spec, tokenizer)
    chunks: list[Chunk] = []
    for doc in documents:
        seen: dict[str, int] = {}
        for piece in splitter.create_documents([doc.text]):
            text = piece.page_content
            if not text.strip():
                continue
            start = int(piece.metadata.get("start_index", -1))
            if start < 0:
                start = doc.text.find(text)
            occurrence = seen.get(text, 0)
            seen[text] = occurrence + 1
            chunks.append(
                Chunk(
                    chunk_id(doc.source, doc.page, text, occurrence),
                    text,
                    doc.source,
                    doc.page,
                    start,
                    start + len(text),
                )
            )
    return chunks


def iter_corpus(
    spec: CorpusSpec,
    base_dir: Path,
    *,
    tokenizer=None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[CorpusFile]:
    """Find a corpus' files, then read and chunk them one at a time.

    Only one file's text and chunks are in memory at once (whatever the size of the corpus), so a consumer
    that writes each file's chunks away — :meth:`bakeoff.rag.vectorstore.VectorStore.sync` — streams.

    Args:
        spec: the recipe's corpus block.
        base_dir: folder that relative paths (and chunk sources) are relative to.
        tokenizer: a Hugging Face tokenizer, needed for ``chunk.unit: tokens``.
        progress: called as ``progress(done, total)`` after each file.
    """
    files, outside = find_corpus_files(spec, base_dir)
    for item in outside:
        yield CorpusFile(item.source, skipped=item.reason)
    splitter = _splitter(spec.chunk, tokenizer)
    for i, path in enumerate(files, 1):
        source = _relative(path, base_dir)
        try:
            docs = load_document(path, source)
        except (ValueError, OSError) as exc:
            item = CorpusFile(source, skipped=str(exc))
        else:
            chunks = chunk_documents(docs, spec.chunk, tokenizer, splitter=splitter)
            item = CorpusFile(source, docs, chunks, note=docs[0].note)
        yield item
        if progress:
            progress(i, len(files))


def load_corpus(
    spec: CorpusSpec,
    base_dir: Path,
    *,
    tokenizer=None,
    progress: Callable[[int, int], None] | None = None,
) -> Corpus:
    """Find, read and chunk a whole corpus into memory; unreadable files land in ``skipped`` with their reason.

    Args:
        spec: the recipe's corpus block.
        base_dir: folder that relative paths (and chunk sources) are relative to.
        tokenizer: a Hugging Face tokenizer, needed for ``chunk.unit: tokens``.
        progress: called as ``progress(done, total)`` after each file.
    """
    corpus = Corpus()
    for item in iter_corpus(spec, base_dir, tokenizer=tokenizer, progress=progress):
        if item.skipped is not None:
            corpus.skipped.append(Skipped(item.source, item.skipped))
            continue
        corpus.files.append(item.source)
        corpus.documents.extend(item.documents)
        corpus.chunks.extend(item.chunks)
        if item.note:
            corpus.notes.append(f"{item.source}: {item.note}")
    return corpus
