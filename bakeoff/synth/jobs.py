"""``synthesize:`` — data written by a model: question/answer and instruction records from the corpus, or labels
for unlabelled texts.

This module holds the job settings a recipe declares (one small model per mode), the ``{synthesized: NAME}``
reference that data fields accept, and the checks across jobs on the raw recipe. Where a job's files are and
reading them is :mod:`bakeoff.synth.outputs`; the train/eval leakage check :mod:`bakeoff.synth.leakage`;
running a job :mod:`bakeoff.synth.run` (its units :mod:`bakeoff.synth.plan`, its report
:mod:`bakeoff.synth.report`); the prompts and checks of the replies :mod:`bakeoff.agents.synthesizer`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bakeoff.core import GenerationSettings
from bakeoff.errors import BakeoffError
from bakeoff.models.refs import CandidateRef, ModelRefField
from bakeoff.recipe.fields import ExistingFile, RecipePath

__all__ = [
    "FileOrSynthesized",
    "GenerateJob",
    "JOB_MODES",
    "LabelJob",
    "SynthError",
    "SynthesizeJob",
    "SynthesizedRef",
    "check_jobs",
    "check_scheduler",
    "job_mode",
    "job_model",
]

JOB_MODES = ("generate", "label")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class SynthError(BakeoffError):
    """A synthesize job cannot run or its data cannot be found; the message says what to do."""


def check_scheduler(value: str) -> str:
    if value in ("local", "inline") or re.match(r"^(tcp|tls|ucx|inproc)://.+", value):
        return value
    raise ValueError(
        "scheduler: write `local` (default), `inline` or a scheduler address like tcp://host:8786"
    )


class _JobBase(BaseModel):
    """Settings every synthesize job has."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        pattern=_NAME,
        max_length=80,
        description="Job name: `bakeoff synthesize RECIPE --job NAME`, and `{synthesized: NAME}` in data fields.",
    )
    generator: ModelRefField | None = Field(
        None,
        description="Model that writes (or labels): `embedded:NAME`, `hf:PATH`, `ollama:MODEL`, "
        "`openai-compatible:URL#MODEL`. Default: the recipe's `base_model`.",
    )
    output: RecipePath = Field(
        ...,
        description="JSONL file the accepted records are appended to, batch by batch; sidecars next to it: "
        "`.report.json` (counts, rejections by reason), `.ledger.jsonl` (finished units, so a re-run skips them), "
        "`.rejected.jsonl` (rejected replies with reasons).",
    )
    seed: int = Field(0, description="Seed for choosing chunks/texts and examples, and for sampling.")
    scheduler: Annotated[str, AfterValidator(check_scheduler)] = Field(
        "local",
        description="Where batches run: `local` (a Dask LocalCluster on this machine, one thread per worker), "
        "`tcp://HOST:PORT` (an existing Dask scheduler; its workers need bakeoff installed) or `inline` "
        "(no Dask, this process).",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=512,
        description="LocalCluster workers; default: the machine's cores, at most one per 2 GiB of free memory, "
        "and no more than there are batches.",
    )

    @field_validator("generator")
    @classmethod
    def _no_candidate(cls, value):
        if isinstance(value, CandidateRef):
            raise ValueError("generator: a candidate's model cannot be shipped to workers; name a model")
        return value

    @model_validator(mode="after")
    def _workers_local_only(self):
        if self.workers is not None and self.scheduler != "local":
            raise ValueError(
                f"workers: only for scheduler: local (a {self.scheduler} scheduler has the workers that joined it)"
            )
        return self


def _from_corpus(value: Any) -> str:
    if value != "corpus":
        raise ValueError(
            f"from: {value!r} — a generate job reads the recipe's corpus (`from: corpus`); to label the texts "
            "of a JSONL file, add `mode: label`"
        )
    return value


