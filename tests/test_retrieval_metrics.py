"""hit_rate@k and MRR on small hand-made cases, and how scoring reports them."""

import pytest

from bakeoff.core import Question
from bakeoff.eval.retrieval import (
    AnswerInContext,
    HitRate,
    ReciprocalRank,
    answer_in_contexts,
    context_matches,
    passage_rank,
)
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
    assert scores["metrics"] == ["rougeL", "hit_rate@2", "mrr", "answer_in_context@2"]
    assert scores["retrieval_metrics"] == ["hit_rate@2", "mrr", "answer_in_context@2"]
    # q1's "36 months" and q2's "120 days" are in the retrieved chunks; q3's fee is not in chunk(0, 40)
    aic = rag["answer_in_context@2"]
    assert aic["mean"] == pytest.approx(2 / 4) and aic["n"] == 4
    assert "answer_in_context@2" not in scores["candidates"]["zero-shot"]["metrics"]


def test_no_passage_metrics_without_passages_or_sources():
    questions = [Question("q1", "How long is the term?", "36 months")]
    scores = score_answers(
        questions,
        {"rag": [{"question_id": "q1", "answer": "36 months", "contexts": [chunk(*span(TERM))]}]},
        ScoringSettings(metrics=["rougeL"]),
        retrieval_k={"rag": 4},
    ).to_dict()
    assert scores["metrics"] == ["rougeL", "answer_in_context@4"]
    assert scores["retrieval_metrics"] == ["answer_in_context@4"]
    assert scores["candidates"]["rag"]["metrics"]["answer_in_context@4"]["mean"] == 1.0


# -- passages longer than a chunk (as in SQuAD: 60% of paragraphs are longer than 512 characters) ---------
LONG = " ".join(
    f"Clause {i}. The supplier shall keep record {i} of every delivery for {i + 3} years and show it on request."
    for i in range(1, 15)
)  # ~1,400 characters: longer than two 512-character chunks
LONG_DOC = "Preamble. This schedule lists the record-keeping duties of the supplier.\n\n" + LONG + (
    "\n\nSignatures. Signed by both parties on the Effective Date in two copies."
)


def _chunks(size: int = 512, overlap: int = 64) -> list[dict]:
    """The document cut by the corpus' real chunker, as the RAG agent records its contexts."""
    from bakeoff.rag.corpus import ChunkSpec, Document, chunk_documents

    pieces = chunk_documents([Document("schedule.md", LONG_DOC)], ChunkSpec(size=size, overlap=overlap))
    return [{"text": c.text, "source": c.source, "start": c.start, "end": c.end} for c in pieces]


def test_a_passage_longer_than_two_chunks_spread_over_them_counts_as_retrieved():
    chunks = _chunks()
    start = LONG_DOC.index(LONG)
    inside = [c for c in chunks if c["end"] > start and c["start"] < start + len(LONG)]
    assert len(LONG) > 2 * 512 and len(inside) >= 3  # the passage is spread over three or more chunks
    # The old rule ("half of the passage in one chunk") could never count it: no chunk holds 700 characters.
    assert all(c["end"] - c["start"] < 0.5 * len(LONG) for c in inside)
    assert passage_rank(inside, LONG, "schedule.md") == 1
    assert HitRate(4).score(retrieved_contexts=inside, reference_passage=LONG).value == 1.0
    # Retrieved among chunks of other documents, at rank 3: hit_rate@2 misses it, MRR is 1/3.
    other = {"text": "Unrelated: the canteen opens at eight and closes at four.", "source": "canteen.md"}
    ranked = [other, other, *inside]
    assert HitRate(2).score(retrieved_contexts=ranked, reference_passage=LONG).value == 0.0
    assert ReciprocalRank().score(retrieved_contexts=ranked, reference_passage=LONG).value == pytest.approx(1 / 3)
    # A chunk of the preamble and signatures only (no piece of the passage) does not count.
    outside = {"text": LONG_DOC[:70] + LONG_DOC[-70:], "source": "schedule.md"}
    assert passage_rank([outside], LONG, "schedule.md") == 0


def test_straddling_chunks_count_together_when_they_cover_most_of_the_passage():
    # Two chunks each hold under half of the passage and are mostly other text; together they cover 80%.
    s, e = span(TERM)
    left, right = chunk(0, s + int(0.4 * len(TERM))), chunk(e - int(0.4 * len(TERM)), len(DOC))
    assert not context_matches(left, passage=TERM, source=None)
    assert not context_matches(right, passage=TERM, source=None)
    assert passage_rank([left, right], TERM, None) == 2
    assert HitRate(1).score(retrieved_contexts=[left, right], reference_passage=TERM).value == 0.0
    assert HitRate(2).score(retrieved_contexts=[left, right], reference_passage=TERM).value == 1.0
    # the same chunk twice covers the same 40% once: no hit
    assert passage_rank([left, left], TERM, None) == 0


def test_a_chunk_that_is_mostly_passage_holds_it():
    # A small chunk wholly inside a long passage holds it (most of the chunk is the passage).
    s = LONG_DOC.index(LONG) + 300
    piece = {"text": LONG_DOC[s : s + 200], "source": "schedule.md"}
    assert context_matches(piece, passage=LONG, source="schedule.md")


def test_answer_in_context_finds_a_short_reference_inside_a_retrieved_chunk():
    metric = AnswerInContext(4)
    assert metric.name == "answer_in_context@4"
    contexts = [chunk(0, 80), chunk(*span(NOTICE))]
    # a 3-word reference, found whatever its case, punctuation and articles
    assert metric.score(retrieved_contexts=contexts, reference="at least 120").value == 1.0
    assert metric.score(retrieved_contexts=contexts, reference="The Notice of Non-Renewal!").value == 1.0
    assert metric.score(retrieved_contexts=contexts, reference="at least 90").value == 0.0
    # whole words only: "12" is not found inside "120"
    assert answer_in_contexts("12 days", [NOTICE.replace("120", "1200")]) is False
    # beyond k the chunk is not looked at
    assert AnswerInContext(1).score(retrieved_contexts=contexts, reference="at least 120").value == 0.0
    long_ref = metric.score(retrieved_contexts=contexts, reference=TERM)
    assert long_ref.value is None and "longer than 10 tokens" in long_ref.reason
    assert metric.score(retrieved_contexts=[], reference="120 days").value == 0.0
    with pytest.raises(ValueError):
        AnswerInContext(0)
