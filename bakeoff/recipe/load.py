"""Loading a recipe: read the file, parse it with positions, expand sweeps, validate, cross-check, and report
every problem at once, each as ``FILE:LINE:COL: field.path: message``.

pydantic's errors are rewritten here for people: union tags dropped from locations, "unknown key" with the
closest allowed key, "unknown agent" with the registered ones. The schema itself is :mod:`bakeoff.recipe.schema`;
the checks across fields are :mod:`bakeoff.recipe.checks`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bakeoff.agents.base import AgentError, available_agents, load_agent_class
from bakeoff.errors import BakeoffError
from bakeoff.recipe._yaml import SourceMap, YamlError, load_yaml
from bakeoff.recipe.checks import cross_check
from bakeoff.recipe.fields import project_root
from bakeoff.recipe.schema import DEFAULT_BASE_MODEL, Recipe, agent_of, recipe_model
from bakeoff.recipe.sweep import Expansion, expand_sweeps
from bakeoff.synth.jobs import JOB_MODES, job_mode, job_model

__all__ = ["NOT_IMPORTED", "Problem", "RecipeError", "load_recipe"]

NOT_IMPORTED = "names Python code (module:Class), not imported while validating without running code"


@dataclass
class Problem:
    """One validation problem, located in the file."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class RecipeError(BakeoffError):
    """A recipe failed to load; ``problems`` holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_recipe(
    path: str | Path,
    *,
    check_files: bool = True,
    text: str | bytes | None = None,
    import_code: bool = True,
) -> Recipe:
    """Read, parse and validate a recipe file.

    Args:
        path: the YAML file; relative paths inside it resolve against its folder.
        check_files: also check that referenced input files exist.
        text: the file's content, if already read (the console validates unsaved edits this way).
        import_code: import ``agent: module:Class`` kinds named by the recipe. False (the console's live
            validation) reports each one not already imported as a problem at its ``agent`` key instead of
            running a module's code on every keystroke.

    Raises:
        RecipeError: with every problem found, each located as file:line:column.
    """
    path = Path(path)
    shown = str(path)
    data, smap = _parse(path, shown, text)
    problems: list[Problem] = []
    extra_kinds = _agent_kinds(data, smap, shown, import_code, problems)
    model = recipe_model(tuple(extra_kinds))

    # Sweeps expand before validation; errors in expanded candidates are mapped back to the file.
    def settings_for(kind: str) -> type[BaseModel] | None:
        if not import_code and ":" in kind and kind.partition(":")[0] not in sys.modules:
            return None  # a sweep must not import what validation defers (the console validates per keystroke)
        return _settings_model_or_none(kind)

    expansion = expand_sweeps(data, settings_for)
    for loc, msg in expansion.problems:
        line, col = smap.locate(loc, prefer_key=True)
        problems.append(Problem(shown, line, col, _format_loc(loc), msg))
    recipe = _validate(model, expansion, _context(path, data, check_files), smap, shown, problems)
    for loc, msg in cross_check(expansion.data):
        target = msg.removeprefix("no candidate named ").strip("'")
        if msg.startswith("no candidate named") and target in expansion.groups:
            msg += f"; it is swept into {', '.join(expansion.groups[target])}: name one of those"
        doc = _document_loc(expansion, loc)
        line, col = smap.locate(doc)
        problems.append(Problem(shown, line, col, _format_loc(doc), msg))
    if problems or recipe is None:
        unique = {(p.line, p.column, p.path, p.message): p for p in problems}  # a copy per swept candidate
        raise RecipeError(sorted(unique.values(), key=lambda p: (p.line, p.column)))
    recipe.source_path = path.resolve()
    return recipe


def _parse(path: Path, shown: str, text: str | bytes | None) -> tuple[dict[str, Any], SourceMap]:
    """The file's YAML mapping and where each value is; an unreadable file or bad YAML is one problem."""
    if text is None:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise RecipeError(
                [Problem(shown, 1, 1, "", f"cannot read recipe: {exc.strerror or exc}")]
            ) from None
    try:
        data, smap = load_yaml(text)
    except YamlError as exc:
        raise RecipeError([Problem(shown, exc.line, exc.column, "", exc.message)]) from None
    if not isinstance(data, dict):
        raise RecipeError([Problem(shown, 1, 1, "", "a recipe is a YAML mapping (key: value lines)")])
    return data, smap


def _agent_kinds(
    data: dict[str, Any], smap: SourceMap, shown: str, import_code: bool, problems: list[Problem]
) -> list[str]:
    """Import each candidate's agent kind; return the ``module:Class`` kinds (they join the schema's union).

    A kind that cannot be imported (or, without ``import_code``, is not imported yet) is a problem at its
    ``agent`` key.
    """
    extra_kinds: list[str] = []
    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        return extra_kinds
    for i, cand in enumerate(candidates):
        kind = cand.get("agent") if isinstance(cand, dict) else None
        if not isinstance(kind, str):
            continue
        if not import_code and ":" in kind and kind.partition(":")[0] not in sys.modules:
            line, col = smap.locate(("candidates", i, "agent"))
            problems.append(Problem(shown, line, col, f"candidates[{i}].agent", NOT_IMPORTED))
            continue
        try:
            load_agent_class(kind)
        except AgentError as exc:
            line, col = smap.locate(("candidates", i, "agent"))
            problems.append(Problem(shown, line, col, f"candidates[{i}].agent", str(exc)))
            continue
        if ":" in kind:
            extra_kinds.append(kind)
    return extra_kinds


