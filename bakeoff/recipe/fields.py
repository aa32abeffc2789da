"""Field types shared by the recipe and the agents' settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

from bakeoff.errors import BakeoffError

__all__ = [
    "ExistingFile",
    "OutsideRootError",
    "RecipePath",
    "allow_outside",
    "check_inside",
    "must_exist",
    "project_root",
    "resolve_path",
]

_ROOT_MARKERS = (".git", "pyproject.toml", ".bakeoff-root")


class OutsideRootError(BakeoffError, ValueError):
    """A recipe path points outside the project root."""


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``.git``, ``pyproject.toml`` or ``.bakeoff-root``;
    ``start`` itself when there is none. Recipe paths must stay inside it (unless ``--allow-outside``)."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _ROOT_MARKERS):
            return folder
    return start


def allow_outside() -> bool:
    """``--allow-outside`` (or ``BAKEOFF_ALLOW_OUTSIDE=1``) lets recipe paths leave the project root."""
    return os.environ.get("BAKEOFF_ALLOW_OUTSIDE", "").lower() in ("1", "true", "yes")


def check_inside(path: Path, root: Path | None) -> Path:
    """Raise :class:`OutsideRootError` when ``path`` (symlinks resolved) is outside ``root``."""
    if root is None or allow_outside():
        return path
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise OutsideRootError(
            f"{resolved} is outside the project root {root}; move it inside, or pass --allow-outside "
            "(BAKEOFF_ALLOW_OUTSIDE=1) if you trust this recipe"
        )
    return resolved


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    context = info.context or {}
    base = context.get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if base is None:
        return path
    return check_inside(path.resolve(), context.get("project_root"))


def must_exist(value: Path, info: ValidationInfo) -> Path:
    if (info.context or {}).get("check_files", True) and not value.is_file():
        if value.is_dir():
            raise ValueError(f"{value} is a folder; name a file inside it")
        raise ValueError(f"file not found: {value}")
    return value


RecipePath = Annotated[Path, AfterValidator(resolve_path)]
"""A path; relative paths resolve against the recipe's folder."""

ExistingFile = Annotated[Path, AfterValidator(resolve_path), AfterValidator(must_exist)]
"""A file that must exist when the recipe is validated (relative to the recipe's folder)."""
