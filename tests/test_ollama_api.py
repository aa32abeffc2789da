"""The Ollama client, registration and the ``ollama:`` backend against a local fake Ollama server
(tests/fake_ollama.py: real status codes, NDJSON streaming, error lines after HTTP 200, malformed requests
rejected). The same flows run against a real server in tests/test_ollama_live.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import httpx
import ollama
import pytest
from fake_ollama import FakeOllama, Reply
from gguf_fixtures import CANDIDATE, tiny_gguf
from ollama_flows import QUESTION, flow_missing_model, flow_register_chat_remove, flow_version

from bakeoff.core import GenerationSettings
from bakeoff.models.generators import BackendError
from bakeoff.serving.export import file_sha256
from bakeoff.serving.ollama import (
    OllamaError,
    OllamaServer,
    OllamaUnreachable,
    OllamaVersionError,
    resolve_host,
)
from bakeoff.serving.register import RegistrationError, plan_registration, register_gguf


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_shared_flows_pass_against_the_fake(fake, gguf):
    assert flow_version(fake.url) == "0.12.6"
    flow_missing_model(fake.url)
    result = flow_register_chat_remove(fake.url, gguf, "tiny-chat")
    assert result["first"].uploaded and result["first"].template_family == "ChatML"
    # The protocol, in order: version first, HEAD before upload, create with files + template + stop.
    seen = [(m, p) for m, p, _ in fake.requests]
    first_head = seen.index(("HEAD", f"/api/blobs/sha256:{file_sha256(gguf)}"))
    assert (
        seen.index(("GET", "/api/version"))
        < first_head
        < seen.index(("POST", f"/api/blobs/sha256:{file_sha256(gguf)}"))
    )
    [create, _again] = fake.calls("POST", "/api/create")
    assert create["files"] == {"tiny.gguf": f"sha256:{file_sha256(gguf)}"}
    assert create["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert (
        "{{ range .Messages }}" in create["template"]
        and "quantize" not in create
        and "adapters" not in create
    )
    assert len(fake.calls("POST", "/api/blobs")) == 1  # the re-registration did not upload again


def test_host_resolution_order(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:5000")
    assert resolve_host() == "http://gpu-box:5000"
    assert resolve_host("http://recipe-host:11434") == "http://recipe-host:11434"  # the recipe's key wins
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_host() == "http://127.0.0.1:11434"


def test_unreachable_server_is_one_clear_sentence():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with OllamaServer(f"127.0.0.1:{port}") as server, pytest.raises(OllamaUnreachable) as exc:
        server.version()
    msg = str(exc.value)
    assert (
        f"cannot reach Ollama at http://127.0.0.1:{port}" in msg
        and "ollama serve" in msg
        and "OLLAMA_HOST" in msg
    )


def test_old_server_is_refused_before_anything_is_uploaded(gguf):
    with FakeOllama(version="0.5.1") as fake, OllamaServer(fake.url) as server:
        with pytest.raises(OllamaVersionError) as exc:
            register_gguf(plan_registration(gguf, "tiny"), server)
        msg = str(exc.value)
        assert (
            "version 0.5.1" in msg
            and "only a Modelfile" in msg
            and "0.5.5 or newer" in msg
            and fake.url in msg
        )
        assert not fake.calls("POST", "/api/blobs") and not fake.calls("POST", "/api/create")


def test_server_without_version_endpoint(gguf):
    with (
        FakeOllama(version=None) as fake,
        OllamaServer(fake.url) as server,
        pytest.raises(OllamaVersionError) as exc,
    ):
        server.version()
    assert "predates" in str(exc.value)


def test_http_errors_before_streaming_carry_status_and_reason(fake, gguf):
    with OllamaServer(fake.url) as server:
        digest = f"sha256:{file_sha256(gguf)}"
        server.push_blob(gguf, digest)
        with pytest.raises(ollama.ResponseError) as raw:  # the official client, untranslated
            server.client.create(model="q", files={"m.gguf": digest}, quantize="q4_K_M")
        assert raw.value.status_code == 400 and raw.value.error.startswith("create-time quantization")
        for files, fragment in (
            ({"m.gguf": "sha256:abc"}, "invalid digest for m.gguf"),
            ({"m.gguf": "sha256:" + "0" * 64}, "blob not found for m.gguf"),
            ({"../m.gguf": digest}, "file path must be relative"),
        ):
            with pytest.raises(OllamaError) as exc:
                server.create("bad", files=files)
            assert fragment in str(exc.value) and "HTTP 400" in str(exc.value)
        with pytest.raises(ollama.ResponseError, match="neither 'from' or 'files' was specified"):
            server.client.create(model="nothing")
    # Malformed requests never reach a handler.
    assert httpx.post(f"{fake.url}/api/create", content=b"{not json").status_code == 400
    resp = httpx.post(f"{fake.url}/api/show", content=b"")
    assert resp.status_code == 400 and resp.json() == {"error": "missing request body"}
    assert (
        httpx.post(f"{fake.url}/api/blobs/sha256:{'1' * 64}", content=b"x")
        .json()["error"]
        .startswith("digest mismatch")
    )


def test_errors_after_streaming_started_arrive_as_error_lines(fake, tmp_path):
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 definitely not a GGUF file")
    with OllamaServer(fake.url) as server:
        digest = f"sha256:{file_sha256(not_gguf)}"
        server.push_blob(not_gguf, digest)
        statuses: list[str] = []
        with pytest.raises(OllamaError) as exc:
            server.create("broken", files={"weights.gguf": digest}, on_status=statuses.append)
        assert "while streaming: supplied file was not in GGUF format" in str(exc.value)
        assert statuses == ["parsing GGUF"]  # HTTP 200 and a status line came first
    raw = httpx.post(f"{fake.url}/api/create", json={"model": "broken", "files": {"weights.gguf": digest}})
    assert (
        raw.status_code == 200
        and raw.text.strip().splitlines()[-1] == '{"error": "supplied file was not in GGUF format"}'
    )


def test_go_template_that_does_not_parse_is_a_streamed_template_error(fake, gguf):
    with OllamaServer(fake.url) as server:
        digest = f"sha256:{file_sha256(gguf)}"
        server.push_blob(gguf, digest)
        with pytest.raises(OllamaError, match="while streaming: template error"):
            server.create("t", files={"tiny.gguf": digest}, template="{{ if .System }}unterminated")
        assert not server.exists("t")


def test_failure_after_the_manifest_deletes_the_model(gguf):
    with FakeOllama(faults={"create_error_after_manifest": "failed to prune old layers"}) as fake:
        with OllamaServer(fake.url) as server, pytest.raises(RegistrationError) as exc:
            register_gguf(plan_registration(gguf, "half"), server)
        msg = str(exc.value)
        assert "while streaming: failed to prune old layers" in msg and "deleted again" in msg
        assert "half:latest" not in fake.models


def test_server_that_changes_the_template_is_caught_and_rolled_back(gguf):
    with FakeOllama(faults={"store_template": "{{ .Prompt }}"}) as fake:
        with OllamaServer(fake.url) as server, pytest.raises(RegistrationError) as exc:
            register_gguf(plan_registration(gguf, "guessed"), server)
        assert "different template" in str(exc.value) and "deleted again" in str(exc.value)
        assert not fake.models


def test_empty_smoke_reply_is_caught_and_rolled_back(gguf):
    with FakeOllama(responder=lambda *a: Reply("")) as fake:
        with OllamaServer(fake.url) as server, pytest.raises(RegistrationError, match="empty reply"):
            register_gguf(plan_registration(gguf, "mute"), server)
        assert not fake.models


def test_existing_name_needs_replace(fake, gguf):
    fake.add_model("taken")
    with OllamaServer(fake.url) as server:
        with pytest.raises(RegistrationError, match="already has a model 'taken'.*--replace"):
            register_gguf(plan_registration(gguf, "taken"), server)
        assert fake.models["taken:latest"]["template"] != plan_registration(gguf, "taken").template.template
        register_gguf(plan_registration(gguf, "taken"), server, replace=True)
        assert fake.models["taken:latest"]["parameters"]["stop"][0] == "<|im_end|>"


def test_ollama_backend_generates_streams_and_reports_errors(fake):
    from bakeoff.models.ollama_backend import OllamaGenerator

    fake.add_model("mistral:7b")
    gen = OllamaGenerator("mistral:7b", host=fake.url)
    outs = gen.generate([QUESTION] * 3, GenerationSettings(max_new_tokens=4, batch_size=3))
    assert [o.text for o in outs] == ["Hello from the fake"] * 3
    assert all(o.truncated and o.completion_tokens == 4 and o.prompt_tokens > 0 for o in outs)
    [chat] = fake.calls("POST", "/api/chat")[:1]
    assert chat["options"] == {"num_predict": 4, "temperature": 0.0, "seed": 0}
    assert "".join(gen.stream(QUESTION, GenerationSettings())).startswith("Hello from the fake Ollama server")
    fake.faults["chat_error_after_chunks"] = 2
    with pytest.raises(
        BackendError, match="while streaming: an error was encountered while running the model"
    ):
        list(gen.stream(QUESTION, GenerationSettings()))
    del fake.models["mistral:7b"]
    [missing] = gen.generate([QUESTION], GenerationSettings())
    assert "has no model 'mistral:7b'" in missing.error and "ollama pull mistral:7b" in missing.error


def test_ollama_embeddings_through_the_official_client(fake):
    from bakeoff.models.embeddings import EmbeddingError, OllamaEmbedder

    fake.add_model("nomic-embed-text", embedding_dim=8)
    emb = OllamaEmbedder("nomic-embed-text", host=fake.url)
    vecs = emb.embed(["a contract", "an annex"])
    assert len(vecs) == 2 and emb.dimension == 8
    assert all(abs(sum(v * v for v in vec) - 1) < 1e-9 for vec in vecs)
    with pytest.raises(EmbeddingError, match="has no model 'all-minilm'"):
        OllamaEmbedder("all-minilm", host=fake.url).embed(["x"])


def test_fewshot_candidate_with_an_ollama_model_runs_from_a_recipe(fake, tmp_path, root):
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_answers, read_run

    fake.add_model("mistral:7b")
    text = f"""\
