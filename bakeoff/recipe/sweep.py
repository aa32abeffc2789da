"""Sweeps: one candidate with ``sweep: {key: [values]}`` becomes one candidate per value combination.

Expansion happens on the raw YAML data, before validation, so every expanded candidate is validated like a
hand-written one and its errors still point at the recipe's lines: an error in a swept value points at that
value inside ``sweep:``, any other error at the original candidate (reported once, not once per copy).

A key is a dotted path inside the candidate (``train.lora.r``) or a bare field name found anywhere in the
candidate's settings (``learning_rate`` → ``train.learning_rate``). Several keys give the cartesian product.
Names are derived from the values: ``lora`` with ``learning_rate: [5e-5, 3e-5]`` becomes ``lora[lr=5e-5]``
and ``lora[lr=3e-5]``; two keys give ``lora[lr=5e-5][r=8]``.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_SWEEP", "Expansion", "Origin", "expand_sweeps", "sweep_name"]

MAX_SWEEP = 64  # candidates one sweep may produce
_ABBREVIATIONS = {"learning_rate": "lr", "batch_size": "bs", "grad_accum": "ga", "max_length": "len"}


@dataclass
class Origin:
    """Where an expanded candidate came from: its index in the file and, per swept path, the value's place."""

    index: int
    swept: dict[tuple, tuple[str, int]] = field(default_factory=dict)

    def document_loc(self, rest: tuple) -> tuple:
        """The location in the file of an error at ``candidates[i].<rest>`` of the expanded recipe."""
        for path, (key, k) in self.swept.items():
            if rest[: len(path)] == path:
                return ("candidates", self.index, "sweep", key, k, *rest[len(path) :])
        return ("candidates", self.index, *rest)


@dataclass
class Expansion:
    data: Any  # the recipe with sweeps expanded
    origins: list[Origin]  # one per expanded candidate
    problems: list[tuple[tuple, str]]  # (document location, message)
    groups: dict[str, list[str]]  # swept candidate name -> the expanded names


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value != 0 and not 1e-2 <= abs(value) < 1e5:  # learning rates read as written: 5e-5, 2.5e-4
            mantissa, _, exponent = f"{value:.6e}".partition("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return re.sub(r"[^A-Za-z0-9_.+\-]", "_", str(value))


def sweep_name(base: str, assignment: list[tuple[tuple, Any]]) -> str:
    """``lora`` + ``[(('train', 'learning_rate'), 5e-05)]`` -> ``lora[lr=5e-5]``."""
    return base + "".join(
        f"[{_ABBREVIATIONS.get(path[-1], path[-1])}={_format(v)}]" for path, v in assignment
    )


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (through Optional, unions, Annotated, list)."""
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found.append(ann)
            continue
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            stack.append(typing.get_args(ann)[0])
        elif origin in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(ann))
    return found


def _field_paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    paths = []
    for name, info in model.model_fields.items():
        paths.append((*prefix, name))
        for sub in _model_args(info.annotation):
            paths.extend(_field_paths(sub, (*prefix, name)))
    return paths


def _resolve(key: str, settings: type[BaseModel] | None) -> tuple[tuple | None, str | None]:
    """A sweep key as a path inside the candidate, or an error message."""
    if not key or not all(key.split(".")):
        return None, f"sweep key {key!r} is not a key name"
    if settings is None or "." in key:
        return tuple(key.split(".")), None
    paths = _field_paths(settings)
    matches = [p for p in paths if p[-1] == key]
    if not matches:
        names = sorted({p[-1] for p in paths} | {".".join(p) for p in paths})
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return None, f"unknown sweep key {key!r} for this agent{hint}"
    depth = min(len(p) for p in matches)
    shallow = [p for p in matches if len(p) == depth]
    if len(shallow) > 1:
        options = ", ".join(".".join(p) for p in shallow)
        return None, f"sweep key {key!r} is ambiguous ({options}); write the dotted path"
    if shallow[0] in (("name",), ("agent",), ("sweep",)):
        return None, f"{key!r} cannot be swept"
    return shallow[0], None


def _assign(target: dict, path: tuple, value: Any) -> None:
    node = target
    for part in path[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            return  # the candidate's own value is malformed; validation reports it
        node = nxt
    node[path[-1]] = copy.deepcopy(value)


def expand_sweeps(data: Any, settings_for: Callable[[str], type[BaseModel] | None]) -> Expansion:
    """Expand every ``sweep:`` in a raw recipe.

    Args:
        data: the parsed YAML document.
        settings_for: the settings model of an agent kind (None when it cannot be loaded).
    """
    candidates = data.get("candidates") if isinstance(data, dict) else None
    if not isinstance(candidates, list):
        return Expansion(data, [], [], {})
    expanded: list[Any] = []
    origins: list[Origin] = []
    problems: list[tuple[tuple, str]] = []
    groups: dict[str, list[str]] = {}
    for i, cand in enumerate(candidates):
        if not (isinstance(cand, dict) and "sweep" in cand):
            expanded.append(cand)
            origins.append(Origin(i))
            continue
        sweep = cand["sweep"]
        where = ("candidates", i, "sweep")
        base = {k: v for k, v in cand.items() if k != "sweep"}
        if not isinstance(sweep, dict) or not sweep:
            problems.append(
                (
                    where,
                    "sweep: give a mapping of keys to lists of values, e.g. {learning_rate: [5e-5, 3e-5]}",
                )
            )
            expanded.append(base)
            origins.append(Origin(i))
            continue
        kind = cand.get("agent")
        settings = settings_for(kind) if isinstance(kind, str) else None
        axes: list[tuple[str, tuple, list]] = []
        for key, values in sweep.items():
            path, error = _resolve(str(key), settings)
            if error is None and (not isinstance(values, list) or not values):
                error = f"sweep.{key}: give a non-empty list of values"
            if error is None and path is not None and path[-1] == "name":
                error = f"{key!r} cannot be swept"
            if error is not None or path is None:
                problems.append(((*where, key), error or "bad sweep key"))
                continue
            axes.append((str(key), path, values))
        size = 1
        for _, _, values in axes:
            size *= len(values)
        if size > MAX_SWEEP:
            problems.append((where, f"sweep makes {size} candidates; at most {MAX_SWEEP}"))
            axes = []
        if not axes:
            expanded.append(base)
            origins.append(Origin(i))
            continue
        name = base.get("name")
        names = []
        for combo in itertools.product(*(list(enumerate(values)) for _, _, values in axes)):
            member = copy.deepcopy(base)
            origin = Origin(i)
            assignment = []
            for (key, path, _), (k, value) in zip(axes, combo, strict=True):
                _assign(member, path, value)
                origin.swept[path] = (key, k)
                assignment.append((path, value))
            if isinstance(name, str):
                member["name"] = sweep_name(name, assignment)
                names.append(member["name"])
            expanded.append(member)
            origins.append(origin)
        if isinstance(name, str):
            groups[name] = names
    return Expansion({**data, "candidates": expanded}, origins, problems, groups)
