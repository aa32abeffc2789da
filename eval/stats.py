"""Statistics that say whether a difference between candidates is real.

Every candidate answers the same questions, so candidates are compared *paired*, question by question: the
per-question difference removes the variation between easy and hard questions, which is most of the noise.

What is computed (all resampling is seeded: the same scores and seed give the same numbers):

* **Mean with a bootstrap interval** per candidate and metric: the BCa (bias-corrected and accelerated)
  interval of ``scipy.stats.bootstrap`` over ``resamples`` resamples of the questions that have a value
  (missing values are left out, never counted 0). At the 12–50 questions users have, the plain percentile
  interval under-covers, most on skewed scores (many 0s, a few 1s); BCa corrects for the bias and skew of
  the resampled means (``tests/test_stats_coverage.py`` measures both). A sample with one value, or all
  values equal, has the point interval ``[v, v]``; with two values, or where BCa is undefined (a degenerate
  bootstrap distribution), the percentile interval of the same resamples is used.
* **Paired difference** for every pair of candidates (a, b) and metric, on the questions both have a value
  for: ``delta = mean(a - b)``, its paired BCa interval (questions resampled, both candidates together)
  and a two-sided **paired permutation test** p-value from ``scipy.stats.permutation_test`` (sign flips of
  the per-question differences; all 2^n flips are enumerated, an exact p, when 2^n ≤ ``permutations``:
  n ≤ 13 at the default 10,000). Corpus-level
  metrics (macro-F1) use the paired bootstrap for both the interval and the p-value.
* **McNemar's exact test** for classification accuracy (the binomial test on the discordant questions: a
  right and b wrong versus a wrong and b right), which is the standard paired test for two classifiers.
* **Holm's correction** across all pairs of one metric (``p_holm``); a difference is *significant* when
  ``p_holm < alpha``. Metrics are not corrected against each other: pick the headline metric before looking.

``scores.json`` layout (keys added by this module; everything older is unchanged)::

    "headline": "rougeL",                         # the metric error analysis and reports lead with
    "candidates": {NAME: {"metrics": {METRIC: {
        "mean": 0.41, "n": 48, "missing": 0,      # as before
        "ci": [0.36, 0.46]                        # bootstrap interval of the mean (null when n = 0)
    }}}},
    "statistics": {
        "method": {"confidence": 0.95, "resamples": 2000, "permutations": 10000, "seed": 0,
                   "alpha": 0.05, "correction": "holm", ...},
        "comparisons": {METRIC: [                 # one entry per pair, in recipe order (a before b)
            {"a": "rag", "b": "zero-shot", "n": 48,
             "mean_a": 0.52, "mean_b": 0.31,
             "delta": 0.21, "ci": [0.15, 0.27],   # a - b on the shared questions
             "p": 0.0001, "p_holm": 0.0003, "significant": true,
             "test": "permutation",               # or "mcnemar" (accuracy), "bootstrap" (corpus-level)
             "wins": 30, "losses": 5, "ties": 13, # questions where a > b, a < b, a == b
             "better": "rag"}                     # the significantly better one, or null
        ]}
    }

How to read it: ``delta`` is how much better a is than b on average; if its interval excludes 0 and
``significant`` is true, the difference is unlikely to be luck of the question sample. With few questions
nothing is significant, however large ``delta`` looks: that is the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from bakeoff.eval.resampling import (
    IntervalMethod,
    bootstrap_interval,
    bootstrap_with_resamples,
    mean_interval,
    mean_intervals,
    permutation_p_value,
    permutation_p_values,
)

__all__ = [
    "bootstrap_interval",
    "IntervalMethod",
    "holm",
    "mcnemar",
    "mean_interval",
    "mean_intervals",
    "paired_bootstrap",
    "paired_comparison",
    "paired_comparisons",
    "permutation_p_value",
    "permutation_p_values",
    "statistics_for",
]


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, Any]:
    """McNemar's exact test: do two classifiers err on different questions more often than chance?

    Returns:
        ``{"p", "a_only", "b_only"}``: the two-sided exact binomial p-value on the discordant questions, the
        questions only a got right, and those only b got right.
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"{len(a_correct)} vs {len(b_correct)} answers: McNemar needs paired answers")
    a_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    n = a_only + b_only
    if n == 0:
        return {"p": 1.0, "a_only": 0, "b_only": 0}
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    p = min(1.0, 2 * tail / 2**n)
    return {"p": float(p), "a_only": a_only, "b_only": b_only}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), controlling the family-wise error rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_comparisons(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    resamples: int = 2000,
    permutations: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """:func:`paired_comparison` of each ``(a, b)``, the intervals and tests of all pairs computed together
    (each pair gets the numbers it would get alone).

    Raises:
        ValueError: a pair with different lengths or no questions.
    """
    xs, ys = [], []
    for a, b in pairs:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"paired values need the same questions ({x.size} vs {y.size})")
        if x.size == 0:
            raise ValueError("no shared questions")
        xs.append(x)
        ys.append(y)
    diffs = [x - y for x, y in zip(xs, ys, strict=True)]
    cis = mean_intervals(diffs, resamples=resamples, confidence=confidence, seed=seed)
    ps = permutation_p_values(diffs, permutations=permutations, seed=seed)
    return [
        {
            "n": int(d.size),
            "mean_a": float(x.mean()),
            "mean_b": float(y.mean()),
            "delta": float(d.mean()),
            "ci": ci,
            "p": p,
            "test": "permutation",
            "wins": int(np.sum(d > 0)),
            "losses": int(np.sum(d < 0)),
            "ties": int(np.sum(d == 0)),
        }
        for x, y, d, ci, p in zip(xs, ys, diffs, cis, ps, strict=True)
    ]


