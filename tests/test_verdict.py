"""The verdict (rule, cost, warnings), the power of paired tests (checked by simulation) and fine-tune × RAG
(checked on constructed per-question scores)."""

from __future__ import annotations

import io
import json
import statistics

import numpy as np
import pytest
from rich.console import Console

from bakeoff.eval.interaction import find_cells, interaction_effects
from bakeoff.eval.power import minimum_detectable_difference, questions_needed, t_quantile
from bakeoff.eval.stats import permutation_p_value, statistics_for
from bakeoff.eval.table import print_scores
from bakeoff.eval.verdict import add_warning, decide, verdict_lines
from bakeoff.run.documents.manifest import CandidateFacts, Manifest
from bakeoff.run.documents.scores import (
    CandidateScores,
    Comparison,
    Latency,
    MetricSummary,
    Scores,
    Statistics,
    Tokens,
)

# -- power --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"), [(0.975, 10, 2.228139), (0.8, 10, 0.879058), (0.975, 47, 2.011741)]
)
def test_t_quantile_matches_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-3)


def _detection_rate(n: int, effect: float, sd: float, *, sims: int, alpha: float = 0.05) -> float:
    """Share of simulated paired samples (true mean difference ``effect``) the run's permutation test finds
    significant at ``alpha``."""
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(sims):
        d = rng.normal(effect, sd, size=n)
        hits += permutation_p_value(d, permutations=1000, seed=i) < alpha
    return hits / sims


def test_minimum_detectable_difference_is_detected_80_percent_of_the_time():
    # 600 simulated evaluation sets: the detection rate's standard error is 0.016; tolerance 0.06 (~3.5 SE).
    n, sd = 40, 0.3
    mdd = minimum_detectable_difference(n, sd, alpha=0.05)
    assert 0.13 < mdd < 0.14  # (2.02 + 0.85) * 0.3 / sqrt(40)
    assert _detection_rate(n, mdd, sd, sims=600) == pytest.approx(0.8, abs=0.06)
    # and half of it is detected far less often: the number separates what the set can and cannot see
    assert _detection_rate(n, mdd / 2, sd, sims=300) < 0.45


def test_questions_needed_detects_the_observed_difference_80_percent_of_the_time():
    delta, sd = 0.1, 0.35
    n = questions_needed(delta, sd, alpha=0.05)
    assert 90 < n < 110  # (1.96 + 0.84)^2 * (0.35 / 0.1)^2 ≈ 96, a little more for t
    assert minimum_detectable_difference(n, sd) <= delta < minimum_detectable_difference(n - 1, sd)
    assert _detection_rate(n, delta, sd, sims=400) == pytest.approx(0.8, abs=0.07)
    assert questions_needed(0.0, sd) is None


# -- fine-tune × RAG ----------------------------------------------------------------------------------------

CELLS = {"base": "zero-shot", "rag": "rag", "finetuned": "lora", "finetuned_rag": "lora+rag"}


def _per_question(values: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, float]]]:
    return {c: {f"q{i}": {"m": float(v)} for i, v in enumerate(vals)} for c, vals in values.items()}


def test_additive_effects_have_an_interaction_near_zero():
    rng = np.random.default_rng(1)
    difficulty = rng.uniform(0.0, 0.4, size=60)
    noise = lambda: rng.normal(0, 0.05, size=60)  # noqa: E731
    cells = {  # fine-tuning adds 0.1 and RAG 0.3, whatever the other does
        "zero-shot": difficulty + noise(),
        "lora": difficulty + 0.1 + noise(),
        "rag": difficulty + 0.3 + noise(),
        "lora+rag": difficulty + 0.4 + noise(),
    }
    x = interaction_effects(_per_question(cells), CELLS, "m")
    assert x.n == 60
    assert x.finetune.estimate == pytest.approx(0.1, abs=0.03)
    assert x.rag.estimate == pytest.approx(0.3, abs=0.03)
    assert abs(x.interaction.estimate) < 0.04
    assert x.interaction.ci[0] < 0 < x.interaction.ci[1]
    assert x.reading == "add up"
    assert "add up" in x.sentence and "interaction" in x.sentence