class GenerateJob(_JobBase):
    """Write question/answer or instruction records from the recipe's corpus chunks."""

    mode: Literal["generate"] = Field("generate", description="`generate` (default) or `label`.")
    from_: Annotated[str, PlainValidator(_from_corpus), WithJsonSchema({"const": "corpus"})] = Field(
        "corpus", alias="from", description="`corpus`: the chunks of the recipe's `corpus:` block."
    )
    per_chunk: int = Field(2, ge=1, le=32, description="Records asked for per chunk and kind.")
    kinds: list[Literal["qa", "instruction"]] = Field(
        ["qa"],
        min_length=1,
        description="`qa`: a question and its short answer; `instruction`: a task and its response.",
    )
    max_chunks: int | None = Field(
        None, ge=1, description="Use at most N chunks, drawn at random with `seed` (quick iterations)."
    )
    disjoint_from: list[str] = Field(
        default_factory=list,
        description="Jobs whose chunks this job must not use (an evaluation set kept apart from training data); "
        "the leakage check is reported.",
    )
    disjoint_by: Literal["chunk", "source"] = Field(
        "chunk", description="With `disjoint_from`: leave out the other jobs' chunks, or their whole files."
    )
    min_support: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Grounding check: least share of an answer's content words (stop words dropped) that must "
        "occur in its chunk; an answer with a number the chunk lacks is rejected too.",
    )
    chunks_per_task: int = Field(
        4, ge=1, le=4096, description="Chunks per Dask task (each task's prompts are generated as one batch)."
    )
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(max_new_tokens=96),
        description="Decoding settings (default greedy, 96 new tokens).",
    )

    @field_validator("disjoint_from")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("disjoint_from: a job is named twice")
        return value


class LabelJob(_JobBase):
    """Label the texts of a JSONL file with a few-shot prompt."""

    mode: Literal["label"] = Field(..., description="`label`")
    from_: ExistingFile = Field(
        ...,
        alias="from",
        description="JSONL of texts to label, one per line: `text` (or `question`/`input`), optional `id`; an "
        "existing `label` is kept as `gold` and only reported as agreement.",
    )
    labels: list[str] | None = Field(
        None, min_length=2, description="The label set; default: the recipe's `labels`."
    )
    examples: ExistingFile | None = Field(
        None,
        description="Few-shot examples: JSONL with `text` and `label` (like data/reviews-examples.jsonl).",
    )
    k: int = Field(6, ge=0, le=64, description="Examples shown before each text (drawn with `seed`).")
    max_texts: int | None = Field(None, ge=1, description="Label at most the first N texts.")
    texts_per_task: int = Field(16, ge=1, le=4096, description="Texts per Dask task (one batch each).")
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(max_new_tokens=16),
        description="Decoding settings (default greedy, 16 new tokens).",
    )

    @model_validator(mode="after")
    def _k_needs_examples(self) -> LabelJob:
        if self.k > 0 and self.examples is None and "k" in self.model_fields_set:
            raise ValueError(f"k: {self.k} needs `examples:` (a JSONL file of text/label pairs)")
        return self


def job_mode(value: Any) -> str | None:
    """The discriminator of a job: its ``mode`` (``generate`` when absent)."""
    if isinstance(value, dict):
        mode = value.get("mode", "generate")
        return mode if isinstance(mode, str) else None
    return getattr(value, "mode", None)


SynthesizeJob = Annotated[
    Union[Annotated[GenerateJob, Tag("generate")], Annotated[LabelJob, Tag("label")]],  # noqa: UP007
    Discriminator(job_mode),
]
"""One entry of the recipe's ``synthesize:`` list (chosen by ``mode``)."""


def job_model(mode: Any) -> type[BaseModel] | None:
    return {"generate": GenerateJob, "label": LabelJob}.get(mode)


# -- {synthesized: NAME} ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthesizedRef:
    """A data field's reference to the output of a recipe's synthesize job."""

    job: str

    def __str__(self) -> str:
        return f"{{synthesized: {self.job}}}"


