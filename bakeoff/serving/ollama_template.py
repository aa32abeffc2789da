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

The Go side is rendered by :func:`bakeoff.serving.go_template.render_go`, an interpreter of the
``text/template`` subset that Ollama's templates use, applied the way Ollama applies it.

Two known, documented gaps between the engines: Ollama's template language has no ``trim``, so a message whose
content starts or ends with whitespace may render differently from a Jinja template that trims; and a
template's leading BOS text (``<|begin_of_text|>``) is left to the tokenizer, which adds it when the GGUF says
``tokenizer.ggml.add_bos_token`` — exactly what Ollama and llama.cpp do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bakeoff.serving.go_template import Message, TemplateError, render_go

__all__ = [
    "SUPPORTED_FAMILIES",
    "OllamaTemplate",
    "TemplateError",
    "check_equivalence",
    "derive_ollama_template",
    "render_jinja",
]


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
    probe = _Probe(chat_template, bos_token=bos_token, eos_token=eos_token, add_bos=add_bos, context=context)
    turns = probe.turns(control_tokens)
    result = OllamaTemplate(
        _emit(turns),
        _stops(turns, eos_token, control_tokens),
        probe.family,
        turns.system_role,
        bos_token if probe.bos_by_tokenizer else "",
    )
    for convo in _checks(turns.system_role, extra_checks):
        check_equivalence(
            result, chat_template, convo, bos_token=bos_token, eos_token=eos_token, context=context
        )
    return result


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


@dataclass
class _Turns:
    """What probing a Jinja template found: the text around each kind of turn."""

    lead: str  # BOS text the Go template must print itself ("" when none, or when the tokenizer adds it)
    default_block: str  # printed when there is no system prompt (a default system turn); "" when none
    user_pre: str
    user_post: str
    asst_pre: str
    asst_post: str
    gen: str  # the generation prompt
    eot: str  # the end-of-turn token
    known: list[str]  # the candidate control tokens
    system_role: bool
    sys_pre: str = ""
    sys_post: str = ""


class _Probe:
    """Renders sentinel conversations with the Jinja template and reads the turns off the text."""

    def __init__(
        self,
        chat_template: str,
        *,
        bos_token: str,
        eos_token: str,
        add_bos: bool,
        context: Mapping[str, Any] | None,
    ) -> None:
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.context = context
        self.family = _family(chat_template)
        raw_b = self._render([_msg("user", _U1), _msg("assistant", _A1), _msg("user", _U2)])
        # A leading BOS *token* (printed once, e.g. Llama 3's <|begin_of_text|>) is the tokenizer's job when the
        # GGUF says add_bos_token, and must be printed by the Go template otherwise. A BOS text that is also a
        # turn marker (SmolLM2's bos_token is <|im_start|>) is part of the turns and not special-cased.
        self.leading_bos = bool(bos_token) and raw_b.startswith(bos_token) and raw_b.count(bos_token) == 1
        self.bos_by_tokenizer = self.leading_bos and add_bos

    def fail(self, why: str) -> TemplateError:
        return TemplateError(
            f"cannot derive an Ollama template from this chat template (family: {self.family}): {why}. "
            f"bakeoff supports {SUPPORTED_FAMILIES}; register the model with a hand-written template instead"
        )

    def _render(self, messages: list[dict[str, str]]) -> str:
        try:
            return render_jinja(
                self.chat_template,
                messages,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                context=self.context,
            )
        except TemplateError as exc:
            raise self.fail(str(exc)) from None

    def render(self, messages: list[dict[str, str]]) -> str:
        """The Jinja rendering as the Go template must print it (a BOS the tokenizer adds left out)."""
        out = self._render(messages)
        if self.bos_by_tokenizer and out.startswith(self.bos_token):
            out = out[len(self.bos_token) :]
        return out

    def turns(self, control_tokens: Sequence[str]) -> _Turns:
        a = self.render([_msg("user", _U1)])
        b = self.render([_msg("user", _U1), _msg("assistant", _A1), _msg("user", _U2)])
        for sentinel, text in ((_U1, a), (_U1, b), (_A1, b), (_U2, b)):
            if text.count(sentinel) != 1:
                raise self.fail(
                    f"a message's content appears {text.count(sentinel)} times in the rendering, not once"
                )
        # End of turn: the first control token after an assistant reply.
        after_a1 = b[b.index(_A1) + len(_A1) : b.index(_U2)]
        known = list(control_tokens) or [
            "<|im_end|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<|end|>",
            self.eos_token,
        ]
        found = sorted((after_a1.find(t), -len(t), t) for t in known if t and t in after_a1)
        if not found:
            raise self.fail(
                f"no end-of-turn token after an assistant reply (the template prints {after_a1!r} there)"
            )
        eot = found[0][2]
        head_user, after_u1 = a[: a.index(_U1)], a[a.index(_U1) + len(_U1) :]
        user_post, gen = _split_after_eot(after_u1, eot)
        mid1 = b[b.index(_U1) + len(_U1) : b.index(_A1)]
        if not mid1.startswith(user_post):
            raise self.fail("a user turn ends differently before a reply and before the generation prompt")
        asst_post, user_pre = _split_after_eot(after_a1, eot)
        if not head_user.endswith(user_pre):
            raise self.fail("the first user turn starts differently from later user turns")
        head = head_user[: len(head_user) - len(user_pre)]
        lead = (
            self.bos_token if self.leading_bos and not self.bos_by_tokenizer else ""
        )  # the template prints it
        turns = _Turns(
            lead=lead,
            default_block=head[len(lead) :],
            user_pre=user_pre,
            user_post=user_post,
            asst_pre=mid1[len(user_post) :],
            asst_post=asst_post,
            gen=gen,
            eot=eot,
            known=known,
            system_role=True,
        )
        self._system(turns)
        return turns

    def _system(self, turns: _Turns) -> None:
        """System messages: rendered as their own turn (their prefix and suffix), or refused (Gemma)."""
        try:
            c = self.render([_msg("system", _S), _msg("user", _U1)])
        except TemplateError:
            turns.system_role = False
            return
        if c.count(_S) != 1 or c.count(_U1) != 1 or c.index(_S) > c.index(_U1):
            raise self.fail(
                "the system message is not rendered as a turn of its own before the first user turn"
            )
        before_s, between = c[: c.index(_S)], c[c.index(_S) + len(_S) : c.index(_U1)]
        if not before_s.startswith(turns.lead) or not between.endswith(turns.user_pre):
            raise self.fail("the system turn is not followed by an ordinary user turn")
        turns.sys_pre = before_s[len(turns.lead) :]
        turns.sys_post = between[: len(between) - len(turns.user_pre)]


