"""Bradley–Terry scores on the Elo scale, with bootstrap intervals."""

import math
import random

import pytest

from bakeoff.eval.ranking import ELO_SCALE, bradley_terry, win_counts


def test_symmetric_results_give_equal_scores_centred_at_1000():
    comps = [("a", "b", 1.0), ("b", "a", 1.0), ("a", "b", 0.5)] * 5
    out = bradley_terry(comps, n_boot=200)
    assert out["a"]["elo"] == pytest.approx(1000.0) and out["b"]["elo"] == pytest.approx(1000.0)
    assert out["a"]["ci_low"] < 1000.0 < out["a"]["ci_high"]
    assert out["a"]["n"] == out["b"]["n"] == 15


def test_all_ties_are_equal():
    out = bradley_terry([("a", "b", 0.5), ("b", "c", 0.5), ("c", "a", 0.5)] * 3, n_boot=50)
    assert {round(v["elo"], 6) for v in out.values()} == {1000.0}


def test_a_always_beats_b_stays_finite_and_above():
    out = bradley_terry([("a", "b", 1.0)] * 8 + [("b", "a", 0.0)] * 2, n_boot=100)
    assert out["a"]["elo"] > 1200 > 800 > out["b"]["elo"]
    assert math.isfinite(out["a"]["elo"]) and math.isfinite(out["b"]["elo"])
    assert list(out) == ["a", "b"]  # best first
    assert out["a"]["elo"] + out["b"]["elo"] == pytest.approx(2000.0)


def test_recovers_the_order_of_known_strengths():
    truth = {"w": 1.0, "x": 0.5, "y": 0.0, "z": -1.5}
    rng = random.Random(1)
    comps = []
    for _ in range(2000):
        a, b = rng.sample(sorted(truth), 2)
        p = 1 / (1 + math.exp(-(truth[a] - truth[b])))
        comps.append((a, b, 1.0 if rng.random() < p else 0.0))
    out = bradley_terry(comps, n_boot=200, ridge=1e-6)
    assert list(out) == ["w", "x", "y", "z"]
    for name, strength in truth.items():
        centred = strength - sum(truth.values()) / len(truth)
        assert out[name]["elo"] == pytest.approx(1000 + ELO_SCALE * centred, abs=45)
        assert out[name]["ci_low"] <= out[name]["elo"] <= out[name]["ci_high"]


def test_bootstrap_is_reproducible_with_a_seed():
    rng = random.Random(0)
    comps = [(*rng.sample(["a", "b", "c"], 2), rng.choice([0.0, 0.5, 1.0])) for _ in range(60)]
    assert bradley_terry(comps, seed=3) == bradley_terry(comps, seed=3)
    assert bradley_terry(comps, seed=3) != bradley_terry(comps, seed=4)


def test_ties_count_as_half_wins():
    # one win and two ties for a against b is the same evidence as two wins out of three games, scaled
    with_ties = bradley_terry([("a", "b", 1.0), ("a", "b", 0.5), ("a", "b", 0.5)], n_boot=0)
    assert with_ties["a"]["elo"] > with_ties["b"]["elo"]
    assert with_ties["a"]["ci_low"] == with_ties["a"]["elo"]  # n_boot=0: no interval


def test_bad_input_is_rejected_and_empty_is_empty():
    assert bradley_terry([]) == {}
    with pytest.raises(ValueError, match="outcome"):
        bradley_terry([("a", "b", 2)])
    with pytest.raises(ValueError, match="itself"):
        bradley_terry([("a", "a", 1.0)])
    with pytest.raises(ValueError, match="not"):
        bradley_terry([("a", "b")])
    with pytest.raises(ValueError, match="ridge"):
        bradley_terry([("a", "b", 1.0)], ridge=0)


def test_win_counts():
    counts = win_counts([("a", "b", 1.0), ("b", "a", 1.0), ("a", "b", 0.5), ("c", "a", 0.0)])
    assert counts["a"] == {"wins": 2, "losses": 1, "ties": 1}
    assert counts["b"] == {"wins": 1, "losses": 1, "ties": 1}
    assert counts["c"] == {"wins": 0, "losses": 1, "ties": 0}