def paired_comparison(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    permutations: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired difference ``a - b`` over the same questions: mean, BCa interval, permutation p-value.

    Returns:
        ``{"n", "mean_a", "mean_b", "delta", "ci", "p", "test", "wins", "losses", "ties"}``.

    Raises:
        ValueError: different lengths or no questions.
    """
    [entry] = paired_comparisons(
        [(a, b)], resamples=resamples, permutations=permutations, confidence=confidence, seed=seed
    )
    return entry


def paired_bootstrap(
    n: int,
    statistic_a: Callable[[np.ndarray], float],
    statistic_b: Callable[[np.ndarray], float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of ``statistic_a - statistic_b`` for corpus-level statistics (macro-F1): the BCa
    interval of ``scipy.stats.bootstrap`` (questions resampled, both candidates together).

    The two-sided p-value is twice the share of resampled differences on the far side of 0 (at least
    ``1 / (resamples + 1)``, at most 1).
    """
    everyone = np.arange(n)
    delta = statistic_a(everyone) - statistic_b(everyone)

    def difference(idx: np.ndarray) -> float:
        idx = np.asarray(idx, dtype=int)
        return statistic_a(idx) - statistic_b(idx)

    if n == 1:
        lo = hi = float(delta)
        diffs = np.array([delta])
    else:
        interval, resampled = bootstrap_with_resamples(
            everyone,
            difference,
            vectorized=False,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            method="BCa",
        )
        lo, hi, diffs = float(interval[0]), float(interval[1]), resampled
    if np.all(diffs == 0):
        p = 1.0
    else:
        share = min(np.mean(diffs <= 0), np.mean(diffs >= 0))
        p = float(min(1.0, max(2 * share, 1 / (resamples + 1))))
    return {
        "n": n,
        "mean_a": float(statistic_a(everyone)),
        "mean_b": float(statistic_b(everyone)),
        "delta": float(delta),
        "ci": [lo, hi],
        "p": p,
        "test": "bootstrap",
    }


def statistics_for(
    per_question: dict[str, dict[str, dict[str, float | None]]],
    *,
    metrics: Sequence[str],
    corpus_level: dict[str, Callable[[str, Sequence[str]], float]] | None = None,
    binary: Sequence[str] = (),
    resamples: int = 2000,
    permutations: int = 10_000,
    confidence: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    higher_is_better: dict[str, bool] | None = None,
) -> tuple[dict[str, dict[str, list[float] | None]], dict[str, list[dict[str, Any]]]]:
    """Intervals and Holm-corrected paired comparisons for every candidate and metric.

    Args:
        per_question: candidate -> question id -> metric -> value (``None`` = missing).
        metrics: the metrics to analyse.
        corpus_level: metric -> ``f(candidate, question_ids)`` computing a corpus-level statistic on a
            subset (with repeats) of questions; such metrics are bootstrapped as a whole.
        binary: metrics whose values are 0/1 correctness and get McNemar's test (classification accuracy).
        resamples, permutations, confidence, alpha, seed: see :class:`bakeoff.eval.settings.StatisticsSpec`.
        higher_is_better: metric -> direction (default: higher is better), to name the better candidate.

    Returns:
        ``(intervals, comparisons)``: candidate -> metric -> ``[low, high]`` (or ``None``), and metric ->
        list of pair entries as described in the module docstring.
    """
    corpus_level = corpus_level or {}
    higher_is_better = higher_is_better or {}
    settings = {"resamples": resamples, "confidence": confidence, "seed": seed}
    candidates = list(per_question)
    intervals: dict[str, dict[str, list[float] | None]] = {c: dict.fromkeys(metrics) for c in candidates}
    comparisons: dict[str, list[dict[str, Any]]] = {m: [] for m in metrics}
    samples: list[tuple[str, str, list[float]]] = []  # (candidate, metric, values): one scipy call for all
    pending: list[tuple[dict[str, Any], list[float], list[float], bool]] = []  # pairs, likewise
    for metric in metrics:
        statistic = corpus_level.get(metric)
        if statistic is not None:  # corpus-level: bootstrap the statistic over resampled questions
            for cand in candidates:
                intervals[cand][metric] = _corpus_interval(per_question[cand], cand, statistic, settings)
            for a, b in combinations(candidates, 2):
                entry = _corpus_pair(per_question, a, b, statistic, settings)
                if entry is not None:
                    comparisons[metric].append({"a": a, "b": b, **entry})
            continue
        for cand in candidates:
            values = [v[metric] for v in per_question[cand].values() if v.get(metric) is not None]
            if values:
                samples.append((cand, metric, values))
        for a, b in combinations(candidates, 2):
            shared = [
                q
                for q, v in per_question[a].items()
                if v.get(metric) is not None and per_question[b].get(q, {}).get(metric) is not None
            ]
            if shared:
                entry = {"a": a, "b": b}
                comparisons[metric].append(entry)
                xa = [per_question[a][q][metric] for q in shared]
                xb = [per_question[b][q][metric] for q in shared]
                pending.append((entry, xa, xb, metric in binary))
    for (cand, metric, _), ci in zip(
        samples, mean_intervals([v for *_, v in samples], **settings), strict=True
    ):
        intervals[cand][metric] = ci
    results = paired_comparisons(
        [(xa, xb) for _, xa, xb, _ in pending], permutations=permutations, **settings
    )
    for (entry, xa, xb, is_binary), result in zip(pending, results, strict=True):
        entry.update(result)
        if is_binary:
            test = mcnemar([x >= 0.5 for x in xa], [x >= 0.5 for x in xb])
            entry.update(test="mcnemar", p=test["p"], a_only=test["a_only"], b_only=test["b_only"])
    for metric in metrics:
        _mark_significant(
            comparisons[metric], alpha=alpha, higher_is_better=higher_is_better.get(metric, True)
        )
    return intervals, comparisons


def _corpus_interval(
    values_by_q: dict[str, dict[str, float | None]],
    cand: str,
    statistic: Callable[[str, Sequence[str]], float],
    settings: dict[str, Any],
) -> list[float] | None:
    """One candidate's bootstrap interval of a corpus-level metric (``None`` without questions)."""
    qids = list(values_by_q)
    if not qids:
        return None
    ids = np.array(qids, dtype=object)
    lo, hi = bootstrap_interval(len(qids), lambda idx: statistic(cand, list(ids[idx])), **settings)
    return [lo, hi]


def _corpus_pair(
    per_question: dict[str, dict[str, dict[str, float | None]]],
    a: str,
    b: str,
    statistic: Callable[[str, Sequence[str]], float],
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    """The paired bootstrap of a corpus-level metric on a's and b's shared questions (``None``: none)."""
    shared = [q for q in per_question[a] if q in per_question[b]]
    if not shared:
        return None
    ids = np.array(shared, dtype=object)
    return paired_bootstrap(
        len(shared),
        lambda idx: statistic(a, list(ids[idx])),
        lambda idx: statistic(b, list(ids[idx])),
        **settings,
    )


def _mark_significant(entries: list[dict[str, Any]], *, alpha: float, higher_is_better: bool) -> None:
    """Holm-correct one metric's pairs and name the significantly better candidate of each."""
    for entry, adjusted in zip(entries, holm([e["p"] for e in entries]), strict=True):
        entry["p_holm"] = adjusted
        entry["significant"] = bool(adjusted < alpha)
        if not entry["significant"] or entry["delta"] == 0:
            entry["better"] = None
        else:
            entry["better"] = entry["a"] if (entry["delta"] > 0) == higher_is_better else entry["b"]
