"""Ollama Go templates derived from Jinja chat templates, proved equal by rendering both.

Fixtures are real chat templates: the embedded SmolLM2's (from its GGUF), and those of Llama 3 / 3.1 / 3.2,
Gemma 2, Phi-3.5, Qwen2.5 and Mistral Nemo (tests/fixtures/chat_templates, from llama.cpp's template collection
and Meta's Llama 3 tokenizer config). The Go renderer itself is checked against Ollama's own templates and the
outputs Ollama's tests expect.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bakeoff.serving.go_template import GoTemplateError, render_go
from bakeoff.serving.ollama_template import (
    TemplateError,
    check_equivalence,
    derive_ollama_template,
    render_jinja,
)

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
LLAMA3_CONTROL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
DATE = {"date_string": "26 Jul 2024"}

# name -> (template file, bos, eos, control tokens, add_bos, expected family, expected first stop)
FAMILIES = {
    "llama3": ("meta-llama-Meta-Llama-3-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", LLAMA3_CONTROL, True, "Llama 3", "<|eot_id|>"),
    "llama3.1": ("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", [*LLAMA3_CONTROL, "<|eom_id|>"], True, "Llama 3", "<|eot_id|>"),
    "llama3.2": ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", [*LLAMA3_CONTROL, "<|eom_id|>"], True, "Llama 3", "<|eot_id|>"),
    "gemma2": ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], True, "Gemma", "<end_of_turn>"),
    "phi3.5": ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>", ["<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"], True, "Phi-3", "<|end|>"),
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], False, "ChatML", "<|im_end|>"),
}  # fmt: skip

TWO_TURNS = [
    {"role": "system", "content": "You answer questions about a services agreement."},
    {"role": "user", "content": "When does the agreement start?"},
    {"role": "assistant", "content": "On 1 March 2024."},
    {"role": "user", "content": "And how long is the initial term?"},
]


@pytest.fixture(scope="module")
def smollm2():
    """The embedded model's real chat template and tokens, read from the GGUF the package ships."""
    from bakeoff.models.embedded import gguf_path
    from bakeoff.serving.gguf_info import read_gguf_info

    return read_gguf_info(gguf_path("smollm2-135m-instruct"))


def _derive(name: str):
    file, bos, eos, control, add_bos, _, _ = FAMILIES[name]
    template = (FIXTURES / file).read_text()
    derived = derive_ollama_template(
        template, bos_token=bos, eos_token=eos, control_tokens=control, add_bos=add_bos, context=DATE
    )
    return template, derived, bos, eos


def test_embedded_model_chatml_two_turns_render_identically(smollm2):
    derived = derive_ollama_template(
        smollm2.chat_template,
        bos_token=smollm2.bos_token,
        eos_token=smollm2.eos_token,
        control_tokens=smollm2.control_tokens,
        add_bos=smollm2.add_bos,
    )
    assert derived.family == "ChatML"
    assert derived.stop[:2] == ["<|im_end|>", "<|im_start|>"]
    for convo in (TWO_TURNS, TWO_TURNS[1:]):  # with a system prompt, and with SmolLM2's default one
        jinja = render_jinja(
            smollm2.chat_template, convo, bos_token=smollm2.bos_token, eos_token=smollm2.eos_token
        )
        assert render_go(derived.template, convo) == jinja
    assert "You are a helpful AI assistant named SmolLM" in render_go(derived.template, TWO_TURNS[1:])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_two_turns_render_identically(name):
    template, derived, bos, eos = _derive(name)
    assert derived.family == FAMILIES[name][5]
    assert derived.stop[0] == FAMILIES[name][6]
    convo = TWO_TURNS if derived.system_role else TWO_TURNS[1:]
    jinja = render_jinja(template, convo, bos_token=bos, eos_token=eos, context=DATE)
    go = render_go(derived.template, convo)
    # A leading BOS is the tokenizer's job in llama.cpp/Ollama (add_bos_token), not the template's.
    assert derived.bos_left_to_tokenizer + go == jinja
    assert check_equivalence(derived, template, convo, bos_token=bos, eos_token=eos, context=DATE) == jinja


def test_llama31_bakes_its_dated_system_header():
    _, derived, _, _ = _derive("llama3.1")
    out = render_go(derived.template, TWO_TURNS[1:])
    assert out.startswith(
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
    )
    assert "Today Date: 26 Jul 2024" in out


