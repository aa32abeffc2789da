"""``synthesize:`` — data written by a model: question/answer and instruction records from the corpus, or labels
for unlabelled texts.

This module holds what a recipe and other stages need without running anything: the job settings (one small
model per mode), the ``{synthesized: NAME}`` reference that data fields accept, where a job's files are,
loaders (records, Alpaca form, evaluation questions) and the train/eval leakage check. Running a job lives in
:mod:`bakeoff.synth.run`; the prompts and checks in :mod:`bakeoff.agents.synthesizer`.

A job writes ``output`` (JSONL, appended batch by batch) and three sidecars next to it:

* ``<output>.report.json`` — counts: chunks/texts, generated, accepted, rejected by reason, time, leakage;
* ``<output>.ledger.jsonl`` — one line per finished unit (chunk × kind, or text): what makes a re-run skip it;
* ``<output>.rejected.jsonl`` — every rejected reply with its reason (to read when tuning a prompt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

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

if TYPE_CHECKING:
    from bakeoff.rag.corpus import Chunk
    from bakeoff.recipe.schema import Recipe

__all__ = [
    "FileOrSynthesized",
    "GenerateJob",
    "JOB_MODES",
    "LabelJob",
    "Leakage",
    "SynthError",
    "SynthesizeJob",
    "SynthesizedRef",
    "check_jobs",
    "check_scheduler",
    "check_leakage",
    "find_job",
    "job_files",
    "job_mode",
    "load_synthesized",
    "resolve_data_path",
    "synthesized_path",
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
    for i, job in enumerate(jobs):
        others = job.get("disjoint_from") if isinstance(job, dict) else None
        for j, other in enumerate(others if isinstance(others, list) else []):
            loc = ("synthesize", i, "disjoint_from", j)
            if other == job.get("name"):
                problems.append((loc, "a job cannot be disjoint from itself"))
            elif isinstance(other, str) and other not in names:
                problems.append(
                    (loc, f"no synthesize job named {other!r}; jobs: {', '.join(names) or 'none'}")
                )
            elif isinstance(other, str) and modes.get(other) != "generate":
                problems.append((loc, f"job {other!r} labels texts; disjoint_from names generate jobs"))
    problems.extend(_disjoint_cycles(jobs))
    refs: list[tuple[tuple, Any]] = []
    spec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    refs.append((("eval", "questions"), spec.get("questions")))
    for i, cand in enumerate(data.get("candidates") if isinstance(data.get("candidates"), list) else []):
        train = cand.get("train") if isinstance(cand, dict) else None
        spec = train.get("data") if isinstance(train, dict) else None
        if isinstance(spec, dict):
            refs.append((("candidates", i, "train", "data", "path"), spec.get("path")))
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


# -- where a job's data is ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobFiles:
    """The output of a job and its sidecars."""

    output: Path

    @property
    def report(self) -> Path:
        return self.output.with_name(self.output.name + ".report.json")

    @property
    def ledger(self) -> Path:
        return self.output.with_name(self.output.name + ".ledger.jsonl")

    @property
    def rejected(self) -> Path:
        return self.output.with_name(self.output.name + ".rejected.jsonl")

    def all(self) -> list[Path]:
        return [self.output, self.report, self.ledger, self.rejected]


def job_files(job: GenerateJob | LabelJob) -> JobFiles:
    return JobFiles(Path(job.output))


def _jobs_of(source: Any) -> list[GenerateJob | LabelJob]:
    jobs = getattr(source, "synthesize", None)
    if jobs is None and not hasattr(source, "synthesize"):
        raise TypeError(f"expected a Recipe or a RunContext, got {type(source).__name__}")
    return list(jobs or [])


def find_job(source: Recipe | Any, name: str) -> GenerateJob | LabelJob:
    """The job called ``name`` of a recipe (or a run context, which carries the recipe's jobs).

    Raises:
        SynthError: no such job.
    """
    jobs = _jobs_of(source)
    for job in jobs:
        if job.name == name:
            return job
    raise SynthError(f"no synthesize job named {name!r}; jobs: {', '.join(j.name for j in jobs) or 'none'}")


def synthesized_path(source: Recipe | Any, name: str) -> Path:
    """The output JSONL of job ``name`` (it may not exist yet: ``bakeoff synthesize`` writes it)."""
    return Path(find_job(source, name).output)


def resolve_data_path(source: Recipe | Any, value: Path | SynthesizedRef) -> Path:
    """A :data:`FileOrSynthesized` value as a file path.

    Raises:
        SynthError: the job does not exist, or has not written its output yet.
    """
    if isinstance(value, Path):
        return value
    path = synthesized_path(source, value.job)
    if not path.is_file():
        raise SynthError(
            f"{value}: {path} does not exist yet; run `bakeoff synthesize RECIPE --job {value.job}`"
        )
    return path


def load_synthesized(path: Path, *, form: Literal["records", "alpaca"] = "records") -> list[dict[str, Any]]:
    """The records a job wrote.

    Args:
        path: a job's output file (:func:`synthesized_path`).
        form: ``records`` as written (``question``/``answer``/``chunk_id``/... or ``text``/``label``), or
            ``alpaca``: ``{instruction, input, output}`` for instruction tuning (``input`` is empty; a label
            record's text is the instruction and its label the output).

    Raises:
        DataError: unreadable or malformed file.
    """
    from bakeoff.questions import read_records

    rows = read_records(path)
    for row in rows:
        row.pop("__line__", None)
    if form == "records":
        return rows
    out = []
    for row in rows:
        if row.get("kind") == "label":
            out.append({"instruction": row["text"], "input": "", "output": row["label"]})
        else:
            out.append({"instruction": row["question"], "input": "", "output": row["answer"]})
    return out


# -- leakage ------------------------------------------------------------------------------------------------
@dataclass
class Leakage:
    """What two data sets share: chunks, source files and (normalised) questions."""

    a: str
    b: str
    n_a: int
    n_b: int
    chunks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    unlocated: dict[str, int] = field(default_factory=dict)  # records with neither chunk id nor passage

    @property
    def leaks(self) -> bool:
        """Shared chunks or identical questions (a shared source file alone is expected when split by chunk)."""
        return bool(self.chunks or self.questions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "records": {"a": self.n_a, "b": self.n_b},
            "shared_chunks": self.chunks,
            "shared_sources": self.sources,
            "shared_questions": self.questions,
            "unlocated_records": self.unlocated,
            "leaks": self.leaks,
        }


def _chunk_ids(row: dict[str, Any], chunks: list[Chunk] | None) -> set[str]:
    ids = row.get("chunk_id") or row.get("chunk_ids")
    if isinstance(ids, str):
        return {ids}
    if isinstance(ids, list):
        return {str(i) for i in ids}
    passage = row.get("passage")
    if chunks and isinstance(passage, str) and passage.strip():
        return {c.id for c in chunks if passage.strip() in c.text}
    return set()


def _question(row: dict[str, Any]) -> str | None:
    for key in ("question", "instruction", "text", "input"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def check_leakage(a: Path, b: Path, *, chunks: list[Chunk] | None = None) -> Leakage:
    """Compare two JSONL data sets by source chunk, source file and normalised question.

    Records carry ``chunk_id`` (synthesized sets) or a ``passage``; with ``chunks`` (a loaded corpus), a
    passage is located in the chunks that contain it, so a hand-written evaluation set can be checked too.

    Raises:
        DataError: unreadable or malformed file.
    """
    from bakeoff.agents.synthesizer import normalise
    from bakeoff.questions import read_records

    sides = []
    for path in (a, b):
        rows = read_records(path)
        ids: set[str] = set()
        sources: set[str] = set()
        questions: dict[str, str] = {}
        unlocated = 0
        for row in rows:
            found = _chunk_ids(row, chunks)
            ids |= found
            unlocated += not found
            if isinstance(row.get("source"), str):
                sources.add(Path(row["source"]).name)
            q = _question(row)
            if q:
                questions.setdefault(normalise(q), q)
        sides.append((rows, ids, sources, questions, unlocated))
    (ra, ia, sa, qa, ua), (rb, ib, sb, qb, ub) = sides
    return Leakage(
        a=str(a),
        b=str(b),
        n_a=len(ra),
        n_b=len(rb),
        chunks=sorted(ia & ib),
        sources=sorted(sa & sb),
        questions=sorted(qa[k] for k in qa.keys() & qb.keys()),
        unlocated={k: v for k, v in (("a", ua), ("b", ub)) if v},
    )
