"""The recipe: one YAML file that declares a comparison — its schema.

The schema is pydantic v2 with unknown keys rejected. Candidates are a union over the registered agent
kinds, chosen by their ``agent:`` key, so each kind validates its own settings and a plugin's settings are
checked exactly like the built-ins'. Loading a file and reporting every problem at once, each as
``FILE:LINE:COL: field.path: message``, is :func:`bakeoff.recipe.load.load_recipe`; the checks across
fields are :mod:`bakeoff.recipe.checks`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
)

from bakeoff.agents.base import AgentSettings, available_agents, load_agent_class
from bakeoff.eval.settings import JudgeSpec, StatisticsSpec
from bakeoff.models.refs import (
    DEFAULT_EMBEDDINGS,
    DEFAULT_MODEL,
    EmbeddingRefField,
    ModelRefField,
    scheme_pattern,
)
from bakeoff.rag.chroma import ChromaSpec
from bakeoff.rag.corpus import CorpusSpec
from bakeoff.recipe.fields import ExistingFile, RecipePath
from bakeoff.synth.jobs import FileOrSynthesized, SynthesizeJob

__all__ = [
    "DEFAULT_BASE_MODEL",
    "EvalSpec",
    "Recipe",
    "RecipePath",
    "agent_of",
    "dump_schema",
    "json_schema",
    "recipe_model",
]

DEFAULT_BASE_MODEL = str(DEFAULT_MODEL)


def _known_metric(name: str) -> str:
    from bakeoff.eval import MetricError, runnable_metric_class  # light module, no heavy imports

    try:
        cls = runnable_metric_class(name)
    except MetricError as exc:
        raise ValueError(str(exc)) from None
    if cls.automatic:
        raise ValueError(f"metric {name!r} is scored automatically for candidates that retrieve; do not list it")
    return name


class EvalSpec(BaseModel):
    """The evaluation set and how answers are scored."""

    model_config = ConfigDict(extra="forbid")

    questions: FileOrSynthesized = Field(
        ...,
        description="JSONL file, one item per line: `id`, `question`, `reference` (QA), or `id`, `text`, `label` "
        "(classification); optional `passage`/`source` (the supporting text, for retrieval metrics). Or "
        "`{synthesized: JOB}`: the output of a `synthesize:` job.",
    )
    metrics: list[Annotated[str, AfterValidator(_known_metric)]] | None = Field(
        None,
        description="Metrics to compute; default depends on the task (QA: bleu, rouge1, rouge2, rougeL, chrf, "
        "exact_match, token_f1, token_recall, contains, semantic_similarity; classification: accuracy, macro_f1 with per-label "
        "P/R/F1). RAGAS metrics and judge_rubric need `judge:`. `bakeoff metrics` lists all.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N questions (quick iterations).")
    headline: Annotated[str, AfterValidator(_known_metric)] | None = Field(
        None,
        description="The metric that decides: paired comparisons in `bakeoff show`, error analysis and reports "
        "lead with it. Default: the first of `metrics` if given; else, for QA, token_recall when the references "
        "are short (median at most 5 SQuAD-normalised tokens) and rougeL when they are longer; accuracy for "
        "classification. The run records the choice and why "
        "(`scores.json` `headline_reason`, first line of `bakeoff show`).",
    )
    fail_below: float = Field(
        0.5,
        allow_inf_nan=False,
        description="Error analysis: an answer whose headline value is below this failed (questions every "
        "candidate fails are listed, and each failed answer gets a cause: retrieval miss, context ignored, not "
        "learned, truncated, error — `bakeoff show --errors`).",
    )
    statistics: StatisticsSpec = Field(
        default_factory=StatisticsSpec, description="Bootstrap intervals and paired tests."
    )
    slice_by: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]] = Field(
        default_factory=list,
        description="Extra string fields of the questions (e.g. `type`) to break the headline down by, besides "
        "the source document (`bakeoff show --by-source`, the console and the report).",
        json_schema_extra={"examples": [["type"]]},
    )
    retention: ExistingFile | None = Field(
        None,
        description="A second question set (JSONL: `question`, `reference`) of general questions the base "
        "model answers; every candidate answers it too, it is scored on its own (scores.json `retention`) and "
        "each candidate's loss against the base candidate is tested (QA only).",
        json_schema_extra={"examples": ["../data/general-qa.jsonl"]},
    )


def _judge_shorthand_schema(schema: dict[str, Any]) -> None:
    # `judge: MODEL` is accepted as the short form of `judge: {model: MODEL}` (see JudgeSpec).
    schema.setdefault("anyOf", []).insert(
        0,
        {
            "type": "string",
            "pattern": scheme_pattern("judge"),
            "description": "a judge model",
        },
    )


class RecipeBase(BaseModel):
    """Top-level recipe keys (the candidates list is added per registry by :func:`recipe_model`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        max_length=80,
        description="Recipe name; runs are stored under `runs/<name>/`.",
    )
    description: str = Field("", description="What this recipe compares, in a sentence or two.")
    base_model: ModelRefField = Field(
        DEFAULT_MODEL,
        description="Default model for every candidate: `embedded:NAME`, `hf:PATH_OR_ID`, `ollama:MODEL`, "
        "`openai-compatible:URL#MODEL`.",
        json_schema_extra={"default": DEFAULT_BASE_MODEL},
    )
    task: Literal["qa", "classification"] = Field(
        "qa",
        description="`qa`: free-text answers scored against references; `classification`: one of `labels`.",
    )
    labels: list[str] | None = Field(
        None, min_length=2, description="The label set (required for, and only for, `task: classification`)."
    )
    eval: EvalSpec = Field(..., description="The question set and metrics.")
    corpus: CorpusSpec | None = Field(
        None,
        description="The private documents: RAG candidates retrieve from them, causal fine-tunes train on them.",
    )
    chroma: ChromaSpec | None = Field(
        None,
        description="Where the corpus' vectors live: embedded Chroma under `$BAKEOFF_HOME/chroma/<name>` "
        "(default), another folder (`path`), or a Chroma server (`host`, `port`).",
    )
    ollama_host: str | None = Field(
        None,
        pattern=r"^(https?://)?[A-Za-z0-9.\-\[\]:]*(:\d+)?(/\S*)?$",
        description="Ollama server for `ollama:` models and embeddings and for registering fine-tunes, e.g. "
        "`http://gpu-box:11434`; default: the OLLAMA_HOST environment variable, else http://127.0.0.1:11434.",
    )
    embeddings: EmbeddingRefField = Field(
        DEFAULT_EMBEDDINGS,
        description=f"Embedding model for retrieval and semantic similarity: `{DEFAULT_EMBEDDINGS}` "
        "(default, offline), `ollama:MODEL` or `hf:/path/to/sentence-transformers-model`.",
        json_schema_extra={"default": str(DEFAULT_EMBEDDINGS)},
    )
    judge: JudgeSpec | None = Field(
        None,
        description="The LLM that grades answers for RAGAS metrics and judge_rubric: a model reference "
        "(`judge: ollama:llama3.1:8b`) or a mapping with `model:` and settings (rubric, max_new_tokens, ...).",
        json_schema_extra=_judge_shorthand_schema,
    )
    synthesize: list[SynthesizeJob] | None = Field(
        None,
        description="Data written by a model, run by `bakeoff synthesize` (and before answering by `bakeoff run`): "
        "question/answer or instruction records from the corpus (`mode: generate`, default), or labels for the "
        "texts of a JSONL file (`mode: label`), checked, deduplicated and reported; `{synthesized: NAME}` uses "
        "a job's output.",
    )


