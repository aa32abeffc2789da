"""The recipe: one YAML file that declares a comparison.

The schema is pydantic v2 with unknown keys rejected. Candidates are a union over the registered agent
kinds, chosen by their ``agent:`` key, so each kind validates its own settings and a plugin's settings are
checked exactly like the built-ins'. :func:`load_recipe` reports every problem at once, each as
``FILE:LINE:COL: field.path: message``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
)

from bakeoff.agents.base import AgentError, AgentSettings, available_agents, load_agent_class
from bakeoff.errors import BakeoffError
from bakeoff.eval.settings import JudgeSpec, StatisticsSpec
from bakeoff.models.refs import (
    DEFAULT_EMBEDDINGS,
    DEFAULT_MODEL,
    EmbeddingRefField,
    ModelRefField,
    scheme_pattern,
)
from bakeoff.rag.corpus import CorpusSpec
from bakeoff.rag.vectorstore import ChromaSpec
from bakeoff.recipe._yaml import YamlError, load_yaml
from bakeoff.recipe.fields import RecipePath, project_root
from bakeoff.recipe.sweep import expand_sweeps
from bakeoff.synth.jobs import JOB_MODES, FileOrSynthesized, SynthesizeJob, check_jobs, job_mode, job_model

__all__ = [
    "DEFAULT_BASE_MODEL",
    "NOT_IMPORTED",
    "EvalSpec",
    "Problem",
    "Recipe",
    "RecipeError",
    "cross_check",
    "RecipePath",
    "json_schema",
    "load_recipe",
    "recipe_model",
]

DEFAULT_BASE_MODEL = str(DEFAULT_MODEL)
NOT_IMPORTED = "names Python code (module:Class), not imported while validating without running code"


def _known_metric(name: str) -> str:
    from bakeoff.eval import UNAVAILABLE_METRICS, metric_names  # light module, no heavy imports

    if name in UNAVAILABLE_METRICS:
        raise ValueError(f"metric {name!r} is unavailable: {UNAVAILABLE_METRICS[name]}")
    if name not in metric_names():
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(metric_names())}")
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
        "exact_match, token_f1, contains, semantic_similarity; classification: accuracy, macro_f1 with per-label "
        "P/R/F1). RAGAS metrics and judge_rubric need `judge:`. `bakeoff metrics` lists all.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N questions (quick iterations).")
    headline: Annotated[str, AfterValidator(_known_metric)] | None = Field(
        None,
        description="The metric that decides: paired comparisons in `bakeoff show`, error analysis and reports "
        "lead with it. Default: the first of `metrics` if given, else rougeL (QA) or accuracy (classification).",
    )
    fail_below: float = Field(
        0.5,
        description="Error analysis: an answer whose headline value is below this failed (questions every "
        "candidate fails are listed).",
    )
    statistics: StatisticsSpec = Field(
        default_factory=StatisticsSpec, description="Bootstrap intervals and paired tests."
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


def cross_check(data: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Checks that span several fields, on the raw document so they run even when other keys are invalid.

    Returns (location, message) pairs.
    """
    from bakeoff.eval import DEFAULT_METRICS, JUDGE_METRICS, METRICS, metric_task

    problems: list[tuple[tuple, str]] = []
    candidates = data.get("candidates") if isinstance(data.get("candidates"), list) else []
    seen: dict[str, int] = {}
    for i, cand in enumerate(candidates):
        name = cand.get("name") if isinstance(cand, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                (
                    ("candidates", i, "name"),
                    f"duplicate candidate name {name!r} (also candidates[{seen[name]}])",
                )
            )
        seen.setdefault(name, i)
    task = data.get("task", "qa")
    if task == "classification" and not data.get("labels"):
        problems.append((("task",), "task 'classification' needs a `labels:` list"))
    if task == "qa" and data.get("labels"):
        problems.append((("labels",), "`labels` only applies to task: classification"))
    spec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    metrics = spec.get("metrics") if isinstance(spec.get("metrics"), list) else []
    for j, metric in enumerate(metrics):
        if isinstance(metric, str) and metric in METRICS and task in ("qa", "classification"):
            wanted = metric_task(metric)
            if wanted not in (None, task):
                problems.append(
                    (
                        ("eval", "metrics", j),
                        f"metric {metric!r} is for task {wanted!r}, this recipe is {task!r}",
                    )
                )
    judge = data.get("judge")
    for j, metric in enumerate(metrics):
        if not isinstance(metric, str):
            continue  # reported by the schema (a metric is a name)
        if metric in JUDGE_METRICS and judge is None:
            problems.append(
                (
                    ("eval", "metrics", j),
                    f"metric {metric!r} is graded by an LLM judge: add `judge: MODEL` "
                    f"(e.g. judge: {DEFAULT_MODEL}, or ollama:llama3.1:8b)",
                )
            )
        elif (
            metric == "judge_rubric"
            and isinstance(judge, str | dict)
            and not (isinstance(judge, dict) and judge.get("rubric"))
        ):
            problems.append(
                (
                    ("eval", "metrics", j),
                    "metric 'judge_rubric' needs a rubric: write `judge:` as a mapping with "
                    "`model:` and `rubric: {criteria: ..., scale: [1, 5]}`",
                )
            )
    headline = spec.get("headline")
    if (
        isinstance(headline, str)
        and headline in METRICS
        and isinstance(task, str)
        and task in DEFAULT_METRICS
    ):
        listed = [m for m in metrics if isinstance(m, str)] if spec.get("metrics") else DEFAULT_METRICS[task]
        if headline not in listed:
            problems.append(
                (
                    ("eval", "headline"),
                    f"headline {headline!r} is not among the metrics computed: {', '.join(listed)}",
                )
            )
        elif headline == "macro_f1":
            problems.append(
                (
                    ("eval", "headline"),
                    "macro_f1 is corpus-level (no per-answer values); use accuracy as headline",
                )
            )
    problems.extend(check_jobs(data))
    for i, cand in enumerate(candidates):
        model = cand.get("model") if isinstance(cand, dict) else None
        if isinstance(model, str) and model.startswith("candidate:"):
            target = model.partition(":")[2]
            if target not in seen:
                problems.append((("candidates", i, "model"), f"no candidate named {target!r}"))
            elif target == cand.get("name"):
                problems.append((("candidates", i, "model"), "a candidate cannot use its own model"))
    return problems


