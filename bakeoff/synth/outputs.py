"""Where a synthesize job's data is, and reading it: the output file and its sidecars, a job by name, the path
behind a ``{synthesized: NAME}`` reference, and the records a job wrote (as written or in Alpaca form).

A job writes ``output`` (JSONL, appended batch by batch) and three sidecars next to it:

* ``<output>.report.json`` — counts: chunks/texts, generated, accepted, rejected by reason, time, leakage;
* ``<output>.ledger.jsonl`` — one line per finished unit (chunk × kind, or text): what makes a re-run skip it;
* ``<output>.rejected.jsonl`` — every rejected reply with its reason (to read when tuning a prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bakeoff.synth.jobs import GenerateJob, LabelJob, SynthError, SynthesizedRef

if TYPE_CHECKING:
    from bakeoff.recipe.schema import Recipe

__all__ = [
    "JobFiles",
    "find_job",
    "job_files",
    "load_synthesized",
    "resolve_data_path",
    "synthesized_path",
]


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