name: ollama-fewshot
ollama_host: {fake.url}
eval:
  questions: {root}/data/contract-qa.jsonl
  limit: 3
candidates:
  - name: mistral-3shot
    agent: fewshot
    model: ollama:mistral:7b
    k: 3
    examples: {root}/data/contract-examples.jsonl
"""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(text)
    run = run_recipe(load_recipe(recipe_file), recipe_text=text, runs_dir=tmp_path / "runs")
    info = read_run(run)
    assert info.status == "complete"
    assert info.manifest["candidates"]["mistral-3shot"]["model"] == "ollama:mistral:7b"
    rows = read_answers(run)
    assert len(rows) == 3 and all(
        r["answer"].startswith("Hello from the fake") and not r["error"] for r in rows
    )
    sent = fake.calls("POST", "/api/chat")[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant"] * 1 + ["user", "assistant"] * 2 + [
        "user"
    ]


def test_recipe_register_key_registers_after_training(fake, tmp_path, root, finetuned_run, exported_f16):
    """A candidate whose settings carry the `register:` mixin is exported and registered during the run."""
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    text = f"""\
name: ft-register
ollama_host: {fake.url}
eval:
  questions: {root}/data/contract-qa.jsonl
  limit: 1
candidates:
  - name: {CANDIDATE}
    agent: toy_finetune:ToyFinetuneAgent
    source_run: {finetuned_run}
    register: {{ollama: contract-lora, quantize: f16}}
