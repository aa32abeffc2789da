"""The console's recipe editor, without Streamlit: validate unsaved text, explain a key from the JSON Schema,
find recipes and save one (confined to the recipes folder: :mod:`bakeoff.ui.confine`).

Validation never runs code named by a recipe (``agent: module:Class`` is reported, not imported); starting a
run is :mod:`bakeoff.ui.launch`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakeoff.io import write_text_atomic
from bakeoff.recipe.load import NOT_IMPORTED, Problem, RecipeError, load_recipe
from bakeoff.recipe.schema import Recipe
from bakeoff.ui.confine import MAX_RECIPE_BYTES, PathRefused, check_recipe_target, confine, is_recipe_file

__all__ = [
    "KeyHelp",
    "Validation",
    "annotations",
    "find_recipes",
    "help_for_problem",
    "read_saved",
    "save_recipe",
    "schema_keys",
    "validate_text",
]


# --- validation ---------------------------------------------------------------------------------------


@dataclass
class Validation:
    """The result of validating recipe text: problems (errors) and code that was not imported."""

    recipe: Recipe | None
    problems: list[Problem] = field(default_factory=list)
    not_imported: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found (``module:Class`` agents are checked when the run starts)."""
        return not self.problems

    def lines(self) -> list[str]:
        """Every problem as ``FILE:LINE:COL: field: message``, the CLI's format."""
        return [str(p) for p in self.problems]


def validate_text(path: str | Path, text: str) -> Validation:
    """Validate unsaved recipe text as if it were the file at ``path`` (relative paths resolve against its
    folder); never imports ``module:Class`` agents that are not imported already."""
    try:
        recipe = load_recipe(path, text=text, import_code=False)
    except RecipeError as exc:
        problems = [p for p in exc.problems if p.message != NOT_IMPORTED]
        deferred = [p for p in exc.problems if p.message == NOT_IMPORTED]
        return Validation(None, problems, deferred)
    return Validation(recipe)


def annotations(problems: list[Problem]) -> list[dict[str, Any]]:
    """Gutter annotations for the Ace editor (0-based rows)."""
    return [
        {"row": max(p.line - 1, 0), "column": max(p.column - 1, 0), "text": str(p), "type": "error"}
        for p in problems
    ]


# --- schema help ----------------------------------------------------------------------------------------


@dataclass
class KeyHelp:
    """What the JSON Schema says about one recipe key."""

    path: str  # e.g. "eval.limit", "candidates[].k"
    description: str
    type: str
    default: Any = None
    has_default: bool = False
    choices: list[Any] = field(default_factory=list)
    constraints: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)  # for candidate keys: the agent kinds that have it
    required: bool = False

    def markdown(self) -> str:
        parts = [f"**`{self.path}`** — {self.type}" + (" (required)" if self.required else "")]
        if self.agents:
            parts.append("agents: " + ", ".join(f"`{a}`" for a in self.agents))
        parts.append(self.description or "(no description)")
        if self.choices:
            parts.append("one of: " + ", ".join(f"`{c}`" for c in self.choices))
        if self.has_default:
            parts.append(f"default: `{json.dumps(self.default)}`")
        if self.constraints:
            parts.append(", ".join(f"{k}: `{v}`" for k, v in self.constraints.items()))
        return "\n\n".join(parts)


