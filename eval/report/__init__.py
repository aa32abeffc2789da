"""``bakeoff report``: a run's results as a self-contained Markdown or HTML document.

The report is built once as a list of blocks (:mod:`.blocks`: headings, paragraphs, tables, charts), one
function per section (:mod:`.sections`), and rendered to either format: HTML embeds every chart
(:mod:`.charts`) as a base64 ``data:`` URI (one file to mail or attach, nothing to fetch); Markdown links PNG
files written beside it (``<stem>-<chart>.png``). Reads the run's typed documents
(:mod:`bakeoff.run.documents`); may import ``bakeoff.run.documents``, ``bakeoff.eval.formatting`` and
matplotlib (inside the chart functions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bakeoff.eval.report import analysis, sections
from bakeoff.eval.report.blocks import Block, render_html, render_markdown
from bakeoff.eval.report.served import served_section

__all__ = ["build_report", "write_report"]


def build_report(run: Any) -> list[Block]:
    """The report's blocks for a run (a :class:`~bakeoff.run.store.RunInfo` with scores)."""
    scores = run.scores_document
    manifest = run.manifest_document
    return [
        *sections.header_section(run.recipe, run.run_id, run.status, manifest, scores),
        *sections.verdict_section(scores),
        *sections.candidates_section(manifest, scores),
        *sections.scores_section(scores),
        *sections.charts_section(scores),
        *sections.comparisons_section(scores),
        *sections.judge_section(scores),
        *analysis.analysis_sections(scores),
        *sections.error_analysis_section(scores),
        *served_section(scores),
        *sections.cost_section(scores),
        *sections.reading_section(),
    ]


def write_report(run: Any, path: Path, fmt: Literal["md", "html"]) -> list[Path]:
    """Write the report for ``run`` to ``path`` (Markdown also writes its PNGs beside it).

    Returns:
        Every file written, the report first.

    Raises:
        ValueError: the run has no scores.
    """
    if not run.scores:
        raise ValueError(f"run {run.run_id} has no scores.json (it did not finish); nothing to report")
    blocks = build_report(run)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        path.write_text(render_html(blocks), encoding="utf-8")
        return [path]
    text, files = render_markdown(blocks, path.stem)
    written = [path]
    for name, data in files.items():
        (path.parent / name).write_bytes(data)
        written.append(path.parent / name)
    path.write_text(text, encoding="utf-8")
    return written
