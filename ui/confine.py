"""The one rule for every file the console writes: it lands inside a folder the console was given.

A path typed into a page (``Save as``) or built from what a run folder holds (``votes.jsonl``) is resolved the
way the operating system will resolve it — symbolic links followed, ``..`` applied after them — and must end
up inside one of the allowed folders, below no hidden folder (``.git``, ``.github``: a file there is code
someone runs). Writers call :func:`confine` and write to the path it returns, never to the text they got.

Recipes get one more rule (:func:`check_recipe_target`): the file is a ``.yaml``/``.yml`` file, and an
existing file is overwritten only if it is a recipe already (:func:`is_recipe_file`), so *Save as* can never
replace a script, a configuration file or a CI workflow with recipe text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from bakeoff.errors import BakeoffError

__all__ = [
    "RECIPE_SUFFIXES",
    "PathRefused",
    "check_recipe_target",
    "confine",
    "inside",
    "is_recipe_file",
]

RECIPE_SUFFIXES = (".yaml", ".yml")
MAX_RECIPE_BYTES = 1_000_000  # larger than any recipe; a file this big is something else
_TOP_LEVEL_CANDIDATES = re.compile(r"^candidates\s*:", re.MULTILINE)


class PathRefused(BakeoffError):
    """The console will not write this path; the message says why, in one sentence."""


def _real(path: Path) -> Path:
    """``path`` as the operating system resolves it (links followed, missing tail kept)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path``, resolved, is ``root`` (resolved) or below it."""
    real, top = _real(Path(path)), _real(Path(root))
    return real == top or top in real.parents


def confine(path: str | Path, roots: Iterable[str | Path], *, what: str = "folder") -> Path:
    """The real location ``path`` would be written to, if it is inside one of ``roots``.

    Relative paths start from the current folder. The returned path has every link resolved: write to it,
    so a link swapped in later cannot redirect the write.

    Args:
        path: the path asked for.
        roots: the folders writes may land in (at least one).
        what: how the message names the roots, e.g. ``"recipes folder"``.

    Raises:
        PathRefused: the path resolves outside every root, or below a hidden folder inside one.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise PathRefused(f"{path} cannot be written: the console was given no {what} to write in")
    asked = Path(path).expanduser()
    real = _real(asked)
    for root in roots:
        top = _real(root)
        if real == top:
            raise PathRefused(f"{asked} is the {what} itself, not a file in it")
        if top in real.parents:
            hidden = [part for part in real.relative_to(top).parts if part.startswith(".")]
            if hidden:
                raise PathRefused(
                    f"{asked} is inside the hidden folder or file {hidden[0]!r}; the console does not "
                    "write there"
                )
            return real
    where = " or ".join(f"`{_real(r)}`" for r in roots)
    via = f" (it resolves to {real})" if real != Path(os.path.abspath(asked)) else ""
    raise PathRefused(f"{asked} is outside the {what} {where}{via}; the console writes only inside it")


def _recipe_keys() -> frozenset[str]:
    from bakeoff.recipe.schema import Recipe

    return frozenset(Recipe.model_fields) - {"source_path"}


def is_recipe_file(path: str | Path) -> bool:
    """Whether ``path`` is a regular ``.yaml``/``.yml`` file (at most 1 MB of UTF-8) that is a recipe or a
    draft of one: a top-level ``candidates:`` key, or only recipe keys (``name``, ``eval``, ...), or nothing
    at all. A compose file, a CI workflow or a script is none of these."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in RECIPE_SUFFIXES:
            return False
        if path.stat().st_size > MAX_RECIPE_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if _TOP_LEVEL_CANDIDATES.search(text):
        return True  # even a draft whose YAML is broken elsewhere
    from bakeoff.recipe._yaml import YamlError, load_yaml

    try:
        data, _ = load_yaml(text)
    except YamlError:
        return False
    if data is None:
        return True  # empty, or comments only
    return isinstance(data, dict) and bool(data) and set(map(str, data)) <= _recipe_keys()


def check_recipe_target(path: str | Path, roots: Iterable[str | Path]) -> Path:
    """Where *Save as* may write recipe text asked to go to ``path``: confined to ``roots``, a
    ``.yaml``/``.yml`` name, and either a new file or an existing recipe.

    Raises:
        PathRefused: why not, in one sentence.
    """
    real = confine(path, roots, what="recipes folder")
    if real.suffix.lower() not in RECIPE_SUFFIXES:
        raise PathRefused(f"{path} is not a recipe file name: a recipe ends in .yaml or .yml")
    if real.is_dir():
        raise PathRefused(f"{path} is a folder")
    if os.path.lexists(real) and not is_recipe_file(real):
        raise PathRefused(
            f"{path} exists and is not a recipe; the console overwrites only recipes — pick another name"
        )
    return real
