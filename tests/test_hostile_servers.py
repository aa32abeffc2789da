"""Issue 17 findings 2 and 5 against real local HTTP servers: a candidate whose every answer is an error is a
failed candidate (exit 1, one ``error:`` line each, the run ``partial``/``failed``, never named best), and a
key a server echoes back never reaches a file; an environment key goes only to the host it is for."""

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from bakeoff.eval.failures import failure_sentences, run_status
from bakeoff.eval.ranking import bradley_terry
from bakeoff.eval.table import comparison_rows, comparison_table
from bakeoff.models.openai_compatible import OpenAICompatibleGenerator, api_key_for
from bakeoff.run.store import read_run
from bakeoff.ui.runs import run_row

SECRET = "sk-live-3c2b1a0f9e8d-ECHOED"
NOWHERE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens


class EchoingServer:
    """Answers every request with 401 and a body echoing the request's headers (as some proxies do)."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.auth.append(self.headers.get("Authorization"))
                body = json.dumps(
                    {
                        "error": {
                            "message": f"invalid key {self.headers.get('Authorization')}",
                            "request_headers": dict(self.headers.items()),
                        }
                    }
                ).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _run(tmp_path: Path, bakeoff_cmd, candidates: str, env: dict | None = None):
    (tmp_path / "qa.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "question": f"q{i}", "reference": f"echo: q{i}"}) + "\n"
            for i in range(3)
        )
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: servers\ntask: qa\neval: {questions: qa.jsonl, metrics: [exact_match, token_f1]}\n"
        f"candidates:\n{candidates}"
    )
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "BAKEOFF_HOME": str(tmp_path / "home"), **(env or {})},
        timeout=120,
    )
    runs = list((tmp_path / "runs" / "servers").iterdir())
    return proc, read_run(runs[0]) if runs else None


def test_a_candidate_whose_every_answer_fails_is_failed_and_never_best(tmp_path, bakeoff_cmd):
    with FakeOpenAI() as good:
        proc, info = _run(
            tmp_path,
            bakeoff_cmd,
            f"  - {{name: good, agent: fewshot, model: 'openai-compatible:{good.url}#toy'}}\n"
            f"  - {{name: nowhere, agent: fewshot, model: 'openai-compatible:{NOWHERE}#toy'}}\n",
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: candidate 'nowhere' failed: all 3 of its answers are errors (first: cannot reach {NOWHERE}: "
        + errors[0].split(f"cannot reach {NOWHERE}: ", 1)[1]
    ]
    assert "Traceback" not in proc.stderr
    manifest, scores = info.manifest_document, info.scores_document
    assert manifest.status == "partial" and "candidate 'nowhere' failed" in manifest.error
    assert manifest.candidates["nowhere"].failed.startswith("cannot reach")
    assert manifest.candidates["good"].failed is None
    assert scores.candidates["good"].failed is None and scores.means("exact_match") == {"good": 1.0}
    assert run_status(scores) == "partial" and len(failure_sentences(scores)) == 1
    # the table says failed, not 0.000; the Runs page names the good one best
    assert "failed" in proc.stdout and "0.000" not in proc.stdout
    rows = {r["candidate"]: r for r in comparison_rows(scores)}
    assert rows["nowhere"]["failed"] and rows["nowhere"]["exact_match"] is None
    assert run_row(info)["best"] == "good"
    # ranking: a failed candidate is never ranked, whatever the votes
    assert list(
        bradley_terry([("nowhere", "good", 1.0)] * 5 + [("good", "x", 1.0)], exclude=["nowhere"])
    ) == [
        "good",
        "x",
    ]
    # resume asks the failed answers again
    assert "bakeoff run --resume" in proc.stderr


def test_a_run_where_every_candidate_fails_is_failed_with_one_line_each(tmp_path, bakeoff_cmd):
    with EchoingServer() as echo:
        proc, info = _run(
            tmp_path,
            bakeoff_cmd,
            f"  - {{name: nowhere, agent: fewshot, model: 'openai-compatible:{NOWHERE}#toy'}}\n"
            f"  - {{name: denied, agent: fewshot, model: 'openai-compatible:{echo.url}#toy'}}\n",
        )
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert [e.split(" failed:")[0] for e in errors] == [
        "error: candidate 'nowhere'",
        "error: candidate 'denied'",
    ]
    assert "HTTP 401" in errors[1]
    assert info.manifest_document.status == "failed"
    assert run_row(info)["best"] == ""  # nobody is best
    assert str(comparison_table(info.scores_document).caption).count("failed") == 1


def test_a_key_echoed_by_a_server_reaches_no_file(tmp_path, bakeoff_cmd):
    with EchoingServer() as echo:
        proc, info = _run(
            tmp_path,
            bakeoff_cmd,
            f"  - {{name: denied, agent: fewshot, model: 'openai-compatible:{echo.url}#toy?key=ECHO_API_KEY'}}\n",
            env={"ECHO_API_KEY": SECRET},
        )
    assert echo.auth and set(echo.auth) == {f"Bearer {SECRET}"}  # the key was sent, and echoed back
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    assert "[redacted]" in (info.path / "answers.jsonl").read_text()
    written = [p for root in (tmp_path / "runs", tmp_path / "home") for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "scores.json" for p in written) and any(p.name == "manifest.json" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), f"the key leaked into {path}"


def test_an_environment_key_goes_only_to_the_host_it_is_for(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert api_key_for("https://api.openai.com/v1") == SECRET
    assert api_key_for("https://evil.example/v1") == "bakeoff"
    assert api_key_for("https://api.openai.com:8443/v1") == "bakeoff"  # another port is another server
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert api_key_for("http://127.0.0.1:8000/v1") == SECRET
    assert api_key_for("https://api.openai.com/v1") == "bakeoff"
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key-123456")
    assert api_key_for("https://gpu.internal/v1", "VLLM_API_KEY") == "vllm-key-123456"
    with EchoingServer() as echo:  # a recipe naming another host never receives OPENAI_API_KEY
        OpenAICompatibleGenerator(echo.url, "toy").generate([[{"role": "user", "content": "x"}]], _settings())
    assert echo.auth == ["Bearer bakeoff"]


def _settings():
    from bakeoff.core import GenerationSettings

    return GenerationSettings()


@pytest.mark.parametrize(
    "ref, message",
    [
        ("openai-compatible:http://h/v1#m?key=", "names the environment variable"),
        ("openai-compatible:http://h/v1#m?key=$X", "names the environment variable"),
    ],
)
def test_a_malformed_key_name_is_refused(ref, message):
    from bakeoff.models.refs import parse_model_ref

    with pytest.raises(ValueError, match=message):
        parse_model_ref(ref)
    assert str(parse_model_ref("openai-compatible:http://h/v1#m?key=MY_KEY")).endswith("#m?key=MY_KEY")


def test_one_redaction_pass_for_every_file_written(tmp_path, monkeypatch):
    from bakeoff.io import append_jsonl, read_jsonl, redact, write_json_atomic, write_text_atomic

    monkeypatch.setenv("SOME_SERVICE_TOKEN", 'tok-"quoted"-12345')
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a setting, not a secret
    row = {"error": f'HTTP 401: Authorization: Bearer {SECRET} token tok-"quoted"-12345'}
    append_jsonl(tmp_path / "a.jsonl", [row])
    write_json_atomic(tmp_path / "b.json", row)
    write_text_atomic(tmp_path / "c.txt", row["error"])
    for name in ("a.jsonl", "b.json", "c.txt"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text and "12345" not in text and "[redacted]" in text, text
    assert read_jsonl(tmp_path / "a.jsonl")[0]["error"].count("[redacted]") == 2
    # prose that looks like a header stays: no digit, no credential
    for prose in ("Bearer instruments are risky.", "Authorization: The Supplier shall obtain consent.", "1"):
        assert redact(prose) == prose
    assert redact("authorization=abc123def456") == "authorization=[redacted]"
