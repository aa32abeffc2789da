"""Where a recipe's vectors live: the ``chroma:`` block (an embedded Chroma folder or a Chroma server), the
client that reaches it, the default collection name, and the write lock that makes two writers take turns.

Kept light (pydantic only at import): the recipe schema imports :class:`ChromaSpec`; chromadb is imported by
:func:`connect`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bakeoff.errors import BakeoffError
from bakeoff.recipe.fields import RecipePath

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["LOCK_TIMEOUT_S", "ChromaSpec", "VectorStoreError", "collection_name", "connect", "write_lock"]

LOCK_TIMEOUT_S = 3600.0


class VectorStoreError(BakeoffError):
    """The store cannot be opened or used as asked; the message says what to do."""


class ChromaSpec(BaseModel):
    """Where the corpus' vectors live: an embedded Chroma folder (default) or a Chroma server."""

    model_config = ConfigDict(extra="forbid")

    path: RecipePath | None = Field(
        None,
        description="Folder of an embedded Chroma database, relative to the recipe. Default: "
        "`$BAKEOFF_HOME/chroma/<recipe name>`.",
    )
    host: str | None = Field(
        None, description="Host of a Chroma server (`chroma run`); when set, the server is used instead."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server.")
    ssl: bool = Field(False, description="Talk to the server over HTTPS.")
    collection: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,510}[A-Za-z0-9]$",
        description="Collection name (3-512 characters: letters, digits, `.`, `_`, `-`). Default: "
        "`bakeoff-<recipe name>`.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> ChromaSpec:
        if self.path is not None and self.host is not None:
            raise ValueError("give either `path` (embedded Chroma) or `host` (a Chroma server), not both")
        return self


def collection_name(recipe_name: str) -> str:
    """The default collection name of a recipe (Chroma's naming rules: 3-512 chars, alphanumeric ends)."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "-", f"bakeoff-{recipe_name}")
    name = re.sub(r"\.{2,}", ".", name).rstrip("._-")
    return name[:512]


def connect(spec: ChromaSpec | None, recipe_name: str) -> tuple[Any, str, Path]:
    """A Chroma client, a description of where it points, and the write-lock file."""
    from bakeoff import paths

    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError:
        raise VectorStoreError("RAG needs chromadb: pip install 'chromadb>=1.0'") from None
    settings = Settings(anonymized_telemetry=False)
    spec = spec or ChromaSpec()
    locks = paths.home() / "chroma"
    if spec.host:
        scheme = "https" if spec.ssl else "http"
        where = f"Chroma server {scheme}://{spec.host}:{spec.port}"
        try:
            client = chromadb.HttpClient(host=spec.host, port=spec.port, ssl=spec.ssl, settings=settings)
            client.heartbeat()
        except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
            raise VectorStoreError(
                f"cannot reach the {where} ({type(exc).__name__}: {exc}); start it (`chroma run --port "
                f"{spec.port}`) or remove `chroma.host` from the recipe to use an embedded store"
            ) from None
        # The lock only orders writers on this machine; a shared server also sees other machines' writes.
        lock = locks / "locks" / re.sub(r"[^A-Za-z0-9._\-]", "_", f"{spec.host}_{spec.port}.lock")
        return client, where, lock
    folder = Path(spec.path) if spec.path else locks / recipe_name
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder.with_name(folder.name + ".lock")
    try:
        # Opening a folder writes to its SQLite file (migrations, tenant rows): while another process is adding
        # chunks that write would meet "database is locked", so the open takes its turn like any other write.
        with write_lock(lock):
            client = chromadb.PersistentClient(path=str(folder), settings=settings)
    except VectorStoreError:
        raise
    except Exception as exc:
        raise VectorStoreError(
            f"cannot open the Chroma folder {folder}: {type(exc).__name__}: {exc}"
        ) from None
    return client, f"embedded Chroma at {folder}", lock


@contextlib.contextmanager
def write_lock(
    lock_path: Path, console: Console | None = None, timeout_s: float = LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the store's write lock; while another process holds it, say which one and wait.

    Raises:
        VectorStoreError: the lock was not released within ``timeout_s``.
    """
    from bakeoff.locks import LockTimeout, held_lock

    def waiting(holder: str) -> None:
        if console is not None:
            console.print(
                f"[yellow]waiting for lock {lock_path} held by {holder} (another bakeoff writing this store)[/]",
                soft_wrap=True,  # one line: scripts and tests grep it
            )

    try:
        with held_lock(lock_path, on_wait=waiting, timeout_s=timeout_s):
            yield
    except LockTimeout as exc:
        raise VectorStoreError(str(exc)) from None
