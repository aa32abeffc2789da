"""What a GGUF file says about itself: architecture, file type, tokenizer and chat template.

Read with the ``gguf`` package (metadata only; tensors are memory-mapped, never loaded), so registration and
``bakeoff models`` can reason about a file without starting llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["GGUFInfo", "read_gguf_info"]

# llama.cpp's token types (gguf.TokenType): CONTROL tokens are the chat format's markers.
_CONTROL = 3
# general.file_type (llama_ftype) values bakeoff writes or reads.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 14: "Q4_K_S", 32: "BF16"}


@dataclass(frozen=True)
class GGUFInfo:
    """Metadata of one GGUF file."""

    path: Path
    architecture: str
    name: str
    file_type: str
    chat_template: str
    bos_token: str
    eos_token: str
    add_bos: bool
    control_tokens: tuple[str, ...]
    context_length: int


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read the metadata of a GGUF file.

    Raises:
        ValueError: the file is not a GGUF file.
    """
    from gguf import GGUFReader

    path = Path(path)
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as exc:
        raise ValueError(f"{path} is not a readable GGUF file: {exc}") from None

    def value(key: str, default=None):
        field = reader.fields.get(key)
        if field is None:
            return default
        try:
            return field.contents()
        except (ValueError, IndexError, TypeError):
            return default

    arch = str(value("general.architecture", "") or "")
    tokens = value("tokenizer.ggml.tokens", []) or []
    types = value("tokenizer.ggml.token_type", []) or []

    def token(key: str) -> str:
        idx = value(key)
        return tokens[idx] if isinstance(idx, int) and 0 <= idx < len(tokens) else ""

    add_bos = value("tokenizer.ggml.add_bos_token")
    ftype = value("general.file_type")
    return GGUFInfo(
        path=path,
        architecture=arch,
        name=str(value("general.name", "") or ""),
        file_type=FILE_TYPES.get(ftype, str(ftype)) if ftype is not None else "unknown",
        chat_template=str(value("tokenizer.chat_template", "") or ""),
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        add_bos=bool(add_bos) if add_bos is not None else False,
        control_tokens=tuple(t for t, kind in zip(tokens, types, strict=False) if kind == _CONTROL),
        context_length=int(value(f"{arch}.context_length", 0) or 0),
    )
