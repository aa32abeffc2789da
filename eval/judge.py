"""The judge: an LLM behind an OpenAI-compatible endpoint that grades answers, with an on-disk cache.

One :class:`Judge` per scoring. It resolves the recipe's ``judge:`` model to an endpoint — Ollama's ``/v1``,
any OpenAI-compatible server, or a private :class:`~bakeoff.models.local_server.LocalOpenAIServer` that it
starts on 127.0.0.1 for ``embedded:`` and ``hf:`` models — and hands out clients for it: an ``AsyncOpenAI``
client for the rubric judge and an instructor-wrapped ragas ``InstructorLLM`` for the RAGAS metrics. Every
HTTP request those clients send is counted (:attr:`Judge.calls`).

Verdicts are cached under ``BAKEOFF_HOME/judge-cache/<metric>/`` as one JSON file per key, the key being a
SHA-256 of (metric and its version, the inputs the metric reads, the judge's identity: model, max tokens,
temperature, structured-output mode). A verdict the judge gave but that could not be parsed is cached too
(the judge would say the same again); a judge that could not be reached is not (that is not its verdict).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from bakeoff.errors import BakeoffError
from bakeoff.eval.metrics import MetricResult
from bakeoff.eval.settings import JudgeSpec
from bakeoff.io import write_text_atomic
from bakeoff.models.chat_endpoint import ChatEndpoint

__all__ = ["WEAK_JUDGE", "Judge", "JudgeCache", "JudgeError", "classify_failure"]

# Said in every run an embedded judge grades (scores.json `judge.caution`, under the judge table).
WEAK_JUDGE = (
    "the embedded judge is a 135M model and a weak grader: its verdicts show the judge machinery at work, "
    "not which candidate is better; for a decision set judge.model to a strong model (ollama:..., "
    "openai-compatible:...)"
)


class JudgeError(BakeoffError):
    """The judge cannot be started or reached at all; the message says what to do."""


class JudgeCache:
    """Judge verdicts on disk, one small JSON file per (metric, inputs, judge) key."""

    def __init__(self, root: Path | None = None) -> None:
        from bakeoff.paths import home

        self.root = Path(root) if root else home() / "judge-cache"

    @staticmethod
    def key(metric: str, inputs: dict[str, Any], judge: dict[str, Any]) -> str:
        blob = json.dumps(
            {"metric": metric, "inputs": inputs, "judge": judge}, sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, metric: str, key: str) -> Path:
        return self.root / metric / key[:2] / f"{key}.json"

    def get(self, metric: str, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(metric, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, metric: str, key: str, value: dict[str, Any]) -> None:
        path = self._path(metric, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(value, ensure_ascii=False), fsync=False)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def classify_failure(exc: BaseException, *, where: str, max_tokens: int) -> MetricResult:
    """Turn an exception from a judge call into a missing value with its reason.

    ``failure="judge"``: the judge could not be reached or answered with an HTTP error (not cached).
    ``failure="parse"``: the judge replied but the reply could not be used (cut off, not the expected JSON).
    """
    import openai

    for err in _chain(exc):
        if isinstance(err, openai.APIConnectionError | openai.APITimeoutError):
            return MetricResult(None, f"judge unreachable at {where}: {type(err).__name__}", failure="judge")
        if isinstance(err, openai.APIStatusError):
            detail = str(err)[:200]
            return MetricResult(None, f"judge answered HTTP {err.status_code}: {detail}", failure="judge")
    names = {type(e).__name__ for e in _chain(exc)}
    if "IncompleteOutputException" in names:
        return MetricResult(
            None,
            f"judge reply cut off at max_new_tokens={max_tokens} before the JSON closed",
            failure="parse",
        )
    last = _chain(exc)[-1]
    detail = " ".join(str(last).split())[:240]
    return MetricResult(
        None, f"judge reply could not be parsed ({type(last).__name__}): {detail}", failure="parse"
    )


class Judge:
    """A judge model, its endpoint, its cache and its call counters (see the module docstring).

    Args:
        spec: the recipe's ``judge:`` settings.
        cache_dir: where verdicts are cached (default ``BAKEOFF_HOME/judge-cache``).
        backend: serve this :class:`~bakeoff.models.generators.Generator` instead of the model the spec
            names (a custom local model; JSON-constrained when it offers
            :class:`~bakeoff.models.generators.JSONReplies`).
        ollama_host: the recipe's Ollama server, for an ``ollama:`` judge (else ``OLLAMA_HOST``).
    """

    def __init__(
        self,
        spec: JudgeSpec,
        *,
        cache_dir: Path | None = None,
        backend: Any = None,
        ollama_host: str | None = None,
    ) -> None:
        self.spec = spec
        self.ollama_host = ollama_host
        self.cache = JudgeCache(cache_dir)
        self._backend = backend
        self.server = None
        self.base_url: str | None = None
        self.model_name: str | None = None
        self.calls = 0  # HTTP requests sent to the judge by this object's clients
        self.cache_hits = 0
        self.served: dict[str, float] = {}  # requests and busy seconds of the local server (when one ran)
        self._lock = threading.Lock()

    # -- endpoint --------------------------------------------------------------------------------------------
    @cached_property
    def endpoint(self) -> ChatEndpoint:
        """How the judge model is reached: the model-reference table's ``judge`` job, or the given backend.

        Raises:
            JudgeError: the reference's kind cannot be a judge.
        """
        if self._backend is not None:
            name = str(getattr(self._backend, "name", type(self._backend).__name__))
            return ChatEndpoint(serve=lambda: self._backend, served_by=name)
        from bakeoff.models.chat_endpoint import chat_endpoint
        from bakeoff.models.generators import BackendError

        try:
            return chat_endpoint(self.spec.model, ollama_host=self.ollama_host)
        except BackendError as exc:
            raise JudgeError(str(exc)) from None

    def open(self) -> Judge:
        """Resolve (and for local models start) the endpoint; idempotent."""
        if self.base_url is not None:
            return self
        logging.getLogger("instructor").setLevel(logging.CRITICAL)  # failures are reported as data instead
        os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas usage telemetry: never from bakeoff
        endpoint = self.endpoint
        if endpoint.serve is not None:
            from bakeoff.models.local_server import LocalOpenAIServer

            model = endpoint.serve()
            name = str(getattr(model, "name", None) or self.spec.model)
            self.server = LocalOpenAIServer(model, model=name).start()
            self.served = {"server_requests": 0, "server_busy_s": 0.0, **self.served}
            self.base_url, self.model_name = self.server.base_url, name
        else:
            self.base_url, self.model_name = endpoint.base_url, endpoint.model
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.served["server_requests"] += self.server.requests
            self.served["server_busy_s"] += self.server.busy_s
            self.server = None
        self.base_url = None

    def __enter__(self) -> Judge:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def identity(self) -> dict[str, Any]:
        """What makes two judges give the same verdicts: the spec's settings plus, for a model bakeoff serves
        itself, which engine runs it (llama.cpp and transformers decode the same model differently)."""
        out = self.spec.identity()
        if self.endpoint.served_by is not None:
            out["served_by"] = self.endpoint.served_by
        return out

    @property
    def where(self) -> str:
        return "the embedded judge" if self.server is not None else str(self.base_url)

    def describe(self) -> dict[str, Any]:
        """Facts for scores.json."""
        out: dict[str, Any] = {**self.spec.identity(), "calls": self.calls, "cache_hits": self.cache_hits}
        if self.served:
            live = self.server
            out["endpoint"] = "local (bakeoff-served, 127.0.0.1)"
            out["server_requests"] = int(self.served["server_requests"] + (live.requests if live else 0))
            out["server_busy_s"] = round(self.served["server_busy_s"] + (live.busy_s if live else 0.0), 2)
        elif self.base_url:
            out["endpoint"] = self.base_url
        if str(self.spec.model).startswith("embedded:"):
            out["caution"] = WEAK_JUDGE
        return out

    # -- clients ---------------------------------------------------------------------------------------------
    def async_openai(self):
        """A fresh ``AsyncOpenAI`` client for the endpoint (one per event loop), counting its requests (each
        retry too); 429/5xx/connection errors are retried ``http_retries`` times with backoff."""
        import httpx

        from bakeoff.models.openai_compatible import async_openai_client

        self.open()

        async def count(_request) -> None:
            with self._lock:
                self.calls += 1

        http = httpx.AsyncClient(timeout=self.spec.timeout_s, event_hooks={"request": [count]})
        return async_openai_client(
            self.base_url,
            key_env=getattr(self.spec.model, "key_env", None),
            timeout_s=self.spec.timeout_s,
            max_retries=self.spec.http_retries,
            http_client=http,
        )

    def ragas_llm(self, client):
        """A ragas ``InstructorLLM`` over ``client`` with the judge's decoding settings."""
        import instructor
        from ragas.llms.base import InstructorLLM, InstructorModelArgs

        modes = {
            "json_schema": instructor.Mode.JSON_SCHEMA,
            "json": instructor.Mode.JSON,
            "none": instructor.Mode.MD_JSON,
        }
        patched = instructor.from_openai(client, mode=modes[self.spec.structured_output])
        return InstructorLLM(
            client=patched,
            model=self.model_name,
            provider="openai",
            model_args=InstructorModelArgs(
                temperature=self.spec.temperature, top_p=1.0, max_tokens=self.spec.max_new_tokens
            ),
            max_retries=self.spec.retries,
        )

    def response_format(self, schema: dict[str, Any], name: str) -> dict[str, Any] | None:
        """The OpenAI ``response_format`` for a JSON reply of ``schema`` under the spec's mode."""
        if self.spec.structured_output == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        if self.spec.structured_output == "json":
            return {"type": "json_object"}
        return None

    # -- cache -----------------------------------------------------------------------------------------------
    def cached(self, metric: str, inputs: dict[str, Any]) -> MetricResult | None:
        if not self.spec.cache:
            return None
        hit = self.cache.get(metric, self.cache.key(metric, inputs, self.identity()))
        if hit is None:
            return None
        with self._lock:
            self.cache_hits += 1
        return MetricResult(hit.get("value"), hit.get("reason", ""), failure=hit.get("failure"), cached=True)

    def store(self, metric: str, inputs: dict[str, Any], result: MetricResult) -> None:
        if not self.spec.cache or result.failure == "judge":
            return
        self.cache.put(
            metric,
            self.cache.key(metric, inputs, self.identity()),
            {"value": result.value, "reason": result.reason, "failure": result.failure},
        )

    def failure(self, exc: BaseException) -> MetricResult:
        return classify_failure(exc, where=self.where, max_tokens=self.spec.max_new_tokens)
