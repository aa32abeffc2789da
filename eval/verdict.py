"""The verdict: which candidate to use, how sure, at what cost.

**Rule.** Among the candidates with answers, ``best`` has the best mean on the headline metric. A candidate
is *eligible* when the paired test against ``best`` (Holm-corrected, :mod:`bakeoff.eval.stats`) does not find
it significantly worse. The **recommended** candidate is the least costly eligible one, costs compared in
this order: needs training or not, training seconds (the original ones when the cache had them), median
seconds per answer, tokens per answer. Its ``margin`` and interval are the paired difference to ``best`` (or,
when it is the best, to the runner-up).

:func:`decide` adds everything to a :class:`~bakeoff.run.documents.scores.Scores` document after scoring:
the cost of each candidate (``candidates.<c>.cost``, from the answers and the manifest's training facts), the
power of each paired test (:mod:`bakeoff.eval.power`), the fine-tune × RAG interaction
(:mod:`bakeoff.eval.interaction`) and ``verdict``. :func:`add_warning` appends a sentence other features
want shown under the verdict (retention or served-form losses); :func:`verdict_lines` is the text every
front end shows first (terminal, console, report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakeoff.run.documents.decision import CandidateCost, Verdict
from bakeoff.run.documents.manifest import CandidateFacts, Manifest
from bakeoff.run.documents.scores import Comparison, Scores

__all__ = ["RULE", "add_warning", "candidate_costs", "decide", "recommend", "verdict_lines"]

RULE = (
    "recommend the least costly candidate that is not significantly worse than the best on {metric} "
    "(paired test, Holm-corrected, alpha {alpha}); cost = training first, then seconds and tokens per answer"
)


def add_warning(scores: Scores, sentence: str) -> None:
    """Append one sentence to the warnings shown under the verdict (``verdict.warnings``).

    Features that find something the decision should not hide — a fine-tune that lost retention questions,
    a served (GGUF/Ollama) form that scores below the trained one, a candidate that failed — call this after
    :func:`decide` (or before: the warnings are kept when the verdict is made). Duplicates are dropped.

    Args:
        scores: the run's scores document.
        sentence: one sentence, written for a user ("lora: −0.12 [−0.18, −0.06] on retention").
    """
    if scores.verdict is None:
        scores.verdict = Verdict()
    if sentence not in scores.verdict.warnings:
        scores.verdict.warnings = [*scores.verdict.warnings, sentence]


# -- cost ---------------------------------------------------------------------------------------------------


def _training(facts: CandidateFacts | None) -> dict[str, Any]:
    extra = (facts.model_extra or {}) if facts is not None else {}
    training = extra.get("training")
    return training if isinstance(training, Mapping) else {}


def candidate_costs(scores: Scores, manifest: Manifest | None) -> dict[str, CandidateCost]:
    """Each scored candidate's cost: its answers' latency and tokens, and the training it answers with
    (its own, or that of the ``candidate:X`` model it builds on)."""
    facts = manifest.candidates if manifest is not None else {}
    out: dict[str, CandidateCost] = {}
    for name, cand in scores.candidates.items():
        own = facts.get(name)
        trained_by = name if _training(own) else None
        model = own.model if own is not None else None
        if trained_by is None and model and model.startswith("candidate:"):
            trained_by = model.split(":", 1)[1]
        training = _training(facts.get(trained_by)) if trained_by else {}
        original = float(training.get("train_seconds") or 0.0)
        if trained_by and not training and manifest is not None:  # the trained model did not answer
            original = float(manifest.prepare_s.get(trained_by) or 0.0)
        cached = bool(training.get("cache_hit"))
        answers = cand.n or 0
        answering_peak = (own.model_extra or {}).get("peak_gpu_memory_gb") if own is not None else None
        peaks = [
            p for p in (training.get("peak_gpu_memory_gb"), answering_peak) if isinstance(p, int | float)
        ]
        out[name] = CandidateCost(
            training_s=0 if cached else round(original, 1),
            training_s_original=round(original, 1),
            training_cached=cached,
            trained_by=trained_by if original or training else None,
            latency_p50_s=cand.latency_s.p50,
            latency_p95_s=cand.latency_s.p95,
            tokens_in_per_answer=round(cand.tokens.prompt / answers, 1) if answers else None,
            tokens_out_per_answer=round(cand.tokens.completion / answers, 1) if answers else None,
            peak_gpu_memory_gb=max(peaks) if peaks else None,
        )
    return out


def _cost_key(cost: CandidateCost) -> tuple[bool, float, float, float]:
    tokens = (cost.tokens_in_per_answer or 0.0) + (cost.tokens_out_per_answer or 0.0)
    return (cost.training_s_original > 0, cost.training_s_original, cost.latency_p50_s or 0.0, tokens)


# -- the rule -----------------------------------------------------------------------------------------------


def _pair(scores: Scores, metric: str, x: str, y: str) -> Comparison | None:
    for e in scores.comparisons(metric):
        if {e.a, e.b} == {x, y}:
            return e
    return None


def _oriented(e: Comparison, x: str) -> tuple[float, list[float] | None]:
    """``mean(x) - mean(other)`` and its interval, from a comparison that holds x."""
    if e.a == x:
        return e.delta, list(e.ci) if e.ci else None
    return -e.delta, [-e.ci[1], -e.ci[0]] if e.ci else None


def _higher_is_better(metric: str) -> bool:
    from bakeoff.eval import metric_class

    try:
        return bool(metric_class(metric).higher_is_better)
    except Exception:  # a plugin metric that is no longer installed: the common direction
        return True


def recommend(scores: Scores, *, higher_is_better: bool | None = None) -> Verdict:
    """Apply the rule to a scored document whose candidates have ``cost`` (see :func:`decide`)."""
    metric = scores.headline
    old = scores.verdict.warnings if scores.verdict is not None else []
    alpha = scores.statistics.method.alpha if scores.statistics else 0.05
    verdict = Verdict(rule=RULE.format(metric=metric, alpha=alpha), metric=metric, warnings=list(old))
    for name, cand in scores.candidates.items():
        if cand.errors and not (cand.n and cand.errors >= cand.n):  # all failed: failure_sentences says it
            add_to(verdict, f"{name}: {cand.errors} of {cand.n} answers failed (scored as empty replies).")
    means = {c: m for c, m in scores.means(metric).items() if not _all_failed(scores, c)}
    if not means:
        verdict.reason = f"no candidate has a value for the headline metric {metric}: nothing to recommend."
        return verdict
    hib = _higher_is_better(metric) if higher_is_better is None else higher_is_better
    verdict.higher_is_better = hib
    ranked = sorted(means, key=lambda c: -means[c] if hib else means[c])
    best = ranked[0]
    costs = {c: scores.candidates[c].cost or CandidateCost() for c in means}
    order = sorted(means, key=lambda c: (_cost_key(costs[c]), list(means).index(c)))
    eligible = [c for c in order if c == best or not _worse(_pair(scores, metric, c, best), best)]
    rec = eligible[0]
    verdict.best, verdict.recommended, verdict.cost_order, verdict.eligible = best, rec, order, eligible
    versus = best if rec != best else (ranked[1] if len(ranked) > 1 else None)
    pair = _pair(scores, metric, rec, versus) if versus else None
    if pair is not None:
        verdict.versus = versus
        verdict.margin, verdict.ci = _oriented(pair, rec)
        verdict.p_holm = pair.p_holm
    verdict.reason = _reason(verdict, costs, means, scores)
    top = _pair(scores, metric, ranked[0], ranked[1]) if len(ranked) > 1 else None
    if top is not None and not top.significant and top.mdd is not None and abs(top.delta) < top.mdd:
        verdict.too_small = True
        verdict.power_note = _power_note(top, ranked[0], ranked[1], metric, alpha)
    return verdict


def add_to(verdict: Verdict, sentence: str) -> None:
    if sentence not in verdict.warnings:
        verdict.warnings = [*verdict.warnings, sentence]


def _all_failed(scores: Scores, name: str) -> bool:
    cand = scores.candidates[name]
    return bool(cand.n) and cand.errors >= (cand.n or 0)


def _worse(pair: Comparison | None, best: str) -> bool:
    return pair is not None and pair.significant and pair.better == best


def _times(x: float | None, y: float | None) -> float | None:
    return y / x if x and y and x > 0 else None


def _reason(
    v: Verdict, costs: Mapping[str, CandidateCost], means: Mapping[str, float], scores: Scores
) -> str:
    rec, best, metric = v.recommended, v.best, v.metric
    lo, hi = v.ci or (None, None)
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None else ""
    if v.versus is None:
        return f"{rec}: the only candidate with a value for {metric} ({means[rec]:.2f})."
    if rec != best:
        head = f"{rec}: within {abs(v.margin or 0):.2f}{ci} of {best} on {metric}"
        return head + "".join(f", {s}" for s in _savings(costs[rec], costs[best], best)) + "."
    cheaper = v.cost_order[: v.cost_order.index(rec)]
    if not cheaper:
        return f"{rec}: best on {metric} ({means[rec]:.2f}, {v.margin:+.2f}{ci} over {v.versus}) and the least costly."
    rival = max(cheaper, key=lambda c: means[c] if v.higher_is_better else -means[c])
    e = _pair(scores, metric, rec, rival)
    if e is None:
        return f"{rec}: best on {metric} ({means[rec]:.2f}); no paired test against the less costly {rival}."
    gap, (lo, hi) = _oriented(e, rec)[0], _oriented(e, rec)[1] or (float("nan"), float("nan"))
    return (
        f"{rec}: best on {metric} ({means[rec]:.2f}), {gap:+.2f} [{lo:+.2f}, {hi:+.2f}] over {rival}, the best "
        f"less costly candidate (p_holm {e.p_holm:.3f}): worth its cost."
    )


def _savings(rec: CandidateCost, other: CandidateCost, other_name: str) -> list[str]:
    out = []
    if rec.training_s_original == 0 and other.training_s_original > 0:
        out.append(f"needs no training ({other_name}: {other.training_s_original:.0f} s)")
    elif other.training_s_original > rec.training_s_original * 1.1:
        out.append(f"{other.training_s_original - rec.training_s_original:.0f} s less training")
    speed = _times(rec.latency_p50_s, other.latency_p50_s)
    if speed and speed >= 1.1:
        out.append(f"{speed:.1f}x faster per answer")
    tokens = _times(
        (rec.tokens_in_per_answer or 0) + (rec.tokens_out_per_answer or 0),
        (other.tokens_in_per_answer or 0) + (other.tokens_out_per_answer or 0),
    )
    if tokens and tokens >= 1.1:
        out.append(f"{tokens:.1f}x fewer tokens per answer")
    return out or ["no cheaper than it, but not significantly worse"]


def _power_note(e: Comparison, first: str, second: str, metric: str, alpha: float) -> str:
    need = f"about {e.n_needed:,} questions" if e.n_needed else "more questions than any set holds"
    return (
        f"the evaluation set is too small to separate {first} from {second}: {e.n} paired questions detect a "
        f"difference of {e.mdd:.2f} or more on {metric} (80% power, alpha {alpha}); the observed "
        f"{abs(e.delta):.2f} would need {need}."
    )


def decide(scores: Scores, manifest: Manifest | Mapping[str, Any] | None = None) -> Scores:
    """Add cost, power, the fine-tune × RAG interaction and the verdict to ``scores`` (in place; returned).

    Args:
        scores: a scored document (with ``statistics``).
        manifest: the run's manifest (training facts, agents, models); ``None``: costs from the answers only
            and no interaction.
    """
    from bakeoff.eval.interaction import find_cells, interaction_effects
    from bakeoff.eval.power import add_power

    doc = Manifest.of(manifest) if manifest is not None else None
    for name, cost in candidate_costs(scores, doc).items():
        scores.candidates[name].cost = cost
    add_power(scores)
    metric = scores.headline
    cells = find_cells(doc.candidates, list(scores.candidates)) if doc is not None else None
    if cells and metric and scores.statistics is not None:
        method = scores.statistics.method
        effects = interaction_effects(
            scores.per_answer,
            cells,
            metric,
            higher_is_better=_higher_is_better(metric),
            resamples=method.resamples or 2000,
            confidence=method.confidence,
            seed=method.seed or 0,
        )
        if effects is not None:
            scores.interaction = effects
    scores.verdict = recommend(scores)
    for sentence in _findings(scores):
        add_to(scores.verdict, sentence)
    return scores


def _findings(scores: Scores) -> list[str]:
    """What the decision must not hide: failed candidates, fine-tunes that broke retention questions, served
    forms that score below the trained model (each feature's own wording)."""
    from bakeoff.eval.failures import failure_sentences
    from bakeoff.eval.retention import retention_sentences
    from bakeoff.eval.served import served_warnings

    return [*failure_sentences(scores), *retention_sentences(scores), *served_warnings(scores)]


def _cost_text(name: str, cost: CandidateCost | None) -> str:
    if cost is None:
        return "cost unknown"
    if cost.training_s_original:
        by = f" ({cost.trained_by}'s fine-tune)" if cost.trained_by and cost.trained_by != name else ""
        cached = ", cached: 0 s this run" if cost.training_cached else ""
        trained = f"trained {cost.training_s_original:.0f} s{by}{cached}"
    else:
        trained = "no training"
    parts = [trained]
    if cost.latency_p50_s is not None:
        parts.append(f"{cost.latency_p50_s:.2f} s/answer p50, {cost.latency_p95_s or 0:.2f} p95")
    if cost.tokens_in_per_answer is not None:
        parts.append(f"{cost.tokens_in_per_answer:.0f} tokens in, {cost.tokens_out_per_answer or 0:.0f} out")
    if cost.peak_gpu_memory_gb is not None:
        parts.append(f"{cost.peak_gpu_memory_gb:.1f} GiB GPU peak")
    return "; ".join(parts)


def verdict_lines(scores: Scores) -> list[tuple[str, str]]:
    """The verdict as ``(label, text)`` lines, the order every front end shows them: ``verdict``, ``why``,
    ``cost``, ``rule``, then ``too small``, ``fine-tune × RAG`` and one ``warning`` each (empty for a run
    scored before verdicts)."""
    v = scores.verdict
    if v is None or (v.recommended is None and not v.warnings and not v.reason):
        return []
    lines: list[tuple[str, str]] = []
    if v.recommended is not None:
        lines.append(("verdict", f"use {v.recommended}"))
    if v.reason:
        lines.append(("why", v.reason))
    if v.recommended is not None:
        lines.append(
            ("cost", f"{v.recommended}: {_cost_text(v.recommended, scores.candidates[v.recommended].cost)}")
        )
    if v.rule:
        lines.append(("rule", v.rule))
    if v.power_note:
        lines.append(("too small", v.power_note))
    if scores.interaction is not None and scores.interaction.sentence:
        lines.append(("fine-tune × RAG", scores.interaction.sentence))
    lines.extend(("warning", w) for w in v.warnings)
    return lines


def cost_rows(scores: Scores, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One plain row per candidate's cost (for tables in the console and the report)."""
    rows = []
    for name in names or list(scores.candidates):
        cost = scores.candidates[name].cost or CandidateCost()
        rows.append({"candidate": name, **cost.model_dump()})
    return rows
