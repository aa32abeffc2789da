"""The derived Ollama templates rendered by Go's own ``text/template`` — the engine Ollama runs — not only by
bakeoff's interpreter (which the local Ollama stand-in also uses, so those two cannot disagree).

``tests/go_render/main.go`` applies Ollama's collate rule and executes each template the way Ollama's
``template.Execute`` does; it is built here with Debian's ``golang-go`` (``make test`` installs it, like
chromium for the browser test). Every model family the code knows × four conversations × both collate modes
(newer Ollama keeps system messages in ``.Messages``, older dropped them) must equal the Jinja rendering:
52 renders (Gemma has no system role, so its two system conversations are left out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_chat_template import DATE, FAMILIES, FIXTURES

from bakeoff.serving.ollama_template import derive_ollama_template, render_jinja

GO = shutil.which("go")
SOURCE = Path(__file__).parent / "go_render" / "main.go"
CONVERSATIONS = {
    "one question": [{"role": "user", "content": "When does the agreement start?"}],
    "system + question": [
        {"role": "system", "content": "You answer questions about a services agreement."},
        {"role": "user", "content": "When does the agreement start?"},
    ],
    "two turns": [
        {"role": "user", "content": "When does the agreement start?"},
        {"role": "assistant", "content": "On 1 March 2024."},
        {"role": "user", "content": "And how long is the initial term?"},
    ],
    "system + two turns": [
        {"role": "system", "content": "You answer questions about a services agreement."},
        {"role": "user", "content": "When does the agreement start?"},
        {"role": "assistant", "content": "On 1 March 2024."},
        {"role": "user", "content": "And how long is the initial term?"},
    ],
}

pytestmark = pytest.mark.skipif(
    GO is None, reason="Go is not installed (`apt-get install golang-go`; `make test` installs it)"
)


@pytest.fixture(scope="module")
def go_render(tmp_path_factory) -> Path:
    """The Go renderer, built offline into a temporary folder."""
    folder = tmp_path_factory.mktemp("go-render")
    env = {
        **os.environ,
        "GOCACHE": str(folder / "cache"),
        "GOPATH": str(folder / "gopath"),
        "GOPROXY": "off",
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    exe = folder / "render"
    proc = subprocess.run(
        [GO, "build", "-o", str(exe), str(SOURCE)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, f"go build failed: {proc.stderr}"
    return exe


def _families() -> dict[str, tuple[str, str, str, list[str], bool]]:
    """name -> (Jinja template, bos, eos, control tokens, add_bos): the test families plus the embedded model."""
    from bakeoff.models.embedded import gguf_path
    from bakeoff.serving.gguf_info import read_gguf_info

    out = {
        name: ((FIXTURES / file).read_text(), bos, eos, list(control), add_bos)
        for name, (file, bos, eos, control, add_bos, _, _) in FAMILIES.items()
    }
    info = read_gguf_info(gguf_path("smollm2-135m-instruct"))
    out["smollm2 (embedded)"] = (
        info.chat_template,
        info.bos_token,
        info.eos_token,
        list(info.control_tokens),
        info.add_bos,
    )
    return out


def _run_go(exe: Path, jobs: list[dict]) -> list[dict]:
    proc = subprocess.run([str(exe)], input=json.dumps(jobs), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_go_text_template_renders_every_derived_template_like_jinja(go_render):
    jobs, expected, labels = [], [], []
    for family, (chat_template, bos, eos, control, add_bos) in _families().items():
        derived = derive_ollama_template(
            chat_template, bos_token=bos, eos_token=eos, control_tokens=control, add_bos=add_bos, context=DATE
        )
        for title, messages in CONVERSATIONS.items():
            if not derived.system_role and any(m["role"] == "system" for m in messages):
                continue  # Gemma's Jinja template raises on a system message
            want = render_jinja(chat_template, messages, bos_token=bos, eos_token=eos, context=DATE)
            for system_in_messages in (True, False):
                jobs.append(
                    {
                        "template": derived.template,
                        "messages": messages,
                        "system_in_messages": system_in_messages,
                    }
                )
                expected.append((want, derived.bos_left_to_tokenizer))
                labels.append(f"{family} / {title} / system in .Messages: {system_in_messages}")
    results = _run_go(go_render, jobs)
    assert len(results) == len(jobs) == 52
    differing = []
    for label, result, (want, bos) in zip(labels, results, expected, strict=True):
        assert not result.get("error"), f"{label}: Go could not render the template: {result['error']}"
        if bos + result["output"] != want:
            differing.append(f"{label}: Go {result['output'][:80]!r} vs Jinja {want[:80]!r}")
    assert not differing, "\n".join(differing)


def test_go_renderer_is_ollamas_engine_not_a_copy_of_bakeoffs(go_render):
    """A sanity check that the Go side is real text/template: its own parse errors, Ollama's collate rule."""
    collate = "{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}|{{ .System }}"
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ]
    new, old, bad = _run_go(
        go_render,
        [
            {"template": collate, "messages": messages, "system_in_messages": True},
            {"template": collate, "messages": messages, "system_in_messages": False},
            {"template": "{{ range .Messages }}", "messages": [], "system_in_messages": True},
        ],
    )
    assert new["output"] == "[system:s][user:a\n\nb]|s"
    assert old["output"] == "[user:a\n\nb]|s"
    assert "unexpected EOF" in bad["error"]
