"""Ollama chat templates derived from a model's Jinja chat template — and proved equal by rendering both.

Ollama never runs Jinja: a model's ``TEMPLATE`` is a Go ``text/template`` that Ollama executes over the chat
messages. When a GGUF arrives without one, Ollama guesses a built-in template by string distance and otherwise
falls back to ``{{ .Prompt }}``: the roles vanish and a fine-tune answers garbage. So bakeoff writes the Go
template itself:

1. **Probe** — the Jinja template is rendered (with transformers' own renderer, the one ``apply_chat_template``
   uses) for a few conversations whose contents are sentinels; the text around the sentinels gives, per role,
   the prefix and suffix of a turn, the generation prompt, a default system block and the end-of-turn token.
2. **Emit** — a small Go template built from those pieces (:func:`derive_ollama_template`).
3. **Prove** — both templates are rendered for the probe conversations and for every conversation the caller
   adds (tests use real chat templates of ChatML, Llama 3, Gemma and Phi-3 models); any difference is a
   :class:`TemplateError` naming the first differing character. Nothing is guessed: a template that this
   turn-based model cannot express (e.g. Mistral's, which folds the system prompt into the last user turn)
   is refused with the reason.

The Go side is rendered by :func:`render_go`, a small interpreter of the ``text/template`` subset that Ollama's
templates use (text, ``{{ .Field }}``, ``if``/``else if``/``else``, ``range`` with variables, ``eq``/``ne``/
``and``/``or``/``not``/``index``/``len``/``slice``, trim markers), applied the way Ollama applies it
(``template.Execute``: consecutive messages of one role are merged with a blank line, ``.System`` joins the
system messages, ``missingkey=zero``).

Two known, documented gaps between the engines: Ollama's template language has no ``trim``, so a message whose
content starts or ends with whitespace may render differently from a Jinja template that trims; and a
template's leading BOS text (``<|begin_of_text|>``) is left to the tokenizer, which adds it when the GGUF says
``tokenizer.ggml.add_bos_token`` — exactly what Ollama and llama.cpp do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bakeoff.errors import BakeoffError

__all__ = [
    "GoTemplateError",
    "OllamaTemplate",
    "TemplateError",
    "derive_ollama_template",
    "parse_go",
    "render_go",
    "render_jinja",
]

Message = Mapping[str, str]


class TemplateError(BakeoffError):
    """A chat template cannot be turned into an equivalent Ollama template; the message says why."""


class GoTemplateError(TemplateError):
    """A Go template does not parse or cannot be executed (Ollama would answer 400 ``template error``)."""


# ---------------------------------------------------------------------------------------------------------
# Jinja side
# ---------------------------------------------------------------------------------------------------------
def render_jinja(
    chat_template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    context: Mapping[str, Any] | None = None,
) -> str:
    """Render a Hugging Face chat template exactly as ``tokenizer.apply_chat_template`` does.

    Raises:
        TemplateError: the template raised (e.g. ``raise_exception('System role not supported')``).
    """
    import jinja2
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(
            conversations=[[dict(m) for m in messages]],
            chat_template=chat_template,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
            **dict(context or {}),
        )
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template refused the conversation: {exc}") from None
    return rendered[0]


# ---------------------------------------------------------------------------------------------------------
# Go side: a parser and interpreter for the text/template subset Ollama templates use
# ---------------------------------------------------------------------------------------------------------
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


def parse_go(template: str) -> list:
    """Parse a Go template into a node list.

    Raises:
        GoTemplateError: a syntax error, an unknown function or an unsupported construct, with position.
    """
    # Split into text and actions, applying trim markers ("{{- " trims whitespace before, " -}}" after).
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

    root: list = []
    # Each frame: (the if/range node or None for the root, the list new nodes go to, whether past {{else}}).
    stack: list[tuple[Any, list, bool]] = [(None, root, False)]
    for kind, value, where in pieces:
        target = stack[-1][1]
        if kind == "text":
            target.append(_Text(value))
            continue
        src = value.strip()
        loc = f":{where}"
        if src.startswith("/*"):
            if not src.endswith("*/"):
                raise GoTemplateError(f"template: {loc}: unclosed comment")
            continue
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
            raise GoTemplateError(
                f"template: {loc}: {{{{{head[1]}}}}} is not supported by bakeoff's renderer"
            )
        elif head[0] == "var" and len(toks) > 1 and toks[1][0] == "assign":
            target.append(_Assign(head[1], _ExprParser(toks[2:], loc).pipeline()))
        else:
            target.append(_Action(_ExprParser(toks, loc).pipeline()))
    if len(stack) > 1:
        raise GoTemplateError("template: :1: unexpected EOF (an {{if}} or {{range}} has no {{end}})")
    return root


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
    messages from ``.Messages`` (leaving them only in ``.System``).

    Raises:
        GoTemplateError: the template does not parse or fails to execute.
    """
    nodes = parse_go(template) if isinstance(template, str) else template
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