"""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(text)
    recipe = load_recipe(recipe_file)
    assert recipe.candidates[0].ollama_registration.ollama == "contract-lora"
    run = run_recipe(recipe, recipe_text=text, runs_dir=tmp_path / "runs")
    info = read_run(run)
    reg = info.manifest["ollama"][CANDIDATE]
    assert reg["name"] == "contract-lora:latest" and reg["host"] == fake.url and reg["quantize"] == "f16"
    assert "contract-lora:latest" in fake.models
    assert json.loads((run / "exports" / CANDIDATE / "registrations.json").read_text())[0][
        "digest"
    ].startswith("sha256:")


def test_the_recipes_ollama_host_serves_its_embeddings_for_indexing_and_scoring(fake, tmp_path, monkeypatch):
    """`embeddings: ollama:…` goes to the recipe's `ollama_host`, not OLLAMA_HOST, in every stage."""
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    with socket.socket() as s:  # a port nobody listens on: using OLLAMA_HOST would fail loudly
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{s.getsockname()[1]}")
    fake.add_model("nomic-embed-text", embedding_dim=8)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(
        "The notice period is ninety days.\n\nInvoices are due in thirty days.\n"
    )
    (tmp_path / "qa.jsonl").write_text('{"id": "1", "question": "Notice?", "reference": "Ninety days."}\n')
    text = f"""\
name: ollama-embed
ollama_host: {fake.url}
embeddings: ollama:nomic-embed-text
corpus: {{paths: [docs]}}
eval: {{questions: qa.jsonl, metrics: [rougeL, semantic_similarity]}}
candidates:
  - name: echo
    agent: toy_agents:EchoAgent
"""
    (tmp_path / "r.yaml").write_text(text)
    from bakeoff.rag.indexing import index_corpus

    recipe = load_recipe(tmp_path / "r.yaml")
    store, report = index_corpus(
        corpus=recipe.corpus,
        base_dir=tmp_path,
        embeddings=recipe.embeddings,
        recipe_name=recipe.name,
        chroma=recipe.chroma,
        ollama_host=recipe.ollama_host,
    )
    assert report.added == store.count() == 1  # one short file, one chunk
    run = run_recipe(recipe, recipe_text=text, runs_dir=tmp_path / "runs")
    info = read_run(run)
    assert info.status == "complete"
    sims = info.scores["candidates"]["echo"]["metrics"]["semantic_similarity"]
    assert sims["n"] == 1 and not sims.get("missing"), sims
    assert len(fake.calls("POST", "/api/embed")) >= 2  # the corpus, then response and reference


