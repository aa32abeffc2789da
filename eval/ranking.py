"""Ranking candidates from pairwise comparisons: Bradley–Terry scores on the Elo scale.

Arena votes (and, later, judge verdicts) are pairs ``(a, b, outcome)`` with ``outcome`` 1.0 when ``a`` won,
0.0 when ``b`` won and 0.5 for a tie (a tie counts as half a win for each side). The Bradley–Terry model gives
each candidate a strength ``θ`` with ``P(a beats b) = σ(θa − θb)``; it is fitted by a ridge-penalised logistic
regression (Newton's method on a handful of parameters, so it is exact and fast), reported as
``1000 + 400·log10(e^θ)`` — the familiar Elo scale, where 400 points mean 10:1 odds — and given a percentile
bootstrap interval by resampling the comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ELO_BASE", "ELO_SCALE", "bradley_terry", "win_counts"]

ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)  # Elo points per unit of natural-log strength


def _check(comparisons: Iterable[Sequence[Any]]) -> list[tuple[str, str, float]]:
    out = []
    for i, item in enumerate(comparisons):
        try:
            a, b, outcome = item
        except (TypeError, ValueError):
            raise ValueError(f"comparison {i} is not (a, b, outcome): {item!r}") from None
        outcome = float(outcome)
        if outcome not in (0.0, 0.5, 1.0):
            raise ValueError(
                f"comparison {i}: outcome must be 1.0 (a wins), 0.0 (b wins) or 0.5 (tie), not {outcome}"
            )
        if a == b:
            raise ValueError(f"comparison {i} compares {a!r} with itself")
        out.append((str(a), str(b), outcome))
    return out


def _fit(k: int, index_a, index_b, outcome, weight, ridge: float):
    """Ridge-penalised maximum-likelihood log-strengths (mean zero), for a batch of weightings at once.

    ``weight[r, m]`` comparisons of ``index_a[m]`` against ``index_b[m]`` ended with ``outcome[m]`` in
    replicate ``r`` (the observed data is one replicate, each bootstrap sample another). Newton's method,
    batched over replicates: the penalised log-likelihood is strictly concave, so it converges in a few steps.
    """
    import numpy as np

    weight = np.atleast_2d(weight)
    reps = weight.shape[0]
    theta = np.zeros((reps, k))
    # one-hot design: d(θa − θb)/dθ
    design = np.zeros((len(index_a), k))
    design[np.arange(len(index_a)), index_a] += 1.0
    design[np.arange(len(index_b)), index_b] -= 1.0
    eye = ridge * np.eye(k)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta @ design.T)))  # (reps, m)
        grad = (weight * (outcome - p)) @ design - ridge * theta  # (reps, k)
        w = weight * p * (1.0 - p)
        hess = -np.einsum("rm,mi,mj->rij", w, design, design) - eye  # (reps, k, k), negative definite
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        theta -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return theta - theta.mean(axis=1, keepdims=True)


def bradley_terry(
    comparisons: Iterable[Sequence[Any]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ridge: float = 0.01,
    confidence: float = 0.95,
    exclude: Iterable[str] = (),
) -> dict[str, dict[str, float]]:
    """Bradley–Terry scores with bootstrap intervals, on the Elo scale.

    Args:
        comparisons: ``(a, b, outcome)`` triples; outcome 1.0 = ``a`` won, 0.0 = ``b`` won, 0.5 = tie.
        n_boot: bootstrap resamples of the comparisons (0 = no interval; the bounds equal the estimate).
        seed: seed of the bootstrap (the same seed gives the same intervals).
        ridge: L2 penalty on the log-strengths (> 0); keeps a candidate that never lost (or never won) finite.
        confidence: coverage of the percentile interval.
        exclude: candidates never ranked (failed ones: every answer an error); their comparisons are
            dropped before the fit, so they neither appear nor move the others.

    Returns:
        candidate -> ``{"elo", "ci_low", "ci_high", "n"}``; ``n`` is how many comparisons it took part in.
        Scores are centred so that the mean candidate sits at 1000; the dict is ordered best first.

    Raises:
        ValueError: a malformed comparison, an outcome other than 0, 0.5 or 1, or ``ridge <= 0``.
    """
    import numpy as np

    if not ridge > 0:
        raise ValueError(
            f"ridge must be > 0 (it pins down the scale's origin and keeps scores finite), not {ridge}"
        )
    left_out = set(exclude)
    items = [c for c in _check(comparisons) if c[0] not in left_out and c[1] not in left_out]
    if not items:
        return {}
    names = sorted({x for a, b, _ in items for x in (a, b)})
    pos = {name: i for i, name in enumerate(names)}
    # Aggregate into distinct (a, b, outcome) kinds so one fit costs O(kinds), however many votes there are.
    kinds: dict[tuple[int, int, float], int] = {}
    for a, b, outcome in items:
        key = (pos[a], pos[b], outcome)
        kinds[key] = kinds.get(key, 0) + 1
    keys = list(kinds)
    index_a = np.array([k[0] for k in keys])
    index_b = np.array([k[1] for k in keys])
    outcome = np.array([k[2] for k in keys])
    counts = np.array([kinds[k] for k in keys], dtype=float)
    theta = _fit(len(names), index_a, index_b, outcome, counts, ridge)[0]

    low = high = theta
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        total = int(counts.sum())
        probs = counts / counts.sum()
        samples = rng.multinomial(total, probs, size=n_boot).astype(float)  # = resampling comparisons
        boots = _fit(len(names), index_a, index_b, outcome, samples, ridge)
        tail = (1.0 - confidence) / 2.0 * 100.0
        low = np.percentile(boots, tail, axis=0)
        high = np.percentile(boots, 100.0 - tail, axis=0)

    n = dict.fromkeys(names, 0)
    for a, b, _ in items:
        n[a] += 1
        n[b] += 1
    out = {
        name: {
            "elo": float(ELO_BASE + ELO_SCALE * theta[i]),
            "ci_low": float(ELO_BASE + ELO_SCALE * low[i]),
            "ci_high": float(ELO_BASE + ELO_SCALE * high[i]),
            "n": n[name],
        }
        for i, name in enumerate(names)
    }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["elo"]))


def win_counts(comparisons: Iterable[Sequence[Any]]) -> dict[str, dict[str, int]]:
    """Wins, losses and ties per candidate (for the leaderboard beside the scores)."""
    out: dict[str, dict[str, int]] = {}
    for a, b, outcome in _check(comparisons):
        for name in (a, b):
            out.setdefault(name, {"wins": 0, "losses": 0, "ties": 0})
        if outcome == 0.5:
            out[a]["ties"] += 1
            out[b]["ties"] += 1
        else:
            winner, loser = (a, b) if outcome == 1.0 else (b, a)
            out[winner]["wins"] += 1
            out[loser]["losses"] += 1
    return out
