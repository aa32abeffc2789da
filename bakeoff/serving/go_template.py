"""A Go ``text/template`` interpreter for the subset Ollama's chat templates use.

Ollama formats a chat by executing the model's ``TEMPLATE`` (Go ``text/template``) over the messages; bakeoff
renders the same templates here to prove a derived template equal to the model's Jinja one
(:mod:`bakeoff.serving.ollama_template`) and to stand in for Ollama in tests. Supported: text,
``{{ .Field }}``, ``if``/``else if``/``else``, ``range`` with variables, ``eq``/``ne``/``lt``/``le``/``gt``/``ge``/
``and``/``or``/``not``/``index``/``len``/``slice``/``json``/``print``, comments and trim markers.
:func:`render_go` applies a template the way Ollama's ``template.Execute`` does: consecutive messages of one
role are merged with a blank line, ``.System`` joins the system messages, ``missingkey=zero``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bakeoff.errors import BakeoffError

__all__ = ["GoTemplateError", "Message", "TemplateError", "parse_go", "render_go"]

Message = Mapping[str, str]


class TemplateError(BakeoffError):
    """A chat template cannot be rendered, parsed, or turned into an equivalent Ollama template; the message
    says why."""


class GoTemplateError(TemplateError):
    """A Go template does not parse or cannot be executed (Ollama would answer 400 ``template error``)."""


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    expr: Any


@dataclass
class _Assign:
    name: str
    expr: Any


@dataclass
class _If:
    branches: list[tuple[Any, list]]
    otherwise: list = field(default_factory=list)


@dataclass
class _Range:
    names: list[str]
    expr: Any
    body: list
    otherwise: list = field(default_factory=list)


class _GoStruct(dict):
    """A Go struct value (unknown fields are an execution error, unlike map keys)."""

    type_name = "*api.Message"


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<num>-?\d+)
      | (?P<assign>:=|=)
      | (?P<punct>[(),|])
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)
_FUNCS = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "index", "len", "slice", "json", "print"}


def _tokens(src: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise GoTemplateError(f"template: {where}: unexpected {src[pos:].strip()[:20]!r} in action")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _go_string(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    try:
        return json.loads(literal)
    except json.JSONDecodeError:  # Go escapes JSON does not know (\a, \x41): decode the Python way
        return literal[1:-1].encode("utf-8").decode("unicode_escape")


class _ExprParser:
    def __init__(self, tokens: list[tuple[str, str]], where: str) -> None:
        self.toks = tokens
        self.i = 0
        self.where = where

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise GoTemplateError(f"template: {self.where}: missing value in action")
        self.i += 1
        return tok

    def pipeline(self) -> Any:
        cmd = self.command()
        tok = self.peek()
        if tok and tok == ("punct", "|"):
            raise GoTemplateError(f"template: {self.where}: pipelines ('|') are not supported by bakeoff")
        return cmd

    def command(self) -> Any:
        args = []
        while (tok := self.peek()) is not None and tok not in (("punct", ")"), ("punct", "|")):
            args.append(self.operand())
        if not args:
            raise GoTemplateError(f"template: {self.where}: missing value for command")
        head = args[0]
        if isinstance(head, tuple) and head[0] == "func":
            return ("call", head[1], args[1:])
        if len(args) > 1:
            raise GoTemplateError(f"template: {self.where}: can't give argument to non-function {head!r}")
        return head

    def operand(self) -> Any:
        kind, value = self.take()
        if kind == "str" or kind == "raw":
            node: Any = ("lit", _go_string(value))
        elif kind == "num":
            node = ("lit", int(value))
        elif kind == "field":
            node = ("field", None, [p for p in value.split(".") if p])
        elif kind == "var":
            name, *path = value.split(".")
            node = ("field", name, path)
        elif kind == "ident":
            if value in ("true", "false"):
                node = ("lit", value == "true")
            elif value == "nil":
                node = ("lit", None)
            elif value in _FUNCS:
                node = ("func", value)
            else:
                raise GoTemplateError(f'template: {self.where}: function "{value}" not defined')
        elif (kind, value) == ("punct", "("):
            inner = self.pipeline()
            if self.take() != ("punct", ")"):
                raise GoTemplateError(f"template: {self.where}: unclosed left paren")
            node = inner
            tok = self.peek()
            if tok and tok[0] == "field" and tok[1] != ".":  # (index .Messages 0).Role
                self.i += 1
                node = ("chain", node, [p for p in tok[1].split(".") if p])
        else:
            raise GoTemplateError(f"template: {self.where}: unexpected {value!r} in operand")
        if isinstance(node, tuple) and node[0] == "func" and self.peek() is None:
            return node
        return node


def _pieces(template: str) -> list[tuple[str, str, int]]:
    """Split into ``("text", text, offset)`` and ``("action", source, line)`` pieces, applying trim markers
    (``{{- `` trims whitespace before, `` -}}`` after)."""
    pieces: list[tuple[str, str, int]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            pieces.append(("text", text, pos))
        pieces.append(("action", m.group(2), template.count("\n", 0, m.start()) + 1))
        trim_next = bool(m.group(3))
        pos = m.end()
    rest = template[pos:]
    if "{{" in rest:
        line = template.count("\n", 0, pos + rest.index("{{")) + 1
        raise GoTemplateError(f"template: :{line}: unclosed action")
    if trim_next:
        rest = rest.lstrip(" \t\r\n")
    if rest:
        pieces.append(("text", rest, pos))
    return pieces


# A frame of the parse: (the if/range node, or None for the root; the list new nodes go to; past {{else}}).
_Frame = tuple[Any, list, bool]


def parse_go(template: str) -> list:
    """Parse a Go template into a node list.

    Raises:
        GoTemplateError: a syntax error, an unknown function or an unsupported construct, with position.
    """
    root: list = []
    stack: list[_Frame] = [(None, root, False)]
    for kind, value, where in _pieces(template):
        if kind == "text":
            stack[-1][1].append(_Text(value))
        else:
            _parse_action(value.strip(), f":{where}", stack)
    if len(stack) > 1:
        raise GoTemplateError("template: :1: unexpected EOF (an {{if}} or {{range}} has no {{end}})")
    return root


def _parse_action(src: str, loc: str, stack: list[_Frame]) -> None:
    """Add one action's node to the innermost open block, or open/switch/close a block."""
    target = stack[-1][1]
    if src.startswith("/*"):
        if not src.endswith("*/"):
            raise GoTemplateError(f"template: {loc}: unclosed comment")
        return
    toks = _tokens(src, loc)
    if not toks:
        raise GoTemplateError(f"template: {loc}: missing value for command")
    head = toks[0]
    if head == ("ident", "if"):
        node: Any = _If([(_ExprParser(toks[1:], loc).pipeline(), [])])
        target.append(node)
        stack.append((node, node.branches[0][1], False))
    elif head == ("ident", "range"):
        rest_toks = toks[1:]
        names: list[str] = []
        assign = next((i for i, t in enumerate(rest_toks) if t[0] == "assign"), None)
        if assign is not None:
            names = [t[1] for t in rest_toks[:assign] if t[0] == "var"]
            rest_toks = rest_toks[assign + 1 :]
        node = _Range(names, _ExprParser(rest_toks, loc).pipeline(), [])
        target.append(node)
        stack.append((node, node.body, False))
    elif head == ("ident", "else"):
        node, _, in_else = stack[-1]
        if node is None or in_else:
            raise GoTemplateError(f"template: {loc}: unexpected {{{{else}}}}")
        if len(toks) > 1 and toks[1] == ("ident", "if") and isinstance(node, _If):
            node.branches.append((_ExprParser(toks[2:], loc).pipeline(), []))
            stack[-1] = (node, node.branches[-1][1], False)
        else:
            stack[-1] = (node, node.otherwise, True)
    elif head == ("ident", "end"):
        if len(stack) == 1:
            raise GoTemplateError(f"template: {loc}: unexpected {{{{end}}}}")
        stack.pop()
    elif head in (("ident", "with"), ("ident", "define"), ("ident", "template"), ("ident", "block")):
        raise GoTemplateError(f"template: {loc}: {{{{{head[1]}}}}} is not supported by bakeoff's renderer")
    elif head[0] == "var" and len(toks) > 1 and toks[1][0] == "assign":
        target.append(_Assign(head[1], _ExprParser(toks[2:], loc).pipeline()))
    else:
        target.append(_Action(_ExprParser(toks, loc).pipeline()))