def test_a_real_fine_tune_with_register_is_trained_exported_and_registered(fake, tmp_path, root):
    """The `finetuned` agent itself carries `register:`: two LoRA steps, an F16 GGUF, then /api/create."""
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    text = f"""\
name: ft-register-real
ollama_host: {fake.url}
eval:
  questions: {root}/data/contract-qa.jsonl
  limit: 1
candidates:
  - name: tiny-lora
    agent: finetuned
    train:
      method: lora
      data: {{kind: instruct, path: {root}/data/contract-train.jsonl, limit: 12}}
      max_steps: 2
      batch_size: 2
      max_length: 64
      lora: {{r: 4, alpha: 8}}
    register: {{ollama: tiny-contract, quantize: f16}}
"""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(text)
    run = run_recipe(load_recipe(recipe_file), recipe_text=text, runs_dir=tmp_path / "runs")
    info = read_run(run)
    assert info.status == "complete", info.manifest.get("notes")
    reg = info.manifest["ollama"]["tiny-lora"]
    assert reg["name"] == "tiny-contract:latest" and reg["quantize"] == "f16", reg
    assert "tiny-contract:latest" in fake.models
    created = fake.calls("POST", "/api/create")[0]
    assert "<|im_start|>" in created["template"] and created["files"]
    gguf = run / "exports" / "tiny-lora"
    assert any(p.suffix == ".gguf" for p in gguf.rglob("*"))


def test_recipe_register_failure_is_a_note_not_a_crash(tmp_path, root, finetuned_run, exported_f16):
    from bakeoff.recipe.load import load_recipe
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = f"""\
name: ft-register-down
ollama_host: http://127.0.0.1:{port}
eval:
  questions: {root}/data/contract-qa.jsonl
  limit: 1
candidates:
  - name: {CANDIDATE}
    agent: toy_finetune:ToyFinetuneAgent
    source_run: {finetuned_run}
    register: {{ollama: contract-lora, quantize: f16}}
"""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(text)
    run = run_recipe(load_recipe(recipe_file), recipe_text=text, runs_dir=tmp_path / "runs")
    info = read_run(run)
    assert info.status == "complete"
    assert "cannot reach Ollama" in info.manifest["ollama"][CANDIDATE]["error"]
    assert any("was not registered in Ollama" in n for n in info.manifest["notes"])


def test_register_key_is_validated_with_located_errors(tmp_path, root):
    from bakeoff.recipe.load import RecipeError, load_recipe

    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"name: x\neval:\n  questions: {root}/data/contract-qa.jsonl\ncandidates:\n  - name: lora\n"
        "    agent: toy_finetune:ToyFinetuneAgent\n    source_run: /nowhere\n"
        "    register: {ollama: 'bad name!', quantize: q5_k}\n"
    )
    with pytest.raises(RecipeError) as exc:
        load_recipe(recipe_file)
    text = str(exc.value)
    assert "candidates[0].register.ollama" in text and "candidates[0].register.quantize" in text
    assert "r.yaml:8:" in text