def _emit(t: _Turns) -> str:
    """The Go template for the turns.

    System prompts go through ``.System``, never through a system message inside the range: Ollama versions
    differ on whether ``.Messages`` still holds system messages after collating, but all set ``.System``.
    """
    parts = [_go_text(t.lead)] if t.lead else []
    if t.system_role:
        parts.append("{{ if .System }}" + _go_text(t.sys_pre) + "{{ .System }}" + _go_text(t.sys_post))
        parts.append(("{{ else }}" + _go_text(t.default_block) if t.default_block else "") + "{{ end }}")
    else:
        parts.append(_go_text(t.default_block))
        parts.append(
            "{{ if .System }}" + _go_text(t.user_pre) + "{{ .System }}" + _go_text(t.user_post) + "{{ end }}"
        )
    parts.append('{{ range .Messages }}{{ if eq .Role "user" }}')
    parts.append(_go_text(t.user_pre) + "{{ .Content }}" + _go_text(t.user_post))
    parts.append(
        '{{ else if eq .Role "assistant" }}' + _go_text(t.asst_pre) + "{{ .Content }}" + _go_text(t.asst_post)
    )
    parts.append("{{ end }}{{ end }}" + _go_text(t.gen))
    return "".join(parts)


def _stops(t: _Turns, eos_token: str, control_tokens: Sequence[str]) -> list[str]:
    """The stop sequences: the end-of-turn token, a control token that opens the next turn, and EOS."""
    stop = [t.eot]
    special_in_pre = sorted((t.user_pre.find(tok), tok) for tok in t.known if tok and tok in t.user_pre)
    if special_in_pre and special_in_pre[0][1] != t.eot:
        stop.append(special_in_pre[0][1])
    if eos_token and eos_token not in stop and (not control_tokens or eos_token in control_tokens):
        stop.append(eos_token)
    return stop


def _checks(system_role: bool, extra_checks: Sequence[Sequence[Message]]) -> list[list[dict[str, str]]]:
    """The conversations that must render identically: the probes, longer chats, and the caller's."""
    u1, a1, u2 = _msg("user", _U1), _msg("assistant", _A1), _msg("user", _U2)
    checks = [[u1], [u1, a1, u2], [u1, a1, u2, _msg("assistant", _A2), _msg("user", _U3)]]
    if system_role:
        checks += [[_msg("system", _S), u1], [_msg("system", _S), u1, a1, u2]]
    return checks + [[dict(m) for m in convo] for convo in extra_checks]


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