def test_gemma_has_no_system_role_and_keeps_a_system_prompt_as_a_user_turn():
    _, derived, _, _ = _derive("gemma2")
    assert not derived.system_role
    out = render_go(derived.template, TWO_TURNS)
    assert out.startswith(
        "<start_of_turn>user\nYou answer questions about a services agreement.<end_of_turn>\n"
    )


def test_mistral_is_refused_with_the_reason():
    template = (FIXTURES / "mistralai-Mistral-Nemo-Instruct-2407.jinja").read_text()
    with pytest.raises(TemplateError) as exc:
        derive_ollama_template(template, bos_token="<s>", eos_token="</s>", control_tokens=["<s>", "</s>"])
    msg = str(exc.value)
    assert "family: Mistral" in msg and "system" in msg and "hand-written template" in msg


def test_missing_chat_template_is_a_template_error():
    with pytest.raises(TemplateError, match="no chat template"):
        derive_ollama_template("")


def test_a_template_that_prints_content_twice_is_refused():
    template = "{% for m in messages %}{{ m.content }}|{{ m.content }}\n{% endfor %}"
    with pytest.raises(TemplateError, match="appears 2 times"):
        derive_ollama_template(template)


@settings(max_examples=40, deadline=None)
@given(
    contents=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
        .map(str.strip)
        .filter(bool),
        min_size=1,
        max_size=5,
    )
)
def test_chatml_equivalence_holds_for_arbitrary_trimmed_contents(smollm2, contents):
    derived = derive_ollama_template(
        smollm2.chat_template,
        bos_token=smollm2.bos_token,
        eos_token=smollm2.eos_token,
        control_tokens=smollm2.control_tokens,
    )
    convo = [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(contents)]
    if convo[-1]["role"] == "assistant":
        convo.append({"role": "user", "content": "next"})
    assert render_go(derived.template, convo) == render_jinja(
        smollm2.chat_template, convo, bos_token=smollm2.bos_token, eos_token=smollm2.eos_token
    )


# -- the Go renderer against Ollama's own templates and expected outputs ------------------------------------
OLLAMA_CHATML = (
    "{{- if .Messages }}\n{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n{{ else -}}\n{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
    "{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    "{{ .Response }}<|im_end|>\n{{- end -}}"
)
OLLAMA_LLAMA3 = (
    "{{- if .Messages }}\n{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>\n"
    "{{- end }}\n{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ else -}}\n{{ if .System }}<|start_header_id|>system"
    "<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n"
    "{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>\n"
    "{{- end -}}"
)
OLLAMA_TEST_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]


def test_go_renderer_matches_ollamas_expected_chatml_output():
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\n"
        "I'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_go(OLLAMA_CHATML, OLLAMA_TEST_CHAT) == expected


def test_go_renderer_matches_ollamas_expected_llama3_output():
    expected = (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI'm doing "
        "great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nI'd like to show off "
        "how chat templating works!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # Older Ollama dropped system messages from .Messages (leaving .System), which this template expects.
    assert render_go(OLLAMA_LLAMA3, OLLAMA_TEST_CHAT, system_in_messages=False) == expected


def test_go_renderer_matches_ollamas_mistral_messages_case():
    template = (
        '[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role "user" }}'
        '{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n{{- end }}'
    )
    messages = [
        {"role": "system", "content": "You are a helpful assistant!"},
        {"role": "user", "content": "Hello friend!"},
        {"role": "assistant", "content": "Hello human!"},
        {"role": "user", "content": "What is your name?"},
    ]
    expected = "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] "
    assert render_go(template, messages) == expected


def test_go_renderer_collates_like_ollama_and_supports_range_variables():
    template = (
        "{{- range $i, $m := .Messages }}{{ $i }}:{{ $m.Role }}={{ .Content }};{{ end }}{{ len .Messages }}"
    )
    out = render_go(template, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert out == "0:user=a\n\nb;1"


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ .Content ", "unclosed action"),
        ("{{ if .System }}x", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ trim .Content }}", 'function "trim" not defined'),
        ("{{ range .Messages }}{{ .Nope }}{{ end }}", "can't evaluate field Nope"),
    ],
)
def test_go_template_errors_are_reported(template, fragment):
    with pytest.raises(GoTemplateError) as exc:
        render_go(template, [{"role": "user", "content": "hi"}])
    assert fragment in str(exc.value)