def _file_or_synthesized(value: Any, info: ValidationInfo) -> Path | SynthesizedRef:
    if isinstance(value, Path | SynthesizedRef):
        return value
    if isinstance(value, dict):
        name = value.get("synthesized")
        if set(value) != {"synthesized"} or not isinstance(name, str) or not name:
            raise ValueError("write a JSONL file path, or {synthesized: JOB} naming a job of `synthesize:`")
        return SynthesizedRef(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("write a JSONL file path, or {synthesized: JOB} naming a job of `synthesize:`")
    from bakeoff.recipe.fields import must_exist, resolve_path  # the same rules as every recipe path

    return must_exist(resolve_path(Path(value), info), info)


FileOrSynthesized = Annotated[
    Path | SynthesizedRef,
    PlainValidator(_file_or_synthesized),
    PlainSerializer(lambda v: {"synthesized": v.job} if isinstance(v, SynthesizedRef) else str(v)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "a JSONL file (relative to the recipe)"},
                {
                    "type": "object",
                    "properties": {"synthesized": {"type": "string", "description": "a synthesize job name"}},
                    "required": ["synthesized"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
"""A pydantic field type: an existing JSONL file, or ``{synthesized: JOB}`` (that job's output)."""


# -- cross-field checks on the raw recipe --------------------------------------------------------------------
def check_jobs(data: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Checks across jobs and the rest of the recipe, on the raw document. Returns (location, message) pairs."""
    problems: list[tuple[tuple, str]] = []
    jobs = data.get("synthesize") if isinstance(data.get("synthesize"), list) else []
    modes = _each_job(data, jobs, problems)
    problems.extend(_disjoint_refs(jobs, modes))
    problems.extend(_disjoint_cycles(jobs))
    problems.extend(_synthesized_refs(data, modes))
    return problems


def _each_job(
    data: dict[str, Any], jobs: list[Any], problems: list[tuple[tuple, str]]
) -> dict[str, str | None]:
    """Per-job checks (unique names and outputs, what each mode needs); returns each job name's mode."""
    names: dict[str, int] = {}
    outputs: dict[str, int] = {}
    modes: dict[str, str | None] = {}
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            continue
        name, output, mode = job.get("name"), job.get("output"), job_mode(job)
        if isinstance(name, str):
            if name in names:
                problems.append(
                    (
                        (("synthesize", i, "name")),
                        f"duplicate job name {name!r} (also synthesize[{names[name]}])",
                    )
                )
            names.setdefault(name, i)
            modes[name] = mode
        if isinstance(output, str):
            if output in outputs:
                problems.append(
                    (
                        ("synthesize", i, "output"),
                        f"output {output!r} is also written by synthesize[{outputs[output]}]",
                    )
                )
            outputs.setdefault(output, i)
        if mode == "generate" and not isinstance(data.get("corpus"), dict):
            problems.append(
                (("synthesize", i), "a generate job reads the corpus; add a top-level `corpus:` block")
            )
        if mode == "label" and not job.get("labels") and not data.get("labels"):
            problems.append(
                (("synthesize", i), "a label job needs `labels:` (here or at the top of the recipe)")
            )
    return modes


def _disjoint_refs(jobs: list[Any], modes: dict[str, str | None]) -> list[tuple[tuple, str]]:
    """``disjoint_from`` names other generate jobs."""
    problems: list[tuple[tuple, str]] = []
    for i, job in enumerate(jobs):
        others = job.get("disjoint_from") if isinstance(job, dict) else None
        for j, other in enumerate(others if isinstance(others, list) else []):
            loc = ("synthesize", i, "disjoint_from", j)
            if other == job.get("name"):
                problems.append((loc, "a job cannot be disjoint from itself"))
            elif isinstance(other, str) and other not in modes:
                problems.append(
                    (loc, f"no synthesize job named {other!r}; jobs: {', '.join(modes) or 'none'}")
                )
            elif isinstance(other, str) and modes.get(other) != "generate":
                problems.append((loc, f"job {other!r} labels texts; disjoint_from names generate jobs"))
    return problems


def _synthesized_refs(data: dict[str, Any], names: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Each ``{synthesized: NAME}`` (evaluation questions, training data) names a job."""
    refs: list[tuple[tuple, Any]] = []
    spec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    refs.append((("eval", "questions"), spec.get("questions")))
    for i, cand in enumerate(data.get("candidates") if isinstance(data.get("candidates"), list) else []):
        train = cand.get("train") if isinstance(cand, dict) else None
        spec = train.get("data") if isinstance(train, dict) else None
        if isinstance(spec, dict):
            refs.append((("candidates", i, "train", "data", "path"), spec.get("path")))
    problems: list[tuple[tuple, str]] = []
    for loc, ref in refs:
        if (
            isinstance(ref, dict)
            and isinstance(ref.get("synthesized"), str)
            and ref["synthesized"] not in names
        ):
            problems.append(
                (
                    (*loc, "synthesized"),
                    f"no synthesize job named {ref['synthesized']!r}; jobs: {', '.join(names) or 'none'}",
                )
            )
    return problems


def _disjoint_cycles(jobs: list[Any]) -> list[tuple[tuple, str]]:
    edges = {
        job["name"]: [o for o in job["disjoint_from"] if isinstance(o, str) and o != job["name"]]
        for job in jobs
        if isinstance(job, dict)
        and isinstance(job.get("name"), str)
        and isinstance(job.get("disjoint_from"), list)
    }
    problems: list[tuple[tuple, str]] = []
    for i, job in enumerate(jobs):
        name = job.get("name") if isinstance(job, dict) else None
        if not isinstance(name, str):
            continue
        stack, seen = list(edges.get(name, [])), set()
        while stack:
            other = stack.pop()
            if other == name:
                problems.append(
                    (
                        ("synthesize", i, "disjoint_from"),
                        f"jobs are disjoint from each other in a cycle ({name})",
                    )
                )
                break
            if other not in seen:
                seen.add(other)
                stack.extend(edges.get(other, []))
    return problems
