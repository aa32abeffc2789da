"""Statistics against cases whose answer is known."""

import math

import numpy as np
import pytest

from bakeoff.eval.stats import (
    holm,
    mcnemar,
    mean_interval,
    paired_bootstrap,
    paired_comparison,
    permutation_p_value,
    statistics_for,
)


def test_identical_candidates_difference_contains_zero_and_is_not_significant():
    rng = np.random.default_rng(1)
    values = list(rng.uniform(0, 1, 40))
    result = paired_comparison(values, values)
    assert result["delta"] == 0.0
    assert result["ci"][0] <= 0.0 <= result["ci"][1]
    assert result["p"] >= 0.05
    assert (result["wins"], result["losses"], result["ties"]) == (0, 0, 40)


def test_noisy_equal_candidates_are_not_significant():
    # Two candidates with the same quality plus independent noise: most seeds give p >= 0.05.
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.7, 40)
    a = base + rng.normal(0, 0.1, 40)
    b = base + rng.normal(0, 0.1, 40)
    result = paired_comparison(a, b, seed=3)
    assert result["ci"][0] <= 0.0 <= result["ci"][1]
    assert result["p"] >= 0.05


def test_better_on_40_of_40_questions_is_significant():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.1, 0.6, 40)
    a = b + rng.uniform(0.01, 0.2, 40)  # better on every question, by varying margins
    result = paired_comparison(a, b)
    assert result["wins"] == 40
    assert result["p"] < 0.01
    assert result["ci"][0] > 0


def test_seeded_bootstrap_is_reproducible_and_seed_matters():
    values = list(np.random.default_rng(3).uniform(0, 1, 30))
    first = mean_interval(values, resamples=2000, seed=11)
    assert mean_interval(values, resamples=2000, seed=11) == first
    assert mean_interval(values, resamples=2000, seed=12) != first
    a, b = values, [v * 0.9 for v in values]
    assert paired_comparison(a, b, seed=5) == paired_comparison(a, b, seed=5)


def test_interval_covers_the_mean_and_narrows_with_more_questions():
    rng = np.random.default_rng(4)
    small = rng.uniform(0, 1, 20)
    large = rng.uniform(0, 1, 400)
    m, lo, hi = mean_interval(small)
    assert lo <= m <= hi
    m2, lo2, hi2 = mean_interval(large)
    assert (hi2 - lo2) < (hi - lo)


