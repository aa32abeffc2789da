"""Are there enough questions? The power of each paired comparison.

For a pair of candidates compared on ``n`` paired questions whose per-question differences have standard
deviation ``sd``, a two-sided paired test at level ``alpha`` detects a true mean difference ``delta`` with
probability ``power`` when::

    |delta| >= (t(1 - alpha/2, n-1) + t(power, n-1)) * sd / sqrt(n)

(the paired t-test's power equation; the sign-flip permutation test bakeoff runs has the same power to within
a few points for n ≥ 10, which ``tests/test_verdict.py`` checks by simulation). The right side is the
**minimum detectable difference** (``mdd``). For a pair that is not significant, solving the same equation
for ``n`` with the observed ``delta`` gives the **questions needed** (``n_needed``) to detect it.

The level is the run's ``alpha`` per pair, before Holm's correction: the correction makes every pair but the
clearest need more, so these numbers are the optimistic bound. No scipy: the t quantile comes from the normal
quantile by its Cornish–Fisher expansion (error below 0.002 for 5 or more degrees of freedom).

Keys added to ``statistics.comparisons.<m>[]``: ``sd_diff``, ``mdd``, ``n_needed``; ``statistics.method.power``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from bakeoff.run.documents.scores import Scores

__all__ = ["POWER", "add_power", "minimum_detectable_difference", "questions_needed", "t_quantile"]

POWER = 0.8
"""The power the minimum detectable difference is computed for."""

_N_MAX = 10_000_000  # beyond this, "questions needed" is not a useful number


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (Cornish–Fisher from the normal).

    Raises:
        ValueError: ``p`` outside (0, 1) or ``df`` not positive.
    """
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    z = NormalDist().inv_cdf(p)
    z3, z5, z7 = z**3, z**5, z**7
    return (
        z
        + (z3 + z) / (4 * df)
        + (5 * z5 + 16 * z3 + 3 * z) / (96 * df**2)
        + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df**3)
    )


def _factor(n: int, alpha: float, power: float) -> float:
    df = max(n - 1, 1)
    return t_quantile(1 - alpha / 2, df) + t_quantile(power, df)


def minimum_detectable_difference(n: int, sd: float, *, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true mean paired difference ``n`` questions detect with ``power`` at level ``alpha``.

    Args:
        n: paired questions (at least 2).
        sd: standard deviation of the per-question differences.
        alpha: two-sided test level.
        power: wanted detection probability.

    Raises:
        ValueError: ``n < 2`` or a negative ``sd``.
    """
    if n < 2:
        raise ValueError(f"power needs at least 2 paired questions, got {n}")
    if sd < 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    return _factor(n, alpha, power) * sd / math.sqrt(n)


def questions_needed(delta: float, sd: float, *, alpha: float = 0.05, power: float = POWER) -> int | None:
    """The fewest paired questions that detect a true difference ``delta`` with ``power`` at ``alpha``.

    Returns:
        The count (at least 2); ``None`` when ``delta`` is 0 (no number of questions detects it) or more
        than ten million would be needed.
    """
    if delta == 0 or not math.isfinite(delta):
        return None
    if sd == 0:
        return 2
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    n = max(2, math.ceil((z * sd / abs(delta)) ** 2))
    if n > _N_MAX:
        return None
    while minimum_detectable_difference(n, sd, alpha=alpha, power=power) > abs(delta):
        n += 1  # the t quantiles are wider than the normal ones: a few more questions at small n
    while n > 2 and minimum_detectable_difference(n - 1, sd, alpha=alpha, power=power) <= abs(delta):
        n -= 1
    return n


def add_power(scores: Scores, *, power: float = POWER) -> None:
    """Fill ``sd_diff``, ``mdd`` and (for a pair that is not significant) ``n_needed`` of every paired
    comparison whose test works on per-question differences (not the corpus-level bootstrap)."""
    if scores.statistics is None:
        return
    alpha = scores.statistics.method.alpha
    scores.statistics.method.power = power
    for metric, entries in scores.statistics.comparisons.items():
        for e in entries:
            if e.test == "bootstrap":
                continue
            a, b = scores.per_answer.get(e.a, {}), scores.per_answer.get(e.b, {})
            diffs = [
                v[metric] - b[q][metric]
                for q, v in a.items()
                if v.get(metric) is not None and b.get(q, {}).get(metric) is not None
            ]
            if len(diffs) < 2:
                continue
            sd = float(np.std(diffs, ddof=1))
            e.sd_diff = round(sd, 6)
            e.mdd = round(minimum_detectable_difference(len(diffs), sd, alpha=alpha, power=power), 6)
            e.n_needed = None if e.significant else questions_needed(e.delta, sd, alpha=alpha, power=power)
