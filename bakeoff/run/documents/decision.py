"""The decision parts of ``scores.json``: what each candidate costs (``candidates.<c>.cost``), the verdict
(``verdict``), the fine-tune × RAG interaction (``interaction``) and the power of each paired test (fields of
``statistics.comparisons.<m>[]``). Written by :mod:`bakeoff.eval.verdict`; every field has a default, so a
run scored before these existed still loads (its ``verdict`` is ``None``).

Layout::

    candidates.<c>.cost          CandidateCost: training_s, training_s_original, training_cached, trained_by,
                                 latency_p50_s, latency_p95_s, tokens_in_per_answer, tokens_out_per_answer,
                                 peak_gpu_memory_gb
    verdict                      Verdict: rule, metric, best, recommended, margin, ci, reason, too_small,
                                 cost_order, warnings[]
    interaction                  Interaction: cells, metric, n, finetune / rag / interaction (Effect), reading
"""

from __future__ import annotations

from pydantic import Field

from bakeoff.run.documents.base import Document, Number

__all__ = ["CandidateCost", "Effect", "Interaction", "Verdict"]


class CandidateCost(Document):
    """What one candidate costs (``candidates.<c>.cost``)."""

    training_s: Number = 0
    """Seconds this run spent training the model it answers with (0 when the training cache had it)."""
    training_s_original: Number = 0
    """Seconds the training took when it ran (from the training cache's record; 0: nothing trained)."""
    training_cached: bool = False
    """The trained model came from the training cache."""
    trained_by: str | None = None
    """The candidate whose training this one answers with (itself, or the ``candidate:X`` it builds on)."""
    latency_p50_s: Number | None = None
    """Median seconds per answer."""
    latency_p95_s: Number | None = None
    tokens_in_per_answer: Number | None = None
    """Prompt tokens per answer (mean)."""
    tokens_out_per_answer: Number | None = None
    """Completion tokens per answer (mean)."""
    peak_gpu_memory_gb: Number | None = None
    """Peak GPU memory while training or answering, GiB (``None`` off a GPU)."""


class Verdict(Document):
    """The recommended candidate and why (``verdict``; see :mod:`bakeoff.eval.verdict`)."""

    rule: str = ""
    """The decision rule, in words."""
    metric: str | None = None
    """The headline metric the rule reads."""
    higher_is_better: bool = True
    best: str | None = None
    """The candidate with the best mean on ``metric``."""
    recommended: str | None = None
    """The least costly candidate not significantly worse than ``best``."""
    versus: str | None = None
    """What ``margin`` compares the recommendation with: ``best``, or (when it is the best) the runner-up."""
    margin: Number | None = None
    """``mean(recommended) - mean(versus)`` on their shared questions (in the metric's units)."""
    ci: list[Number] | None = None
    """Paired bootstrap interval of ``margin``."""
    p_holm: Number | None = None
    reason: str = ""
    """One sentence: the recommendation, its margin and interval, and what it saves."""
    too_small: bool = False
    """The evaluation set cannot separate the top candidates (their difference is below the minimum
    detectable one)."""
    power_note: str | None = None
    """How many questions would separate them."""
    cost_order: list[str] = Field(default_factory=list)
    """Every candidate, least costly first (the order the rule walks)."""
    eligible: list[str] = Field(default_factory=list)
    """The candidates not significantly worse than ``best``."""
    warnings: list[str] = Field(default_factory=list)
    """Sentences shown under the verdict (failed candidates, retention or served-form losses...); add with
    :func:`bakeoff.eval.verdict.add_warning`."""


class Effect(Document):
    """One effect of the 2×2 with its paired bootstrap interval (in the metric's direction: + is better)."""

    estimate: Number = 0.0
    ci: list[Number] | None = None


class Interaction(Document):
    """Fine-tune × RAG (``interaction``): main effects and interaction over the four cells."""

    cells: dict[str, str] = Field(default_factory=dict)
    """``base``, ``rag``, ``finetuned``, ``finetuned_rag`` -> candidate name."""
    metric: str | None = None
    n: int = 0
    """Questions all four cells have a value for."""
    finetune: Effect = Field(default_factory=Effect)
    """Main effect of fine-tuning: the mean of (finetuned − base) and (finetuned_rag − rag)."""
    rag: Effect = Field(default_factory=Effect)
    """Main effect of RAG: the mean of (rag − base) and (finetuned_rag − finetuned)."""
    interaction: Effect = Field(default_factory=Effect)
    """(finetuned_rag − finetuned) − (rag − base): what RAG adds on a fine-tune beyond what it adds on the
    base model."""
    reading: str = ""
    """``add up``, ``overlap``, ``interfere`` or ``reinforce``."""
    sentence: str = ""
