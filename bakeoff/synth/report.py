"""Reporting a synthesize job: what one run did (:class:`JobSummary`) and ``<output>.report.json`` — totals
over the ledger and the output, the last run, the checks applied and, for jobs kept apart, the leakage found.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.io import read_jsonl, write_text_atomic
from bakeoff.synth.jobs import GenerateJob, LabelJob
from bakeoff.synth.leakage import check_leakage
from bakeoff.synth.outputs import JobFiles, find_job, job_files

if TYPE_CHECKING:
    from bakeoff.recipe.schema import Recipe
    from bakeoff.synth.plan import Plan

__all__ = ["JobSummary", "write_report"]


@dataclass
class JobSummary:
    """What one ``run_job`` did (``last run``) and what the output holds now (``totals``)."""

    name: str
    mode: str
    output: Path
    items: int  # chunks or texts planned
    units: int
    skipped: int  # units already done before this run
    generated: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0  # units whose batch failed or hit a generation error (retried next run)
    seconds: float = 0.0
    where: str = ""
    workers: int = 0
    errors: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def leaks(self) -> bool:
        return any(item.get("leaks") for item in self.report.get("leakage", []))


def _reason_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    total: Counter = Counter()
    for row in rows:
        total.update(row.get("rejected") or {})
    return dict(sorted(total.items()))


def write_report(
    recipe: Recipe,
    job: GenerateJob | LabelJob,
    plan: Plan,
    files: JobFiles,
    ledger: dict[str, dict[str, Any]],
    summary: JobSummary,
) -> dict[str, Any]:
    """Write ``<output>.report.json`` (atomically) and return what it holds."""
    from bakeoff.agents.synthesizer import DEFAULT_MIN_SUPPORT  # noqa: F401 - documented threshold lives there

    records = read_jsonl(files.output)
    report: dict[str, Any] = {
        "job": job.name,
        "mode": job.mode,
        "output": str(files.output),
        "generator": str(plan.spec.generator),
        "settings": job.model_dump(mode="json", by_alias=True, exclude={"output"}),
        "totals": _totals(plan, ledger, records),
        "last_run": _last_run(summary),
        "checks": _checks_doc(job),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if isinstance(job, GenerateJob):
        report["totals"]["by_kind"] = dict(Counter(r.get("kind") for r in records))
        if job.disjoint_from:
            report["leakage"] = [_leakage(recipe, other, files) for other in job.disjoint_from]
    else:
        report["totals"].update(_label_totals(records))
    write_text_atomic(files.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _totals(plan: Plan, ledger: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the output holds now, over every run (the ledger)."""
    planned = {t.key for t in plan.tasks} | {r.key for r in plan.pre_rejected}
    rows = list(ledger.values())
    generated = sum(r.get("generated", 0) for r in rows)
    accepted = sum(r.get("accepted", 0) for r in rows)
    return {
        "items": plan.items,
        "units_planned": len(planned),
        "units_done": len(planned & ledger.keys()),
        "units_stale": len(ledger.keys() - planned),
        "generated": generated,
        "accepted": accepted,
        "records_in_output": len(records),
        "rejected": _reason_counts(rows),
        "acceptance_rate": round(accepted / generated, 4) if generated else None,
    }


def _last_run(summary: JobSummary) -> dict[str, Any]:
    return {
        "skipped_units": summary.skipped,
        "generated": summary.generated,
        "accepted": summary.accepted,
        "rejected": dict(sorted(summary.rejected.items())),
        "failed_units": summary.failed,
        "errors": summary.errors[:10],
        "seconds": summary.seconds,
        "where": summary.where or "nothing to do",
        "workers": summary.workers,
    }


def _leakage(recipe: Recipe, other: str, files: JobFiles) -> dict[str, Any]:
    """What this job's output shares with job ``other``'s (a generate job kept apart by ``disjoint_from``)."""
    theirs = job_files(find_job(recipe, other)).output
    if theirs.is_file() and files.output.is_file():
        return check_leakage(theirs, files.output).to_dict()
    return {
        "a": str(theirs),
        "b": str(files.output),
        "leaks": False,
        "note": "not checked: a file does not exist yet",
    }


def _label_totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A label job's labels, and how often they agree with labels the input already had."""
    out: dict[str, Any] = {}
    with_gold = [r for r in records if isinstance(r.get("gold"), str)]
    if with_gold:
        agree = sum(r["gold"] == r["label"] for r in with_gold)
        out["agreement_with_input_labels"] = {
            "records": len(with_gold),
            "agree": agree,
            "rate": round(agree / len(with_gold), 4),
        }
    out["by_label"] = dict(Counter(r.get("label") for r in records))
    return out


def _checks_doc(job: GenerateJob | LabelJob) -> dict[str, str]:
    if isinstance(job, LabelJob):
        return {
            "unparseable_label": 'the reply names no label ({"label": ...} first, then the earliest label word)',
            "duplicate": "same normalised text as an earlier input line or record",
            "empty_field": "an input line without text",
        }
    return {
        "malformed_json": "no JSON object in the reply",
        "empty_field": "question or answer missing or blank",
        "unsupported": f"fewer than {job.min_support:.0%} of the answer's content words occur in the chunk, or "
        "the answer has a number the chunk lacks",
        "echo": "the question repeats the answer (a copied sentence)",
        "duplicate": "same normalised question as an accepted record",
        "generation_error": "the backend failed (the unit is retried next run)",
    }