class Recipe(RecipeBase):
    """A validated recipe (the concrete class is built by :func:`recipe_model` for the installed agents)."""

    candidates: list[AgentSettings]
    source_path: Path | None = Field(None, exclude=True)

    def candidate(self, name: str) -> AgentSettings:
        for cand in self.candidates:
            if cand.name == name:
                return cand
        raise KeyError(f"recipe {self.name!r} has no candidate {name!r}; candidates: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.candidates]


def _settings_for(kind: str) -> type[AgentSettings]:
    """The settings model of an agent kind, with ``agent`` pinned to that kind for the union."""
    cls = load_agent_class(kind).settings_model
    return create_model(
        f"{cls.__name__}_{abs(hash(kind))}" if ":" in kind else cls.__name__,
        __base__=cls,
        __doc__=cls.__doc__,
        agent=(Literal[kind], Field(..., description=f"`{kind}`")),
    )


def agent_of(value: Any) -> str | None:
    """The discriminator of a candidate: its ``agent`` kind."""
    if isinstance(value, dict):
        return value.get("agent")
    return getattr(value, "agent", None)


def recipe_model(extra_kinds: tuple[str, ...] = ()) -> type[Recipe]:
    """Build the Recipe class for the registered agents plus any ``module:Class`` kinds named in a recipe."""
    kinds = sorted(available_agents()) + [k for k in extra_kinds if k not in available_agents()]
    members = []
    for kind in kinds:
        members.append(Annotated[_settings_for(kind), Tag(kind)])
    if len(members) == 1:
        members.append(Annotated[_settings_for(kinds[0]), Tag(kinds[0] + " ")])  # keep it a union
    union = Annotated[Union[tuple(members)], Discriminator(agent_of)]  # noqa: UP007
    return create_model(
        "Recipe",
        __base__=Recipe,
        __doc__=Recipe.__doc__,
        candidates=(
            list[union],
            Field(
                ...,
                min_length=1,
                description="The candidates to compare; each has a unique `name` and an `agent` kind.",
            ),
        ),
    )


def _select_by_agent(items: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A candidate's schema chosen by its ``agent``: ``if agent is K then K's settings`` for each kind.

    Pydantic writes the union as a ``oneOf``, for which a validator can only say that the whole candidate
    matches none of the kinds; selected by ``agent`` (if/then, which editors' validators understand), a wrong
    key or value is reported at that key, and an unknown kind at ``agent``.
    """
    refs = list(dict.fromkeys(m["$ref"] for m in items.get("oneOf", []) if "$ref" in m))
    kinds = {ref: defs[ref.rsplit("/", 1)[-1]]["properties"]["agent"]["const"] for ref in refs}
    if not kinds:
        return items
    return {
        "type": "object",
        "required": ["agent"],
        "properties": {
            "agent": {"title": "Agent", "description": "The agent kind.", "enum": list(kinds.values())},
        },
        "allOf": [
            {"if": {"properties": {"agent": {"const": kind}}, "required": ["agent"]}, "then": {"$ref": ref}}
            for ref, kind in kinds.items()
        ],
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of recipes for the installed agents (editors use it for completion and errors)."""
    schema = recipe_model().model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bakeoff recipe"
    schema.get("properties", {}).pop("source_path", None)
    candidates = schema.get("properties", {}).get("candidates", {})
    if "items" in candidates:
        candidates["items"] = _select_by_agent(candidates["items"], schema.get("$defs", {}))
    return schema


def dump_schema() -> str:
    """:func:`json_schema` as indented JSON text (``bakeoff schema``)."""
    return json.dumps(json_schema(), indent=2)
