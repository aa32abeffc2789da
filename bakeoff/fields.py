"""Field types shared by the recipe and the agents' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

__all__ = ["ExistingFile", "RecipePath"]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.resolve() if base is not None else path


def _must_exist(value: Path, info: ValidationInfo) -> Path:
    if (info.context or {}).get("check_files", True) and not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


RecipePath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path; relative paths resolve against the recipe's folder."""

ExistingFile = Annotated[Path, AfterValidator(_resolve_path), AfterValidator(_must_exist)]
"""A file that must exist when the recipe is validated (relative to the recipe's folder)."""