def test_cli_models_list_and_remove(fake, bakeoff_cmd):
    fake.add_model("mistral:7b")
    out = subprocess.run(
        [*bakeoff_cmd, "models", "list", "--host", fake.url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "mistral:7b" in out.stdout
    gone = subprocess.run(
        [*bakeoff_cmd, "models", "remove", "nope", "--host", fake.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gone.returncode == 1 and "has no model 'nope'" in gone.stderr and "Traceback" not in gone.stderr
    ok = subprocess.run(
        [*bakeoff_cmd, "models", "remove", "mistral:7b", "--host", fake.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and not fake.models


def test_cli_register_dry_run_prints_the_create_request(finetuned_run, exported_f16, bakeoff_cmd, tmp_path):
    run_copy = tmp_path / "quickstart-ft" / finetuned_run.name
    shutil.copytree(finetuned_run, run_copy)  # the CLI may write exports; keep the session fixture pristine
    proc = subprocess.run(
        [
            *bakeoff_cmd,
            "models",
            "register",
            str(run_copy),
            CANDIDATE,
            "--name",
            "contract-lora",
            "--quantize",
            "f16",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)
    assert request["model"] == "contract-lora"
    assert request["files"] == {f"{CANDIDATE}.f16.gguf": f"sha256:{exported_f16.sha256}"}
    assert request["template"].startswith("{{ if .System }}<|im_start|>system\n")
    assert request["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert "dry run: would upload" in proc.stderr and "ChatML template" in proc.stderr


@pytest.mark.slow
def test_registered_export_answers_like_the_gguf_backend(exported_f16):
    """End to end with a real model: the fake server stores what bakeoff sent and answers with llama.cpp over the
    uploaded blob, prompting through the *Go* template; the reply must equal the embedded-gguf backend's, which
    prompts through the GGUF's *Jinja* template."""
    from fake_ollama import LlamaCppResponder

    from bakeoff.models.llama_cpp_backend import LlamaCppGenerator
    from bakeoff.models.ollama_backend import OllamaGenerator

    responder = LlamaCppResponder()
    convo = [
        {
            "role": "system",
            "content": "You answer questions about documents. Answer briefly and factually, in one sentence.",
        },
        {"role": "user", "content": "How long is the Initial Term of the agreement?"},
    ]
    settings = GenerationSettings(max_new_tokens=24)
    try:
        with FakeOllama(responder=responder) as fake:
            result = flow_register_chat_remove(fake.url, exported_f16.path, "contract-lora")
            assert result["first"].smoke_reply  # the smoke chat ran the real model
            register_gguf(plan_registration(exported_f16.path, "contract-lora"), OllamaServer(fake.url))
            [served] = OllamaGenerator("contract-lora", host=fake.url).generate([convo], settings)
    finally:
        responder.close()
    local = LlamaCppGenerator(exported_f16.path)
    try:
        [direct] = local.generate([convo], settings)
    finally:
        local.close()
    assert served.error is None and served.text == direct.text and served.text


def test_recipe_ollama_host_key(tmp_path, root):
    from bakeoff.recipe.load import RecipeError, load_recipe
    from bakeoff.run.runner import make_context

    recipe_file = tmp_path / "r.yaml"
    base = f"name: x\neval:\n  questions: {root}/data/contract-qa.jsonl\ncandidates:\n  - name: a\n    agent: fewshot\n"
    recipe_file.write_text(base + "ollama_host: http://gpu-box:11434\n")
    recipe = load_recipe(recipe_file)
    ctx = make_context(recipe, console=None)
    assert ctx.ollama_host == ctx.models.ollama_host == "http://gpu-box:11434"
    recipe_file.write_text(base + "ollama_host: 'not a host!'\n")
    with pytest.raises(RecipeError, match=r"r.yaml:7:\d+: ollama_host: String should match pattern"):
        load_recipe(recipe_file)


def test_unknown_chat_template_fails_before_contacting_the_server(tmp_path, root):
    from bakeoff.serving.ollama_template import TemplateError

    template = (
        root / "tests" / "fixtures" / "chat_templates" / "mistralai-Mistral-Nemo-Instruct-2407.jinja"
    ).read_text()
    gguf = tiny_gguf(tmp_path / "mistral.gguf", template=template)
    with pytest.raises(TemplateError) as exc:
        plan_registration(gguf, "mistral-ft")
    assert "family: Mistral" in str(exc.value) and "hand-written template" in str(exc.value)