# ---------------------------------------------------------------------------------------------------------
# Derivation
# ---------------------------------------------------------------------------------------------------------
_FAMILIES = (
    ("ChatML", "<|im_start|>"),
    ("Llama 3", "<|start_header_id|>"),
    ("Gemma", "<start_of_turn>"),
    ("Phi-3", "<|assistant|>"),
    ("Mistral", "[INST]"),
    ("Llama 2", "[INST]"),
)
SUPPORTED_FAMILIES = "ChatML (SmolLM2, Qwen), Llama 3, Gemma, Phi-3 and other turn-based templates"

# Sentinels: plain ASCII words that survive `| trim` and never occur in a template.
_S, _U1, _A1, _U2, _A2, _U3 = (
    f"Zq{w}qZ" for w in ("SYSTEM", "USERONE", "ASSISTONE", "USERTWO", "ASSISTTWO", "USERTHREE")
)


@dataclass(frozen=True)
class OllamaTemplate:
    """An Ollama Go template with the stop sequences that end a turn.

    Attributes:
        template: the Go template for ``/api/create``'s ``template``.
        stop: strings for ``parameters.stop`` (end of turn first).
        family: the chat format recognised by its markers (for messages only; equality is proved, not assumed).
        system_role: whether the Jinja template accepts a system message (Gemma's does not; its Go template
            then renders a system message as a user turn, as Ollama's own Gemma template does).
        bos_left_to_tokenizer: the BOS text the Jinja template starts with, which llama.cpp/Ollama add as a
            token instead (``add_bos_token``); empty when none.
    """

    template: str
    stop: list[str]
    family: str
    system_role: bool
    bos_left_to_tokenizer: str = ""


def _family(chat_template: str) -> str:
    for name, marker in _FAMILIES:
        if marker in chat_template:
            return name
    return "unknown"


def _go_text(text: str) -> str:
    """Literal text for a Go template (as a quoted action if it would otherwise open an action)."""
    if "{{" in text or "}}" in text:
        return "{{ " + json.dumps(text) + " }}"
    return text


def _split_after_eot(text: str, eot: str) -> tuple[str, str]:
    """Split at the end-of-turn token: (up to and including it plus the whitespace after it, the rest)."""
    idx = text.find(eot)
    if idx < 0:
        return "", text
    end = idx + len(eot)
    while end < len(text) and text[end] in " \t\r\n":
        end += 1
    return text[:end], text[end:]