def test_exact_permutation_p_value_matches_hand_count():
    # 5 differences all positive: only the all-+ and all-- sign vectors are as extreme -> p = 2/32.
    assert permutation_p_value([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    # No difference at all: every sign vector is as extreme.
    assert permutation_p_value([0, 0, 0]) == 1.0


def test_monte_carlo_p_value_is_never_zero():
    p = permutation_p_value([1.0] * 40, permutations=1000)
    assert 0 < p <= 2 / 1001


def test_mcnemar_known_values():
    # 10 questions only a gets right, 0 only b: two-sided exact p = 2 * 0.5^10.
    a = [True] * 10 + [True] * 5
    b = [False] * 10 + [True] * 5
    result = mcnemar(a, b)
    assert (result["a_only"], result["b_only"]) == (10, 0)
    assert result["p"] == pytest.approx(2 / 1024)
    assert mcnemar([True, False], [True, False])["p"] == 1.0
    # 6 vs 4 discordant: clearly not significant
    assert mcnemar([True] * 6 + [False] * 4, [False] * 6 + [True] * 4)["p"] > 0.5


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    adjusted = holm([0.001, 0.2, 0.02, 0.04])
    assert all(a >= p for a, p in zip(adjusted, [0.001, 0.2, 0.02, 0.04], strict=True))


def test_paired_bootstrap_for_a_corpus_statistic():
    x = np.array([1.0] * 30 + [0.0] * 10)

    def stat(idx):
        return float(x[idx].mean())

    same = paired_bootstrap(40, stat, stat)
    assert same["delta"] == 0 and same["p"] == 1.0
    better = paired_bootstrap(40, lambda idx: 1.0, stat)
    assert better["delta"] == pytest.approx(0.25) and better["p"] < 0.01


def test_statistics_for_marks_significance_with_holm_and_skips_missing():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.5, 40)
    per_question = {
        "good": {f"q{i}": {"m": float(base[i] + 0.3)} for i in range(40)},
        "plain": {f"q{i}": {"m": float(base[i])} for i in range(40)},
        "twin": {f"q{i}": {"m": float(base[i]) if i % 10 else None} for i in range(40)},
    }
    intervals, comparisons = statistics_for(per_question, metrics=["m"])
    assert intervals["good"]["m"][0] > intervals["plain"]["m"][1]
    entries = {(e["a"], e["b"]): e for e in comparisons["m"]}
    assert entries[("good", "plain")]["significant"] and entries[("good", "plain")]["better"] == "good"
    assert entries[("good", "twin")]["n"] == 36  # 4 missing values are left out, never counted as 0
    assert not entries[("plain", "twin")]["significant"] and entries[("plain", "twin")]["better"] is None
    for e in comparisons["m"]:
        assert e["p_holm"] >= e["p"] and not math.isnan(e["p_holm"])


def test_statistics_for_uses_mcnemar_for_binary_accuracy():
    per_question = {
        "a": {f"q{i}": {"accuracy": 1.0} for i in range(20)},
        "b": {f"q{i}": {"accuracy": 1.0 if i < 5 else 0.0} for i in range(20)},
    }
    _, comparisons = statistics_for(per_question, metrics=["accuracy"], binary=["accuracy"])
    [entry] = comparisons["accuracy"]
    assert entry["test"] == "mcnemar" and entry["a_only"] == 15 and entry["b_only"] == 0
    assert entry["p"] == pytest.approx(2 / 2**15)


def test_batched_intervals_and_tests_equal_one_call_per_sample():
    # statistics_for sends all samples of one length to scipy together; each must get what it gets alone,
    # also when the batch is cut into blocks to bound memory (60 samples x 400 questions)
    from bakeoff.eval.stats import mean_intervals, paired_comparisons

    rng = np.random.default_rng(8)
    samples = [rng.beta(0.5, 2, 400) for _ in range(60)] + [rng.beta(0.5, 2, 30) for _ in range(3)]
    together = mean_intervals(samples, resamples=500, seed=4)
    for i in (0, 37, 59, 61):
        _, lo, hi = mean_interval(samples[i], resamples=500, seed=4)
        assert together[i] == pytest.approx([lo, hi], rel=1e-12)  # the same resamples (sums in another order)
    pairs = [(samples[i], samples[i + 1]) for i in range(0, 8, 2)] + [(samples[60], samples[61])]
    batched = paired_comparisons(pairs, resamples=500, permutations=2000, seed=4)
    for (a, b), entry in zip(pairs, batched, strict=True):
        alone = paired_comparison(a, b, resamples=500, permutations=2000, seed=4)
        assert entry.pop("ci") == pytest.approx(alone.pop("ci"), rel=1e-12)
        assert entry.pop("test") == alone.pop("test") == "permutation"
        assert entry == pytest.approx(alone, rel=1e-12)


@pytest.mark.parametrize("values", [[0.7], [0.2, 0.9], [1.0] * 12, [0.0] * 30, [1.0] * 11 + [0.0], [0, 0, 1]])
def test_degenerate_samples_give_intervals_without_warnings(values, recwarn):
    m, lo, hi = mean_interval(values)
    assert lo <= m <= hi and not any(math.isnan(v) for v in (lo, hi))
    if len(set(values)) == 1:
        assert lo == hi == values[0]
    entry = paired_comparison(values, values)
    assert entry["ci"] == [0.0, 0.0] and entry["p"] == 1.0
    other = paired_comparison(values, [0.5] * len(values))
    assert other["ci"][0] <= other["delta"] <= other["ci"][1] and 0 < other["p"] <= 1
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning | UserWarning)]
