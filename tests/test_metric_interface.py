"""One interface for every metric: scoring hands each the same named data (Sample) and calls score_samples;
score() takes the fields it names. Retrieval and classification metrics included."""

import pytest

import bakeoff.eval as registry
from bakeoff.core import Question
from bakeoff.eval import get_metric
from bakeoff.eval.metrics import SAMPLE_FIELDS, Sample
from bakeoff.eval.scoring import ScoringSettings, score_answers

PASSAGE = "Either party may give notice of non-renewal at least 120 days before the term ends."


def sample(**kw) -> Sample:
    base = {"question_id": "q1", "question": "What notice stops renewal?", "response": "120 days",
            "reference": "120 days"}
    return Sample(**{**base, **kw})


def test_score_names_the_data_it_reads():
    assert get_metric("rougeL").data_fields() == ("response", "reference")
    assert get_metric("accuracy").data_fields() == ("label", "reference")
    assert get_metric("mrr").data_fields() == ("retrieved_contexts", "reference_passage", "reference_source")
    for name, cls in registry.builtin_metrics().items():
        assert set(cls.data_fields()) <= set(SAMPLE_FIELDS), name


def test_retrieval_and_classification_metrics_score_samples_like_the_others():
    chunks = [{"text": "Fees are monthly.", "source": "msa.md"}, {"text": PASSAGE, "source": "../data/msa.md"}]
    s = sample(retrieved_contexts=chunks, reference_passage=PASSAGE, reference_source="msa.md")
    assert [r.value for r in get_metric("mrr").score_samples([s])] == [0.5]
    assert [r.value for r in get_metric("hit_rate@k", k=1).score_samples([s])] == [0.0]
    assert [r.value for r in get_metric("hit_rate@k", k=2).score_samples([s])] == [1.0]
    labelled = [sample(reference="pos", label="pos"), sample(reference="neg", label=None)]
    results = get_metric("accuracy").score_samples(labelled)
    assert [r.value for r in results] == [1.0, 0.0] and "no label" in results[1].reason
    assert get_metric("macro_f1", labels=["pos", "neg"]).score_corpus(labelled) == pytest.approx(0.5)  # pos: F1 1, neg: F1 0
    assert [r.value for r in get_metric("token_f1").score_samples([s])] == [1.0]


def test_a_failed_answer_counts_as_unparsed_in_every_classification_number():
    questions = [Question(f"q{i}", f"text {i}", label) for i, label in enumerate(["pos", "neg", "pos", "neg"])]
    rows = [
        {"question_id": "q0", "answer": "pos", "label": "pos"},
        {"question_id": "q1", "answer": "neg", "label": "neg"},
        {"question_id": "q2", "answer": "", "label": "pos", "error": "timeout"},  # a label left on a failure
        {"question_id": "q3", "answer": "pos", "label": "pos"},
    ]
    scores = score_answers(
        questions, {"c": rows}, ScoringSettings(task="classification", labels=("pos", "neg"))
    ).to_dict()
    cand = scores["candidates"]["c"]
    assert cand["metrics"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert cand["classification"]["unparsed"] == 1
    assert cand["metrics"]["macro_f1"]["mean"] == pytest.approx(cand["classification"]["macro_f1"])
    assert scores["per_answer"]["c"]["q2"] == {"accuracy": 0.0}
