"""Coverage of the mean's interval at the 12-50 questions users have: simulated question sets drawn from a
population with a known mean, scored like a typical metric (most answers 0, the rest spread out: skewed).
The BCa interval bakeoff reports must cover the true mean at least as often as the percentile bootstrap it
replaced (the same resampled means, read at plain percentiles), and be near the nominal 95%. Seeded."""

import time

import numpy as np
import pytest

from bakeoff.eval.resampling import mean_intervals

TRIALS = 600
HIT_RATE, LOW, HIGH = 0.4, 0.2, 1.0
TRUE_MEAN = HIT_RATE * (LOW + HIGH) / 2  # 0.24


def _question_sets(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hit = rng.random((TRIALS, n)) < HIT_RATE
    return np.where(hit, rng.uniform(LOW, HIGH, (TRIALS, n)), 0.0)


def _coverage(sets: np.ndarray, method: str) -> float:
    cis = []
    for start in range(0, TRIALS, 200):  # bounded memory: 200 sets x 999 resamples at a time
        cis += mean_intervals(list(sets[start : start + 200]), resamples=999, seed=7, method=method)
    cis = np.array(cis)
    return float(np.mean((cis[:, 0] <= TRUE_MEAN) & (cis[:, 1] >= TRUE_MEAN)))


@pytest.mark.parametrize("n", [12, 24, 48])
def test_bca_covers_a_known_mean_at_least_as_well_as_the_percentile_bootstrap(n):
    sets = _question_sets(n, seed=n)
    t0 = time.perf_counter()
    bca, percentile = _coverage(sets, "BCa"), _coverage(sets, "percentile")
    assert time.perf_counter() - t0 < 60
    assert bca >= percentile, f"n={n}: BCa covers {bca:.3f}, percentile {percentile:.3f}"
    assert bca >= 0.92, f"n={n}: BCa covers only {bca:.3f} of {TRIALS} question sets (nominal 0.95)"