def _truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, _GoStruct):
        return True
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def _show(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


class _Exec:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.vars: list[dict[str, Any]] = [{"$": root}]

    def lookup_var(self, name: str) -> Any:
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        raise GoTemplateError(f'template: undefined variable "{name}"')

    def field(self, value: Any, path: list[str]) -> Any:
        for name in path:
            if isinstance(value, _GoStruct):
                if name not in value:
                    raise GoTemplateError(f"template: can't evaluate field {name} in type {value.type_name}")
                value = value[name]
            elif isinstance(value, dict):
                value = value.get(name)  # missingkey=zero
            elif value is None:
                raise GoTemplateError(f"template: nil pointer evaluating .{name}")
            else:
                raise GoTemplateError(f"template: can't evaluate field {name} in type {type(value).__name__}")
        return value

    def eval(self, node: Any, dot: Any) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "field":
            base = dot if node[1] is None else self.lookup_var(node[1])
            return self.field(base, node[2])
        if kind == "chain":
            return self.field(self.eval(node[1], dot), node[2])
        if kind == "func":
            return self.call(node[1], [], dot)
        if kind == "call":
            return self.call(node[1], node[2], dot)
        raise GoTemplateError(f"template: cannot evaluate {node!r}")

    def call(self, name: str, args: list, dot: Any) -> Any:
        if name in ("and", "or"):  # short-circuit, returning the deciding argument (Go >= 1.18)
            if not args:
                raise GoTemplateError(f"template: wrong number of args for {name}")
            value = None
            for arg in args:
                value = self.eval(arg, dot)
                if _truth(value) == (name == "or"):
                    return value
            return value
        vals = [self.eval(a, dot) for a in args]
        if name == "not":
            return not _truth(vals[0])
        if name in ("eq", "ne"):
            if len(vals) < 2:
                raise GoTemplateError(f"template: missing argument for comparison ({name})")
            same = any(vals[0] == v for v in vals[1:])
            return same if name == "eq" else not same
        if name in ("lt", "le", "gt", "ge"):
            a, b = vals
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[name]
        if name == "len":
            return len(vals[0] or [])
        if name == "index":
            value = vals[0]
            for key in vals[1:]:
                try:
                    value = value[key]
                except (IndexError, KeyError, TypeError):
                    raise GoTemplateError(
                        f"template: error calling index: index out of range: {key}"
                    ) from None
            return value
        if name == "slice":
            seq = vals[0]
            return seq[vals[1] : vals[2]] if len(vals) > 2 else seq[vals[1] :] if len(vals) > 1 else seq
        if name == "json":
            return json.dumps(vals[0], separators=(",", ":"))
        if name == "print":
            return "".join(_show(v) for v in vals)
        raise GoTemplateError(f'template: function "{name}" not defined')

    def run(self, nodes: list, dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                out.append(_show(self.eval(node.expr, dot)))
            elif isinstance(node, _Assign):
                self.vars[-1][node.name] = self.eval(node.expr, dot)
            elif isinstance(node, _If):
                for cond, body in node.branches:
                    if _truth(self.eval(cond, dot)):
                        self.vars.append({})
                        self.run(body, dot, out)
                        self.vars.pop()
                        break
                else:
                    self.vars.append({})
                    self.run(node.otherwise, dot, out)
                    self.vars.pop()
            elif isinstance(node, _Range):
                seq = self.eval(node.expr, dot) or []
                if not seq:
                    self.run(node.otherwise, dot, out)
                for i, item in enumerate(seq):
                    scope: dict[str, Any] = {}
                    if len(node.names) == 1:
                        scope[node.names[0]] = item
                    elif len(node.names) == 2:
                        scope[node.names[0]], scope[node.names[1]] = i, item
                    self.vars.append(scope)
                    self.run(node.body, item, out)
                    self.vars.pop()


def render_go(template: str | list, messages: Sequence[Message], *, system_in_messages: bool = True) -> str:
    """Render an Ollama Go template for a chat, as Ollama's ``template.Execute`` does for ``.Messages`` templates.

    ``system_in_messages=False`` renders as older Ollama versions did, whose collate step dropped system
    messages from ``.Messages`` (leaving them only in ``.System``). A template that never mentions
    ``.Messages`` (e.g. Ollama's fallback ``{{ .Prompt }}``) is rendered Ollama's legacy way: once per turn
    with ``.System``, ``.Prompt`` (the user's message) and ``.Response``.

    Raises:
        GoTemplateError: the template does not parse or fails to execute.
    """
    nodes = parse_go(template) if isinstance(template, str) else template
    if isinstance(template, str) and "Messages" not in template:
        return _render_legacy(nodes, messages)
    system: list[str] = []
    collated: list[_GoStruct] = []
    for m in messages:
        if m["role"] == "system":
            system.append(m["content"])
            if not system_in_messages:
                continue
        if collated and collated[-1]["Role"] == m["role"] and m["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append(
                _GoStruct(Role=m["role"], Content=m["content"], Thinking="", Images=None, ToolCalls=None)
            )
    root = {
        "System": "\n\n".join(system),
        "Messages": collated,
        "Tools": None,
        "Response": "",
        "Think": False,
        "IsThinkSet": False,
    }
    out: list[str] = []
    _Exec(root).run(nodes, root, out)
    return "".join(out)


def _render_legacy(nodes: list, messages: Sequence[Message]) -> str:
    """Ollama's path for templates without ``.Messages``: one execution per (system, prompt, response) turn.

    The last turn is executed with an empty ``.Response`` (Ollama also stops the last execution at
    ``{{ .Response }}``; the templates bakeoff derives always range over ``.Messages``, so they never come here).
    """
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def execute() -> None:
        root = {**turn, "Messages": None, "Tools": None, "Think": False, "IsThinkSet": False}
        _Exec(root).run(nodes, root, out)
        turn.update(System="", Prompt="", Response="")

    for m in messages:
        if m["role"] == "system":
            if turn["Prompt"] or turn["Response"]:
                execute()
            turn["System"] = m["content"]
        elif m["role"] == "user":
            if turn["Response"]:
                execute()
            turn["Prompt"] = m["content"]
        elif m["role"] == "assistant":
            turn["Response"] = m["content"]
    execute()
    return "".join(out)