def test_overlapping_effects_have_a_negative_interaction_that_excludes_zero():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.0, 0.2, size=60)
    noise = lambda: rng.normal(0, 0.05, size=60)  # noqa: E731
    cells = {  # each alone adds 0.3; together only 0.35: they teach the same facts
        "zero-shot": base + noise(),
        "lora": base + 0.3 + noise(),
        "rag": base + 0.3 + noise(),
        "lora+rag": base + 0.35 + noise(),
    }
    x = interaction_effects(_per_question(cells), CELLS, "m")
    assert x.interaction.estimate == pytest.approx(-0.25, abs=0.04)
    assert x.interaction.ci[1] < 0
    assert x.reading == "overlap"
    worse = {**cells, "lora+rag": base + 0.1 + noise()}  # together below either alone
    assert interaction_effects(_per_question(worse), CELLS, "m").reading == "interfere"
    # a lower-is-better metric: the same numbers negated read the same way
    flipped = {c: -v for c, v in cells.items()}
    assert (
        interaction_effects(_per_question(flipped), CELLS, "m", higher_is_better=False).reading == "overlap"
    )


def test_cells_are_recognised_from_agents_and_candidate_models():
    facts = {
        "zero-shot": CandidateFacts(agent="fewshot", model="embedded:m", k=0),
        "three-shot": CandidateFacts(agent="fewshot", model="embedded:m", k=3),
        "rag": CandidateFacts(agent="rag", model="embedded:m", k=4),
        "lora": CandidateFacts(agent="finetuned", model="embedded:m"),
        "lora+rag": CandidateFacts(agent="rag", model="candidate:lora", k=4),
    }
    assert find_cells(facts, list(facts)) == CELLS
    assert find_cells(facts, ["zero-shot", "rag", "lora"]) is None


# -- the verdict --------------------------------------------------------------------------------------------


def _scores(values: dict[str, list[float]], latency: dict[str, float], tokens: dict[str, int]) -> Scores:
    per_answer = {c: {f"q{i}": {"m": v} for i, v in enumerate(vals)} for c, vals in values.items()}
    intervals, comparisons = statistics_for(per_answer, metrics=["m"], resamples=500, permutations=2000)
    n = len(next(iter(values.values())))
    return Scores(
        task="qa",
        metrics=["m"],
        headline="m",
        n_questions=n,
        candidates={
            c: CandidateScores(
                metrics={"m": MetricSummary(mean=statistics.fmean(v), n=n, ci=intervals[c]["m"])},
                n=n,
                latency_s=Latency(mean=latency[c], p50=latency[c], p95=latency[c] * 1.5),
                tokens=Tokens(prompt=tokens[c] * n, completion=20 * n),
            )
            for c, v in values.items()
        },
        per_answer=per_answer,
        statistics=Statistics(comparisons={"m": [Comparison.model_validate(e) for e in comparisons["m"]]}),
    )


MANIFEST = Manifest(
    candidates={
        "zero-shot": CandidateFacts(agent="fewshot", model="embedded:m", k=0),
        "rag": CandidateFacts(agent="rag", model="embedded:m", k=4),
        "lora": CandidateFacts(
            agent="finetuned", model="embedded:m", training={"train_seconds": 312.4, "cache_hit": True}
        ),
        "lora+rag": CandidateFacts(agent="rag", model="candidate:lora", k=4),
    }
)


def _four(rag_gap: float, n: int = 48) -> Scores:
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 0.3, size=n)
    return _scores(
        {
            "zero-shot": list(base),
            "rag": list(base + 0.4 - rag_gap + rng.normal(0, 0.05, n)),
            "lora": list(base + 0.1 + rng.normal(0, 0.05, n)),
            "lora+rag": list(base + 0.4 + rng.normal(0, 0.05, n)),
        },
        latency={"zero-shot": 0.2, "rag": 0.4, "lora": 0.45, "lora+rag": 0.84},
        tokens={"zero-shot": 40, "rag": 500, "lora": 40, "lora+rag": 500},
    )


def test_the_least_costly_candidate_not_significantly_worse_is_recommended():
    scores = decide(_four(rag_gap=0.0), MANIFEST)
    v = scores.verdict
    assert v.best == "lora+rag" or v.best == "rag"
    assert v.recommended == "rag"  # zero-shot is significantly worse; rag needs no training
    assert v.cost_order[:2] == ["zero-shot", "rag"]
    assert scores.candidates["lora+rag"].cost.training_s_original == 312.4
    assert scores.candidates["lora+rag"].cost.training_s == 0  # cached
    assert scores.candidates["lora+rag"].cost.trained_by == "lora"
    assert scores.candidates["rag"].cost.tokens_in_per_answer == 500
    if v.best == "lora+rag":
        assert v.reason.startswith("rag: within ")
        assert "needs no training (lora+rag: 312 s)" in v.reason
        assert "2.1x faster per answer" in v.reason
        assert v.ci[0] <= v.margin <= v.ci[1]
    assert "rule" in dict(verdict_lines(scores))
    assert scores.interaction is not None and scores.interaction.cells["finetuned_rag"] == "lora+rag"