def _settings_for(kind: str) -> type[AgentSettings]:
    """The settings model of an agent kind, with ``agent`` pinned to that kind for the union."""
    cls = load_agent_class(kind).settings_model
    return create_model(
        f"{cls.__name__}_{abs(hash(kind))}" if ":" in kind else cls.__name__,
        __base__=cls,
        __doc__=cls.__doc__,
        agent=(Literal[kind], Field(..., description=f"`{kind}`")),
    )


def _agent_of(value: Any) -> str | None:
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
    union = Annotated[Union[tuple(members)], Discriminator(_agent_of)]  # noqa: UP007
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


@dataclass
class Problem:
    """One validation problem, located in the file."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class RecipeError(BakeoffError):
    """A recipe failed to load; ``problems`` holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-tag elements so the location is a path in the document."""
    out: list = []
    node = data
    for part in loc:
        if (
            isinstance(node, list)
            and isinstance(part, int)
            and 0 <= part < len(node)
            or isinstance(node, dict)
            and part in node
        ):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == _agent_of(node):
            continue  # the discriminator tag
        elif isinstance(node, dict) and part in JOB_MODES and part == job_mode(node):
            continue  # a synthesize job's tag
        else:
            out.append(part)
            node = None
    return tuple(out)


_MESSAGES = {
    "extra_forbidden": "unknown key{suggest}",
    "missing": "required key is missing",
}


def _message(err: dict, data: Any, loc: tuple, model: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}{_suggest(loc, data, model)}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "union_tag_not_found" and loc[:1] == ("synthesize",):
        return f"`mode` must be one of: {', '.join(JOB_MODES)}"
    if kind == "union_tag_not_found":
        return "candidate needs an `agent:` key (e.g. agent: fewshot)"
    if kind == "union_tag_invalid" and loc[:1] == ("synthesize",):
        tag = err.get("ctx", {}).get("tag", "?")
        return f"unknown mode {tag!r}; use one of: {', '.join(JOB_MODES)}"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        known = ", ".join(sorted(available_agents()))
        return f"unknown agent {tag!r}; registered agents: {known}; or write 'package.module:Class'"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def _suggest(loc: tuple, data: Any, model: type[BaseModel]) -> str:
    import difflib

    key = str(loc[-1])
    allowed = _allowed_keys(loc[:-1], data, model)
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed keys: {', '.join(sorted(allowed))}" if allowed else ""


def _allowed_keys(parent: tuple, data: Any, model: type[BaseModel]) -> list[str]:
    cls: Any = model
    node = data
    for part in parent:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if parent[:1] == ("candidates",) and isinstance(node, dict):
                try:
                    cls = load_agent_class(str(node.get("agent"))).settings_model
                except AgentError:
                    return []
            if parent[:1] == ("synthesize",) and isinstance(node, dict):
                cls = job_model(job_mode(node))
                if cls is None:
                    return []
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return []
        ann = cls.model_fields[part].annotation
        node = node.get(part) if isinstance(node, dict) else None
        cls = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            ann,
        )
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return [f.alias or name for name, f in cls.model_fields.items() if not f.exclude]  # not source_path
    return []


def load_recipe(
    path: str | Path,
    *,
    check_files: bool = True,
    text: str | bytes | None = None,
    import_code: bool = True,
) -> Recipe:
    """Read, parse and validate a recipe file.

    Args:
        path: the YAML file; relative paths inside it resolve against its folder.
        check_files: also check that referenced input files exist.
        text: the file's content, if already read (the console validates unsaved edits this way).
        import_code: import ``agent: module:Class`` kinds named by the recipe. False (the console's live
            validation) reports each one not already imported as a problem at its ``agent`` key instead of
            running a module's code on every keystroke.

    Raises:
        RecipeError: with every problem found, each located as file:line:column.
    """
    path = Path(path)
    shown = str(path)
    if text is None:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise RecipeError(
                [Problem(shown, 1, 1, "", f"cannot read recipe: {exc.strerror or exc}")]
            ) from None
    try:
        data, smap = load_yaml(text)
    except YamlError as exc:
        raise RecipeError([Problem(shown, exc.line, exc.column, "", exc.message)]) from None
    if not isinstance(data, dict):
        raise RecipeError([Problem(shown, 1, 1, "", "a recipe is a YAML mapping (key: value lines)")])

    problems: list[Problem] = []
    extra_kinds: list[str] = []
    candidates = data.get("candidates")
    if isinstance(candidates, list):
        for i, cand in enumerate(candidates):
            kind = cand.get("agent") if isinstance(cand, dict) else None
            if not isinstance(kind, str):
                continue
            if not import_code and ":" in kind and kind.partition(":")[0] not in sys.modules:
                line, col = smap.locate(("candidates", i, "agent"))
                problems.append(Problem(shown, line, col, f"candidates[{i}].agent", NOT_IMPORTED))
                continue
            try:
                load_agent_class(kind)
            except AgentError as exc:
                line, col = smap.locate(("candidates", i, "agent"))
                problems.append(Problem(shown, line, col, f"candidates[{i}].agent", str(exc)))
                continue
            if ":" in kind:
                extra_kinds.append(kind)
    model = recipe_model(tuple(extra_kinds))

    # Sweeps expand before validation; errors in expanded candidates are mapped back to the file.
    expansion = expand_sweeps(data, _settings_model_or_none)
    for loc, msg in expansion.problems:
        line, col = smap.locate(loc, prefer_key=True)
        problems.append(Problem(shown, line, col, _format_loc(loc), msg))
    expanded = expansion.data

    def document_loc(loc: tuple) -> tuple:
        if (
            len(loc) >= 2
            and loc[0] == "candidates"
            and isinstance(loc[1], int)
            and loc[1] < len(expansion.origins)
        ):
            return expansion.origins[loc[1]].document_loc(loc[2:])
        return loc

    # Facts about the whole recipe that a candidate's validators may need (causal training needs a corpus).
    base_dir = path.parent.resolve()
    # recipe_keys (the top-level keys given a value) lets a candidate's settings check recipe-level needs:
    # a rag candidate needs `corpus:`.
    context = {
        "base_dir": base_dir,
        "check_files": check_files,
        "project_root": project_root(base_dir),
        "recipe_keys": frozenset(k for k, v in data.items() if v is not None),
        "has_corpus": isinstance(data.get("corpus"), dict),
        "base_model": data.get("base_model", DEFAULT_BASE_MODEL),
    }
    recipe = None
    try:
        recipe = model.model_validate(expanded, context=context)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err["loc"], expanded)
            doc = document_loc(loc)
            if err["type"] == "union_tag_invalid" and any(
                p.path == _format_loc((*doc, "agent")) for p in problems
            ):
                continue  # already reported with the import error
            prefer_key = err["type"] == "extra_forbidden"
            line, col = smap.locate(doc, prefer_key=prefer_key)
            problems.append(Problem(shown, line, col, _format_loc(doc), _message(err, expanded, loc, model)))
    for loc, msg in cross_check(expanded):
        target = msg.removeprefix("no candidate named ").strip("'")
        if msg.startswith("no candidate named") and target in expansion.groups:
            msg += f"; it is swept into {', '.join(expansion.groups[target])}: name one of those"
        doc = document_loc(loc)
        line, col = smap.locate(doc)
        problems.append(Problem(shown, line, col, _format_loc(doc), msg))
    if problems or recipe is None:
        unique = {(p.line, p.column, p.path, p.message): p for p in problems}  # a copy per swept candidate
        raise RecipeError(sorted(unique.values(), key=lambda p: (p.line, p.column)))
    recipe.source_path = path.resolve()
    return recipe


def _settings_model_or_none(kind: str) -> type[BaseModel] | None:
    try:
        return load_agent_class(kind).settings_model
    except AgentError:
        return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of recipes for the installed agents (editors use it for completion)."""
    schema = recipe_model().model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bakeoff recipe"
    schema.get("properties", {}).pop("source_path", None)
    return schema


def dump_schema() -> str:
    return json.dumps(json_schema(), indent=2)