def derive_ollama_template(
    chat_template: str,
    *,
    bos_token: str = "",
    eos_token: str = "",
    control_tokens: Sequence[str] = (),
    add_bos: bool = False,
    context: Mapping[str, Any] | None = None,
    extra_checks: Sequence[Sequence[Message]] = (),
) -> OllamaTemplate:
    """Build an Ollama Go template equivalent to a Jinja chat template, and prove the equivalence.

    Args:
        chat_template: the model's Jinja chat template (``tokenizer.chat_template`` of the GGUF).
        bos_token, eos_token: the token texts the template may print.
        control_tokens: the model's special (control) token texts; the end-of-turn token is the first of them
            after an assistant reply. Known end-of-turn markers are used when empty.
        add_bos: whether the tokenizer adds BOS itself (``tokenizer.ggml.add_bos_token``); then a leading
            ``bos_token`` in the Jinja output is left to it.
        context: extra template variables (e.g. ``date_string`` for Llama 3.1 templates).
        extra_checks: more conversations that must render identically.

    Returns:
        The Go template and its stop sequences.

    Raises:
        TemplateError: no chat template, or one this turn-based model cannot express; the message names the
            family, the conversation and the first differing character.
    """
    if not chat_template or not chat_template.strip():
        raise TemplateError(
            "the model has no chat template (tokenizer.chat_template); without one Ollama falls back to "
            "'{{ .Prompt }}' and the roles are lost — export from a model folder whose tokenizer has a chat template"
        )
    family = _family(chat_template)

    def fail(why: str) -> TemplateError:
        return TemplateError(
            f"cannot derive an Ollama template from this chat template (family: {family}): {why}. "
            f"bakeoff supports {SUPPORTED_FAMILIES}; register the model with a hand-written template instead"
        )

    def msg(role: str, content: str) -> dict[str, str]:
        return {"role": role, "content": content}

    def raw(messages: list[dict[str, str]]) -> str:
        return render_jinja(
            chat_template, messages, bos_token=bos_token, eos_token=eos_token, context=context
        )

    try:
        raw_b = raw([msg("user", _U1), msg("assistant", _A1), msg("user", _U2)])
    except TemplateError as exc:
        raise fail(str(exc)) from None
    # A leading BOS *token* (printed once, e.g. Llama 3's <|begin_of_text|>) is the tokenizer's job when the GGUF
    # says add_bos_token, and must be printed by the Go template otherwise. A BOS text that is also a turn
    # marker (SmolLM2's bos_token is <|im_start|>) is part of the turns and not special-cased.
    leading_bos = bool(bos_token) and raw_b.startswith(bos_token) and raw_b.count(bos_token) == 1
    bos_by_tokenizer = leading_bos and add_bos

    def jr(messages: list[dict[str, str]]) -> str:
        out = raw(messages)
        if bos_by_tokenizer and out.startswith(bos_token):
            out = out[len(bos_token) :]
        return out

    try:
        a = jr([msg("user", _U1)])
        b = jr([msg("user", _U1), msg("assistant", _A1), msg("user", _U2)])
    except TemplateError as exc:
        raise fail(str(exc)) from None
    for sentinel, text in ((_U1, a), (_U1, b), (_A1, b), (_U2, b)):
        if text.count(sentinel) != 1:
            raise fail(f"a message's content appears {text.count(sentinel)} times in the rendering, not once")

    # End of turn: the first control token after an assistant reply.
    after_a1 = b[b.index(_A1) + len(_A1) : b.index(_U2)]
    known = list(control_tokens) or ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", eos_token]
    found = sorted((after_a1.find(t), -len(t), t) for t in known if t and t in after_a1)
    if not found:
        raise fail(f"no end-of-turn token after an assistant reply (the template prints {after_a1!r} there)")
    eot = found[0][2]

    head_user, after_u1 = a[: a.index(_U1)], a[a.index(_U1) + len(_U1) :]
    user_post, gen = _split_after_eot(after_u1, eot)
    mid1 = b[b.index(_U1) + len(_U1) : b.index(_A1)]
    if not mid1.startswith(user_post):
        raise fail("a user turn ends differently before a reply and before the generation prompt")
    asst_pre = mid1[len(user_post) :]
    asst_post, user_pre = _split_after_eot(after_a1, eot)
    if not head_user.endswith(user_pre):
        raise fail("the first user turn starts differently from later user turns")
    head = head_user[: len(head_user) - len(user_pre)]

    lead = bos_token if leading_bos and not bos_by_tokenizer else ""  # the template must print it

    # System messages: rendered as their own turn, or refused (Gemma).
    system_role = True
    try:
        c = jr([msg("system", _S), msg("user", _U1)])
    except TemplateError:
        system_role = False
    sys_pre = sys_post = ""
    if system_role:
        if c.count(_S) != 1 or c.count(_U1) != 1 or c.index(_S) > c.index(_U1):
            raise fail("the system message is not rendered as a turn of its own before the first user turn")
        before_s, between = c[: c.index(_S)], c[c.index(_S) + len(_S) : c.index(_U1)]
        if not before_s.startswith(lead) or not between.endswith(user_pre):
            raise fail("the system turn is not followed by an ordinary user turn")
        sys_pre = before_s[len(lead) :]
        sys_post = between[: len(between) - len(user_pre)]
    default_block = head[len(lead) :]

    # System prompts go through .System, never through a system message inside the range: Ollama versions
    # differ on whether .Messages still holds system messages after collating, but all set .System.
    parts = [_go_text(lead)] if lead else []
    if system_role:
        parts.append("{{ if .System }}" + _go_text(sys_pre) + "{{ .System }}" + _go_text(sys_post))
        parts.append(("{{ else }}" + _go_text(default_block) if default_block else "") + "{{ end }}")
    else:
        parts.append(_go_text(default_block))
        parts.append(
            "{{ if .System }}" + _go_text(user_pre) + "{{ .System }}" + _go_text(user_post) + "{{ end }}"
        )
    parts.append('{{ range .Messages }}{{ if eq .Role "user" }}')
    parts.append(_go_text(user_pre) + "{{ .Content }}" + _go_text(user_post))
    parts.append(
        '{{ else if eq .Role "assistant" }}' + _go_text(asst_pre) + "{{ .Content }}" + _go_text(asst_post)
    )
    parts.append("{{ end }}{{ end }}" + _go_text(gen))
    template = "".join(parts)

    stop = [eot]
    special_in_pre = sorted((user_pre.find(t), t) for t in known if t and t in user_pre)
    if special_in_pre and special_in_pre[0][1] != eot:
        stop.append(special_in_pre[0][1])
    if eos_token and eos_token not in stop and (not control_tokens or eos_token in control_tokens):
        stop.append(eos_token)

    checks: list[list[dict[str, str]]] = [
        [msg("user", _U1)],
        [msg("user", _U1), msg("assistant", _A1), msg("user", _U2)],
        [msg("user", _U1), msg("assistant", _A1), msg("user", _U2), msg("assistant", _A2), msg("user", _U3)],
    ]
    if system_role:
        checks += [
            [msg("system", _S), msg("user", _U1)],
            [msg("system", _S), msg("user", _U1), msg("assistant", _A1), msg("user", _U2)],
        ]
    checks += [[dict(m) for m in convo] for convo in extra_checks]
    result = OllamaTemplate(template, stop, family, system_role, bos_token if bos_by_tokenizer else "")
    for convo in checks:
        check_equivalence(
            result, chat_template, convo, bos_token=bos_token, eos_token=eos_token, context=context
        )
    return result


def check_equivalence(
    derived: OllamaTemplate,
    chat_template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    context: Mapping[str, Any] | None = None,
) -> str:
    """Render one conversation with both templates; return the rendering, or raise on any difference.

    The Jinja rendering's leading BOS text is compared as the token the tokenizer adds
    (``derived.bos_left_to_tokenizer``).

    Raises:
        TemplateError: the renderings differ (with the position and both excerpts).
    """
    expected = render_jinja(
        chat_template, messages, bos_token=bos_token, eos_token=eos_token, context=context
    )
    for system_in_messages in (True, False):  # newer and older Ollama collate steps
        got = derived.bos_left_to_tokenizer + render_go(
            derived.template, messages, system_in_messages=system_in_messages
        )
        if got != expected:
            at = next(
                (i for i, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y),
                min(len(got), len(expected)),
            )
            roles = "/".join(m["role"] for m in messages)
            raise TemplateError(
                f"the derived Ollama template ({derived.family}) renders a {roles} conversation differently from "
                f"the chat template at character {at}: Jinja {expected[max(0, at - 20) : at + 40]!r} vs Go "
                f"{got[max(0, at - 20) : at + 40]!r}"
            )
    return expected
