"""hit_rate@k and MRR on small hand-made cases, and how scoring reports them."""

import pytest

from bakeoff.core import Question
from bakeoff.eval.retrieval import HitRate, ReciprocalRank, context_matches
from bakeoff.eval.scoring import ScoringSettings, score_answers

DOC = (
    "1. Fees. The Platform Fee is EUR 18,000 per month, payable quarterly in advance. "
    "2. Term. The agreement runs for 36 months from the Effective Date and renews for 12 months at a time. "
    "3. Notice. Either party may give notice of non-renewal at least 120 days before the term ends."
)


def chunk(start: int, end: int, source: str = "../data/contract/msa.md") -> dict:
    return {"text": DOC[start:end], "source": source, "start": start, "end": end, "score": 0.5}


def span(passage: str) -> tuple[int, int]:
    start = DOC.index(passage)
    return start, start + len(passage)


TERM = "The agreement runs for 36 months from the Effective Date and renews for 12 months at a time."
NOTICE = "Either party may give notice of non-renewal at least 120 days before the term ends."


def test_a_chunk_matches_when_it_holds_the_passage_or_most_of_it():
    s, e = span(TERM)
    assert context_matches(chunk(s - 10, e + 10), passage=TERM, source="msa.md")
    # whitespace and case do not matter
    assert context_matches(
        {"text": TERM.upper().replace(" ", "\n  "), "source": "msa.md"}, passage=TERM, source=None
    )
    # the passage split across two chunks: the one with 60% of it matches, the one with 40% does not
    cut = s + int(0.6 * len(TERM))
    assert context_matches(chunk(0, cut), passage=TERM, source=None)
    assert not context_matches(chunk(cut, len(DOC)), passage=TERM, source=None)
    # right text, wrong file
    assert not context_matches(chunk(s, e, source="annex-b.md"), passage=TERM, source="msa.md")
    # no passage: the source decides; `msa.md` names the same file as `../data/contract/msa.md`
    assert context_matches(chunk(0, 10), passage=None, source="msa.md")
    assert not context_matches(chunk(0, 10), passage=None, source="sa.md")
    assert context_matches(chunk(0, 10), passage=None, source=None) is None


def test_hit_rate_and_reciprocal_rank_by_rank():
    s, e = span(NOTICE)
    miss, hit = chunk(0, 60), chunk(s, e)
    hr2, rr = HitRate(2), ReciprocalRank()
    assert hr2.name == "hit_rate@2"
    for contexts, want_hit, want_rr in [
        ([hit, miss], 1.0, 1.0),
        ([miss, hit], 1.0, 0.5),
        ([miss, miss, hit], 0.0, 1 / 3),  # beyond k=2 for the hit rate; MRR looks at every retrieved chunk
        ([], 0.0, 0.0),
    ]:
        assert hr2.score(retrieved_contexts=contexts, reference_passage=NOTICE).value == want_hit
        assert rr.score(retrieved_contexts=contexts, reference_passage=NOTICE).value == pytest.approx(want_rr)
    missing = rr.score(retrieved_contexts=[hit], reference_passage=None, reference_source=None)
    assert missing.value is None and "no reference passage" in missing.reason
    with pytest.raises(ValueError):
        HitRate(0)


def test_scores_report_retrieval_metrics_for_retrieving_candidates_only():
    questions = [
        Question("q1", "How long is the term?", "36 months", passage=TERM, source="msa.md"),
        Question("q2", "What notice stops renewal?", "120 days", passage=NOTICE, source="msa.md"),
        Question("q3", "What is the fee?", "EUR 18,000 per month", source="msa.md"),  # source only
        Question("q4", "Who signs?", "the directors"),  # nothing to compare with
    ]
    t, n = span(TERM), span(NOTICE)
    rag_rows = [
        {"question_id": "q1", "answer": "36 months", "contexts": [chunk(*t), chunk(*n)]},  # rank 1
        {"question_id": "q2", "answer": "120 days", "contexts": [chunk(*t), chunk(*n)]},  # rank 2
        {"question_id": "q3", "answer": "", "contexts": [chunk(0, 40, source="other.md")]},  # wrong source
        {"question_id": "q4", "answer": "", "contexts": [chunk(0, 40)]},
    ]
    plain_rows = [{"question_id": q.id, "answer": q.reference} for q in questions]
    scores = score_answers(
        questions,
        {"rag": rag_rows, "zero-shot": plain_rows},
        ScoringSettings(metrics=["rougeL"]),
        retrieval_k={"rag": 2},
    ).to_dict()
    rag = scores["candidates"]["rag"]["metrics"]
    assert rag["hit_rate@2"]["mean"] == pytest.approx(2 / 3) and rag["hit_rate@2"]["n"] == 3
    assert rag["mrr"]["mean"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert rag["mrr"]["missing"] == 1  # q4 has neither passage nor source
    assert scores["per_answer"]["rag"]["q2"]["mrr"] == 0.5
    assert "hit_rate@2" not in scores["candidates"]["zero-shot"]["metrics"]
    assert scores["metrics"] == ["rougeL", "hit_rate@2", "mrr"]
    assert scores["retrieval_metrics"] == ["hit_rate@2", "mrr"]


def test_no_retrieval_metrics_without_passages_or_sources():
    questions = [Question("q1", "How long is the term?", "36 months")]
    scores = score_answers(
        questions,
        {"rag": [{"question_id": "q1", "answer": "36 months", "contexts": []}]},
        ScoringSettings(metrics=["rougeL"]),
        retrieval_k={"rag": 4},
    ).to_dict()
    assert scores["metrics"] == ["rougeL"] and "retrieval_metrics" not in scores