def _context(path: Path, data: dict[str, Any], check_files: bool) -> dict[str, Any]:
    """Facts about the whole recipe that a candidate's validators may need (causal training needs a corpus)."""
    base_dir = path.parent.resolve()
    # recipe_keys (the top-level keys given a value) lets a candidate's settings check recipe-level needs:
    # a rag candidate needs `corpus:`.
    return {
        "base_dir": base_dir,
        "check_files": check_files,
        "project_root": project_root(base_dir),
        "recipe_keys": frozenset(k for k, v in data.items() if v is not None),
        "has_corpus": isinstance(data.get("corpus"), dict),
        "base_model": data.get("base_model", DEFAULT_BASE_MODEL),
    }


def _validate(
    model: type[Recipe],
    expansion: Expansion,
    context: dict[str, Any],
    smap: SourceMap,
    shown: str,
    problems: list[Problem],
) -> Recipe | None:
    """The validated recipe, or None with each of pydantic's errors added to ``problems``, located in the file."""
    expanded = expansion.data
    try:
        return model.model_validate(expanded, context=context)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err["loc"], expanded)
            doc = _document_loc(expansion, loc)
            if err["type"] == "union_tag_invalid" and any(
                p.path == _format_loc((*doc, "agent")) for p in problems
            ):
                continue  # already reported with the import error
            prefer_key = err["type"] == "extra_forbidden"
            line, col = smap.locate(doc, prefer_key=prefer_key)
            problems.append(Problem(shown, line, col, _format_loc(doc), _message(err, expanded, loc, model)))
    return None


def _document_loc(expansion: Expansion, loc: tuple) -> tuple:
    """Where in the file an error at ``loc`` of the expanded recipe is (a swept candidate maps to its origin)."""
    if (
        len(loc) >= 2
        and loc[0] == "candidates"
        and isinstance(loc[1], int)
        and loc[1] < len(expansion.origins)
    ):
        return expansion.origins[loc[1]].document_loc(loc[2:])
    return loc


def _settings_model_or_none(kind: str) -> type[BaseModel] | None:
    try:
        return load_agent_class(kind).settings_model
    except AgentError:
        return None


# -- pydantic's errors, as people read them ------------------------------------------------------------------
def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-tag elements so the location is a path in the document."""
    out: list = []
    node = data
    for part in loc:
        if (
            isinstance(node, list)
            and isinstance(part, int)
            and 0 <= part < len(node)
            or isinstance(node, dict)
            and part in node
        ):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == agent_of(node):
            continue  # the discriminator tag
        elif isinstance(node, dict) and part in JOB_MODES and part == job_mode(node):
            continue  # a synthesize job's tag
        else:
            out.append(part)
            node = None
    return tuple(out)


def _message(err: dict, data: Any, loc: tuple, model: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}{_suggest(loc, data, model)}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "union_tag_not_found" and loc[:1] == ("synthesize",):
        return f"`mode` must be one of: {', '.join(JOB_MODES)}"
    if kind == "union_tag_not_found":
        return "candidate needs an `agent:` key (e.g. agent: fewshot)"
    if kind == "union_tag_invalid" and loc[:1] == ("synthesize",):
        tag = err.get("ctx", {}).get("tag", "?")
        return f"unknown mode {tag!r}; use one of: {', '.join(JOB_MODES)}"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        known = ", ".join(sorted(available_agents()))
        return f"unknown agent {tag!r}; registered agents: {known}; or write 'package.module:Class'"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def _suggest(loc: tuple, data: Any, model: type[BaseModel]) -> str:
    import difflib

    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1], data, model)
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed keys: {', '.join(sorted(allowed))}" if allowed else ""


def _allowed_keys(parent: tuple, data: Any, model: type[BaseModel]) -> list[str]:
    cls: Any = model
    node = data
    for part in parent:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if parent[:1] == ("candidates",) and isinstance(node, dict):
                try:
                    cls = load_agent_class(str(node.get("agent"))).settings_model
                except AgentError:
                    return []
            if parent[:1] == ("synthesize",) and isinstance(node, dict):
                cls = job_model(job_mode(node))
                if cls is None:
                    return []
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return []
        ann = cls.model_fields[part].annotation
        node = node.get(part) if isinstance(node, dict) else None
        cls = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            ann,
        )
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return [f.alias or name for name, f in cls.model_fields.items() if not f.exclude]  # not source_path
    return []