_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxLength",
    "pattern",
)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {
            **defs.get(ref.removeprefix("#/$defs/"), {}),
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def _variants(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [_resolve(v, defs) for v in node[key] if v.get("type") != "null"]
    selected = [v["then"] for v in node.get("allOf", []) if "then" in v]  # kinds chosen by agent (if/then)
    if selected:
        return [_resolve(v, defs) for v in selected]
    return [node]


def _type_name(node: dict[str, Any], defs: dict[str, Any]) -> str:
    names = []
    for v in _variants(node, defs):
        t = v.get("type")
        if t == "array":
            item = v.get("items") or {}
            inner = _type_name(item, defs) if item else "value"
            names.append(f"list of {inner}")
        elif t == "object" or "properties" in v:
            names.append("mapping")
        elif "const" in v:
            names.append(json.dumps(v["const"]))
        elif t:
            names.append(f"{t} ({v['format']})" if v.get("format") else str(t))
    if "anyOf" in node and any(v.get("type") == "null" for v in node["anyOf"]):
        names.append("null")
    return " or ".join(dict.fromkeys(names)) or "value"


def schema_keys(schema: dict[str, Any] | None = None) -> dict[str, KeyHelp]:
    """Every key a recipe can have, by dotted path (list items as ``[]``), from the recipe JSON Schema.

    Candidate keys of several agent kinds are merged, with ``agents`` listing the kinds that have the key.
    """
    if schema is None:
        from bakeoff.recipe.schema import json_schema

        schema = json_schema()
    defs = schema.get("$defs", {})
    out: dict[str, KeyHelp] = {}

    def walk(node: dict[str, Any], prefix: str, agent: str | None, depth: int) -> None:
        if depth > 8:
            return
        required = set(node.get("required", []))
        for name, prop in (node.get("properties") or {}).items():
            if name == "source_path":
                continue
            path = f"{prefix}.{name}" if prefix else name
            resolved = _resolve(prop, defs)
            choices = list(resolved.get("enum") or ([resolved["const"]] if "const" in resolved else []))
            help_ = out.get(path)
            if help_ is None:
                constraints = {k: resolved[k] for k in _CONSTRAINTS if k in resolved}
                for v in _variants(prop, defs):
                    constraints.update({k: v[k] for k in _CONSTRAINTS if k in v and k not in constraints})
                help_ = out[path] = KeyHelp(
                    path=path,
                    description=str(resolved.get("description") or prop.get("description") or ""),
                    type=_type_name(prop, defs),
                    default=resolved.get("default"),
                    has_default="default" in resolved,
                    choices=choices,
                    constraints=constraints,
                    required=name in required,
                )
            elif name == "agent":
                help_.choices = sorted(set(help_.choices) | set(choices))
            if agent and agent not in help_.agents:
                help_.agents.append(agent)
            for variant in _variants(prop, defs):
                if variant.get("properties"):
                    walk(variant, path, agent, depth + 1)
                items = variant.get("items")
                if variant.get("type") == "array" and isinstance(items, dict):
                    for item in _variants(items, defs):
                        if item.get("properties"):
                            kind = ((item.get("properties") or {}).get("agent") or {}).get("const")
                            walk(item, f"{path}[]", kind or agent, depth + 1)

    walk(schema, "", None, 0)
    if "candidates[].agent" in out:
        out["candidates[].agent"].type = "string"
        out["candidates[].agent"].description = (
            "Agent kind: a registered name or `package.module:Class`. Registered here: "
            + ", ".join(f"`{c}`" for c in out["candidates[].agent"].choices)
        )
    return out


def help_for_problem(problem: Problem, keys: dict[str, KeyHelp]) -> KeyHelp | None:
    """The schema entry of the key a problem is about (``candidates[2].k`` -> ``candidates[].k``)."""
    import re

    path = re.sub(r"\[\d+\]", "[]", problem.path)
    while path:
        if path in keys:
            return keys[path]
        path = path.rpartition(".")[0]
    return None


# --- files ----------------------------------------------------------------------------------------------


def find_recipes(folders: list[Path], extra: list[Path] = ()) -> list[Path]:
    """YAML files in ``folders`` plus ``extra`` paths that exist, without duplicates (absolute paths)."""
    found: dict[Path, None] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                found[path.resolve()] = None
    for path in extra:
        if path and Path(path).is_file():
            found[Path(path).resolve()] = None
    return list(found)


def save_recipe(
    path: str | Path, text: str, *, roots: Iterable[str | Path], allow_invalid: bool = False
) -> Path:
    """Write recipe text to ``path`` inside one of ``roots`` (atomically; missing folders inside the root
    are created) and return where it was written.

    Args:
        path: where *Save as* asked to write (relative paths start from the current folder).
        roots: the recipes folders the console may write in.
        allow_invalid: save text that does not validate (the user confirmed saving a draft).

    Raises:
        PathRefused: the path leaves the recipes folder, is not a ``.yaml``/``.yml`` name, or would
            overwrite a file that is not a recipe.
        RecipeError: the text is not a valid recipe and ``allow_invalid`` is false.
    """
    roots = list(roots)
    real = check_recipe_target(path, roots)
    if len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise PathRefused(f"not saved: the text is over {MAX_RECIPE_BYTES // 1_000_000} MB, no recipe is")
    if not allow_invalid:
        problems = validate_text(real, text).problems
        if problems:
            raise RecipeError(problems)
    real.parent.mkdir(parents=True, exist_ok=True)
    real = confine(real, roots, what="recipes folder")  # the folders just made may not be links out
    write_text_atomic(real, text)
    return real


def read_saved(path: str | Path) -> str | None:
    """The recipe saved at ``path``, or None if no recipe file is there (anything else is not read: a path
    typed into *Save as* may name any file)."""
    if not is_recipe_file(path):
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
