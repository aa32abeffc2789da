"""Resampling on scipy: bootstrap intervals (``scipy.stats.bootstrap``, BCa by default) and the paired
sign-flip permutation test (``scipy.stats.permutation_test``), vectorised across samples.

:mod:`bakeoff.eval.stats` builds the comparisons of a run on these (and documents the method). Samples of one
length go to scipy in one call: the resampled question indices (or sign vectors) of one seeded call are
shared by its rows, so each sample gets exactly the numbers a call for it alone would give, in a fraction of
the time (one call per length instead of one per candidate, metric and pair).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "IntervalMethod",
    "bootstrap_interval",
    "bootstrap_with_resamples",
    "mean_interval",
    "mean_intervals",
    "permutation_p_value",
    "permutation_p_values",
]

_CHUNK = 2000  # resamples per vectorised block
_BLOCK_VALUES = 4_000_000  # at most this many resampled values in memory at once (32 MB), rows x block x n

IntervalMethod = Literal["BCa", "percentile"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The vectorised statistic scipy resamples: means along ``axis`` (one per resample)."""
    return np.mean(x, axis=axis)


def bootstrap_with_resamples(
    data: np.ndarray,
    statistic: Callable[..., Any],
    *,
    vectorized: bool,
    resamples: int,
    confidence: float,
    seed: int,
    method: IntervalMethod,
) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.stats.bootstrap`` of ``statistic`` over the last axis of ``data`` (one row per sample, rows of
    one call share the resampled question indices, so a row gets the interval it would get alone).

    Returns ``(intervals, resampled)``: ``[low, high]`` per row and the resampled statistic per row. BCa needs
    at least 3 items and a bootstrap distribution that is not degenerate; where it is undefined (NaN) the row
    gets the percentile interval of the same resamples, and no warning reaches the user.
    """
    from scipy import stats

    use = method if data.shape[-1] >= 3 else "percentile"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.bootstrap(
            (data,),
            statistic,
            n_resamples=resamples,
            vectorized=vectorized,
            batch=max(1, min(_CHUNK, _BLOCK_VALUES // data.size)) if vectorized else None,
            confidence_level=confidence,
            method=use,
            axis=-1,
            rng=_rng(seed),
        )
    for w in caught:  # BCa undefined for a row: that row is NaN and falls back below
        if not issubclass(w.category, stats.DegenerateDataWarning | RuntimeWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    lead = data.shape[:-1]
    resampled = np.asarray(res.bootstrap_distribution, dtype=float).reshape(-1, resamples)
    low = np.asarray(res.confidence_interval.low, dtype=float).reshape(-1)
    high = np.asarray(res.confidence_interval.high, dtype=float).reshape(-1)
    intervals = np.stack([low, high], axis=-1)
    tail = (1.0 - confidence) / 2.0
    for row in np.flatnonzero(~np.isfinite(intervals).all(axis=-1)):
        intervals[row] = np.quantile(resampled[row], [tail, 1.0 - tail])
    intervals, resampled = intervals.reshape(*lead, 2), resampled.reshape(*lead, resamples)
    return intervals, resampled


def bootstrap_interval(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: IntervalMethod = "BCa",
) -> tuple[float, float]:
    """Bootstrap interval (BCa by default) of any statistic of ``n`` items, e.g. a corpus-level metric.

    Args:
        n: number of items (questions).
        statistic: maps an index array (a resample, with repeats) to the statistic's value.
        resamples: bootstrap resamples.
        confidence: interval coverage.
        seed: resampling seed.
        method: ``"BCa"`` or ``"percentile"``.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError("a bootstrap needs at least one item")
    if n == 1:
        value = float(statistic(np.zeros(1, dtype=int)))
        return value, value
    intervals, _ = bootstrap_with_resamples(
        np.arange(n),
        lambda idx: statistic(np.asarray(idx, dtype=int)),
        vectorized=False,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        method=method,
    )
    return float(intervals[0]), float(intervals[1])