def test_a_significantly_better_costly_candidate_wins_and_the_reason_says_why():
    scores = decide(_four(rag_gap=0.2), MANIFEST)
    v = scores.verdict
    assert v.best == v.recommended == "lora+rag"
    assert v.versus == "rag" and v.margin == pytest.approx(0.2, abs=0.04) and v.ci[0] > 0
    assert "+0.2" in v.reason and "over rag, the best less costly candidate" in v.reason
    assert not v.too_small


def test_too_few_questions_to_separate_the_top_two_is_said():
    scores = decide(_four(rag_gap=0.01, n=12), MANIFEST)
    v = scores.verdict
    assert v.too_small
    assert "too small to separate" in v.power_note and "would need about" in v.power_note
    top = next(e for e in scores.comparisons("m") if {e.a, e.b} == {"rag", "lora+rag"})
    assert top.mdd > abs(top.delta) and top.n_needed > 12


def test_warnings_are_kept_and_failed_candidates_are_named():
    scores = _four(rag_gap=0.0)
    add_warning(scores, "lora: -0.12 [-0.18, -0.06] on retention")
    scores.candidates["lora"].errors = scores.candidates["lora"].n
    scores.candidates["lora"].failed = "cannot reach http://127.0.0.1:9/v1: ConnectError"  # as scoring marks it
    decide(scores, MANIFEST)
    decide(scores, MANIFEST)  # bakeoff score decides again: nothing twice
    add_warning(scores, "lora: -0.12 [-0.18, -0.06] on retention")  # no duplicate
    warnings = scores.verdict.warnings
    assert warnings[0] == "lora: -0.12 [-0.18, -0.06] on retention"
    assert warnings[1] == (
        "candidate 'lora' failed: all 48 of its answers are errors "
        "(first: cannot reach http://127.0.0.1:9/v1: ConnectError)"
    )
    assert len(warnings) == 2
    assert "lora" not in scores.verdict.cost_order


def test_the_verdict_prints_first_and_fits_80_columns():
    scores = decide(_four(rag_gap=0.0), MANIFEST)
    buffer = io.StringIO()
    print_scores(
        Console(file=buffer, width=80, color_system=None), Scores.of(json.loads(json.dumps(scores.to_dict())))
    )
    text = buffer.getvalue()
    assert text.index("verdict · m") < text.index("metric")  # before the tables
    assert "use rag" in text and "rule" in text and "fine-tune × RAG" in text and "MDD" in text
    assert text.index("paired comparisons") < text.index("enough questions?")
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_run_scored_before_verdicts_still_loads_and_prints():
    old = _four(rag_gap=0.0).to_dict()
    scores = Scores.of(old)
    assert scores.verdict is None and verdict_lines(scores) == []
    buffer = io.StringIO()
    print_scores(Console(file=buffer, width=80), scores)
    assert "verdict" not in buffer.getvalue() and "paired comparisons" in buffer.getvalue()


def test_the_html_report_leads_with_the_verdict(tmp_path):
    from eval_toys import write_run

    from bakeoff.eval.report import build_report
    from bakeoff.eval.report.blocks import render_html
    from bakeoff.run.store import read_run

    scores = decide(_four(rag_gap=0.0), MANIFEST)
    run = read_run(write_run(tmp_path, scores.to_dict(), {}))
    html = render_html(build_report(run))
    verdict = html.index("<h2>Verdict</h2>")
    assert verdict < html.index("<h2>Scores</h2>")
    assert html.index("use rag") > verdict and "needs no training (lora+rag: 312 s)" in html
    assert "recommend the least costly candidate" in html
    assert "<td>interaction</td>" in html and "Fine-tune × RAG on m" in html
    assert "<th>MDD</th>" in html and "<th>training s</th>" in html and "312 (cached)" in html


def test_no_gpu_peak_is_reported_off_a_gpu():
    from bakeoff.run.gpu import peak_gpu_gb, reset_gpu_peak

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    reset_gpu_peak()
    assert peak_gpu_gb() is None
    assert decide(_four(rag_gap=0.0), MANIFEST).candidates["rag"].cost.peak_gpu_memory_gb is None
