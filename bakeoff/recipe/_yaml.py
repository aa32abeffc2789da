"""Safe YAML loading that remembers where every value came from.

Recipes are parsed from the YAML node graph, never by a constructor that can build Python objects: only the
core YAML tags are accepted, input size and alias expansion are bounded, and every key and value keeps its
``line:column`` so validation errors can point at the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from bakeoff.errors import BakeoffError

__all__ = ["MAX_NODES", "MAX_BYTES", "SourceMap", "YamlError", "load_yaml"]

MAX_BYTES = 1_000_000  # a recipe is a page of text; a megabyte is already absurd
MAX_NODES = 100_000  # bounds alias expansion ("billion laughs")
MAX_DEPTH = 64

_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}


@dataclass
class YamlError(BakeoffError):
    """A YAML problem at a position (1-based line and column)."""

    message: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


@dataclass
class SourceMap:
    """Positions of keys and values, by path (a tuple of keys and list indices)."""

    values: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    keys: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: tuple, *, prefer_key: bool = False) -> tuple[int, int]:
        """The best position for a validation error at ``loc``.

        Path elements that are not in the document (pydantic's union tags, a missing key) are skipped, so
        an error about a missing field points at the mapping that lacks it.
        """
        path: tuple = ()
        for part in loc:
            candidate = (*path, part)
            if candidate in self.values:
                path = candidate
        if prefer_key and path in self.keys:
            return self.keys[path]
        if path in self.values:
            return self.values[path]
        return (1, 1)


def load_yaml(text: str | bytes) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python data and a :class:`SourceMap`.

    Raises:
        YamlError: syntax errors, non-core tags, duplicate keys, too large or too deeply nested input.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise YamlError(f"file is {len(text):,} bytes; a recipe may be at most {MAX_BYTES:,}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            raise YamlError(f"not valid UTF-8 (byte {exc.start}): save the file as UTF-8", line, 1) from None
    if len(text) > MAX_BYTES:
        raise YamlError(f"file is {len(text):,} characters; a recipe may be at most {MAX_BYTES:,}")

    yaml = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ReusedAnchorWarning: anchors are bounded below anyway
            node = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(f"YAML syntax: {exc.problem or exc.context}", line, col) from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise YamlError(f"YAML syntax: {exc}") from None

    smap = SourceMap()
    if node is None:
        return None, smap
    constructor = yaml.constructor
    count = 0

    def pos(n) -> tuple[int, int]:
        return (n.start_mark.line + 1, n.start_mark.column + 1)

    def build(n, path: tuple, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise YamlError(f"more than {MAX_NODES:,} values after expanding aliases; refusing", *pos(n))
        if depth > MAX_DEPTH:
            raise YamlError(f"nested deeper than {MAX_DEPTH} levels", *pos(n))
        if n.tag not in _CORE_TAGS:
            raise YamlError(f"tag {n.tag!r} is not allowed in a recipe (only plain YAML values)", *pos(n))
        smap.values.setdefault(path, pos(n))
        if isinstance(n, ScalarNode):
            try:
                return constructor.construct_object(n, deep=True)
            except (YAMLError, ValueError, OverflowError) as exc:
                raise YamlError(f"bad value: {exc}", *pos(n)) from None
        if isinstance(n, SequenceNode):
            return [build(item, (*path, i), depth + 1) for i, item in enumerate(n.value)]
        if isinstance(n, MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError(
                        "merge keys (<<) are not supported in recipes; write the keys out", *pos(key_node)
                    )
                if not isinstance(key_node, ScalarNode):
                    raise YamlError("mapping keys must be plain scalars", *pos(key_node))
                key = build(key_node, (*path, "<key>"), depth + 1)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise YamlError("mapping keys must be plain scalars", *pos(key_node))
                if key in out:
                    raise YamlError(f"duplicate key {key!r}", *pos(key_node))
                smap.keys[(*path, key)] = pos(key_node)
                out[key] = build(value_node, (*path, key), depth + 1)
            return out
        raise YamlError(f"unsupported YAML node {type(n).__name__}", *pos(n))

    return build(node, (), 0), smap