def mean_intervals(
    samples: Sequence[Sequence[float]],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: IntervalMethod = "BCa",
) -> list[list[float]]:
    """``[low, high]`` of the mean of each sample, as :func:`mean_interval` gives it for that sample alone;
    samples of one length go to scipy together (one vectorised call instead of one per sample).

    Raises:
        ValueError: an empty sample.
    """
    rows = [np.asarray(x, dtype=float) for x in samples]
    if any(x.size == 0 for x in rows):
        raise ValueError("no values")
    out: list[list[float]] = [[float(x[0]), float(x[0])] for x in rows]  # all equal: every resample agrees
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(rows):
        if np.ptp(x) > 0:
            by_length.setdefault(x.size, []).append(i)
    for members in by_length.values():
        intervals, _ = bootstrap_with_resamples(
            np.stack([rows[i] for i in members]),
            _mean,
            vectorized=True,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            method=method,
        )
        for i, (lo, hi) in zip(members, intervals, strict=True):
            out[i] = [float(lo), float(hi)]
    return out


def mean_interval(
    values: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: IntervalMethod = "BCa",
) -> tuple[float, float, float]:
    """The mean and its bootstrap interval (``scipy.stats.bootstrap``, BCa by default; module docstring).

    Returns:
        ``(mean, low, high)``.

    Raises:
        ValueError: no values.
    """
    [(lo, hi)] = mean_intervals(
        [values], resamples=resamples, confidence=confidence, seed=seed, method=method
    )
    return float(np.mean(values)), lo, hi


def permutation_p_values(
    differences: Sequence[Sequence[float]], *, permutations: int = 10_000, seed: int = 0
) -> list[float]:
    """:func:`permutation_p_value` of each row of per-question differences, rows of one length at once.

    The null distribution of a sign-flip test does not depend on the values: ``scipy.stats.permutation_test``
    draws (or enumerates) the sign vectors, here by flipping the signs of ``1..n``, and the statistic applies
    each to every row in one matrix product. Each row gets exactly the p-value a call for it alone gives.
    """
    from scipy import stats

    rows = [np.asarray(d, dtype=float) for d in differences]
    out = [1.0] * len(rows)  # no difference at all, or one question: every sign vector is as extreme
    by_length: dict[int, list[int]] = {}
    for i, d in enumerate(rows):
        if d.size >= 2 and np.any(d):
            by_length.setdefault(d.size, []).append(i)
    for n, members in by_length.items():
        matrix = np.stack([rows[i] for i in members])

        def mean_under_flips(signed: np.ndarray, axis: int = -1, matrix=matrix, n=n) -> np.ndarray:
            return (np.sign(signed) @ matrix.T) / n  # (resamples, rows): each row's mean under each flip

        res = stats.permutation_test(
            (np.arange(1.0, n + 1),),
            mean_under_flips,
            permutation_type="samples",  # one sample: the null flips the sign of each item
            vectorized=True,
            n_resamples=permutations,  # >= 2^n: scipy enumerates every sign vector (exact p)
            batch=_CHUNK,
            alternative="two-sided",
            rng=_rng(seed),
        )
        for i, p in zip(members, np.atleast_1d(res.pvalue), strict=True):
            out[i] = float(min(1.0, p))
    return out


def permutation_p_value(differences: Sequence[float], *, permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation (sign-flip) test of ``mean(differences) == 0`` (``scipy.stats.permutation_test``).

    Under the null hypothesis each per-question difference is as likely to have the other sign. When
    ``2^n <= permutations`` (n ≤ 13 at the default 10,000) all sign vectors are enumerated (exact p);
    otherwise ``permutations`` random ones are drawn and ``p = (1 + hits) / (1 + permutations)`` (never 0).
    """
    [p] = permutation_p_values([differences], permutations=permutations, seed=seed)
    return p
