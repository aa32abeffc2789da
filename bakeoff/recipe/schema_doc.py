"""The recipe reference in Markdown, generated from the JSON Schema (so the docs are the field docstrings).

``bakeoff schema --markdown`` prints it; ``docs/recipe-reference.md`` is this output, and a test keeps the
committed file equal to it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render_markdown"]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"[{_ref_name(prop['$ref'])}](#{_ref_name(prop['$ref']).lower()})"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "allOf" in prop and all("then" in p for p in prop["allOf"]):  # chosen by a key (a candidate's `agent`)
        return " or ".join(dict.fromkeys(_type(p["then"]) for p in prop["allOf"]))
    for key in ("anyOf", "oneOf"):
        if key in prop:
            parts = [_type(p) for p in prop[key] if p.get("type") != "null"]
            nullable = any(p.get("type") == "null" for p in prop[key])
            return " or ".join(dict.fromkeys(parts)) + (" or null" if nullable else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"map of {_type(prop['additionalProperties'])}"
    if prop.get("format") == "path":
        return "path"
    return str(kind)


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in prop:
        return ""
    value = prop["default"]
    if value in ({}, []) or value is None:
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(model: dict[str, Any]) -> list[str]:
    props = model.get("properties", {})
    required = set(model.get("required", []))
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, prop in props.items():
        lines.append(
            f"| `{key}` | {_cell(_type(prop))} | {_cell(_default(prop, key in required))} | "
            f"{_cell(prop.get('description', ''))} |"
        )
    return lines


def render_markdown(schema: dict[str, Any]) -> str:
    """The recipe reference as Markdown."""
    defs = schema.get("$defs", {})
    out = [
        "# Recipe reference",
        "",
        "Generated from the recipe schema by `bakeoff schema --markdown` (do not edit by hand). Unknown keys are",
        "errors; relative paths resolve against the recipe's folder. `bakeoff validate FILE` checks a recipe and",
        "`bakeoff schema` prints the JSON Schema for editor completion.",
        "",
        "## Top level",
        "",
        *_table(schema),
        "",
    ]
    candidates = schema.get("properties", {}).get("candidates", {}).get("items", {})
    members = candidates.get("oneOf", candidates.get("anyOf", [])) + [
        m.get("then", {}) for m in candidates.get("allOf", [])  # selected by `agent` (if/then)
    ]
    agent_models = [_ref_name(m["$ref"]) for m in members if "$ref" in m]
    agent_models = list(dict.fromkeys(agent_models))
    if agent_models:
        out += [
            "## Candidates",
            "",
            "Each candidate picks an agent kind with `agent:`; the keys below depend on it.",
            "",
        ]
        for name in agent_models:
            model = defs.get(name, {})
            kind = model.get("properties", {}).get("agent", {}).get("const") or name
            out += [
                f"### {name}",
                "",
                f"`agent: {kind}` — {_cell(model.get('description', ''))}",
                "",
                *_table(model),
                "",
            ]
    rest = [n for n in defs if n not in agent_models]
    if rest:
        out += ["## Nested settings", ""]
        for name in rest:
            model = defs[name]
            if "properties" not in model:
                continue
            out += [f"### {name}", "", _cell(model.get("description", "")), "", *_table(model), ""]
    return "\n".join(out).rstrip() + "\n"
