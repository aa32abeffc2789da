import pytest

from bakeoff.eval import DEFAULT_METRICS, get_metric, metric_names
from bakeoff.eval.classification import classification_report
from bakeoff.eval.metrics import normalize_answer

QA = DEFAULT_METRICS["qa"]


@pytest.mark.parametrize("name", QA)
def test_identical_texts_score_one(name):
    text = "The monthly platform fee is EUR 18,500."
    assert get_metric(name).score(response=text, reference=text).value == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name", ["bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_f1", "token_recall", "contains"]
)
def test_disjoint_texts_score_zero(name):
    assert get_metric(name).score(
        response="blue whales swim", reference="forty two days"
    ).value == pytest.approx(0.0)


def test_known_values():
    # rouge-score on a hand-checkable pair: reference 4 tokens, response 2 of them -> P=1, R=0.5, F=2/3
    assert get_metric("rouge1").score(
        response="thirty days", reference="thirty calendar days notice"
    ).value == pytest.approx(2 / 3)
    # LCS "thirty days" = 2 tokens as well
    assert get_metric("rougeL").score(
        response="thirty days", reference="thirty calendar days notice"
    ).value == pytest.approx(2 / 3)
    # SQuAD token F1 ignores case, punctuation and articles
    assert get_metric("token_f1").score(response="The EUR 18,500.", reference="eur 18500").value == 1.0
    # 2 of 4 predicted tokens right, both gold tokens found: P=0.5, R=1, F1=2/3
    assert get_metric("token_f1").score(
        response="EUR 18,500 per month", reference="eur 18500"
    ).value == pytest.approx(2 / 3)
    assert get_metric("exact_match").score(response="The answer: Oslo!", reference="answer Oslo").value == 1.0
    assert (
        get_metric("contains")
        .score(response="It is governed by the laws of England.", reference="England")
        .value
        == 1.0
    )
    # BLEU is sacrebleu's sentence BLEU scaled to 0-1
    from sacrebleu.metrics import BLEU

    ref, hyp = "payment is due within 30 days of invoice", "payment is due within 45 days"
    expected = BLEU(effective_order=True).sentence_score(hyp, [ref]).score / 100
    assert get_metric("bleu").score(response=hyp, reference=ref).value == pytest.approx(expected)
    assert 0 < expected < 1


def test_token_recall_credits_a_correct_sentence_for_a_short_reference():
    recall, rouge = get_metric("token_recall"), get_metric("rougeL")
    sentence = "The duke in the battle of Hastings was William the Conqueror."
    assert recall.score(response=sentence, reference="William the Conqueror").value == 1.0
    assert rouge.score(response=sentence, reference="William the Conqueror").value < 0.5  # the 0.43
    # SQuAD normalisation: case, punctuation and articles do not matter
    assert recall.score(response="in FRANCE.", reference="France").value == 1.0
    # the share of reference tokens, counted with multiplicity; a wordy answer gets recall >= token F1
    pair = {"response": "It was William of Normandy, the duke", "reference": "William the Conqueror of Normandy"}
    assert recall.score(**pair).value == pytest.approx(3 / 4)
    assert recall.score(**pair).value >= get_metric("token_f1").score(**pair).value
    assert recall.score(response="1066 1066", reference="1066 1066 1067").value == pytest.approx(2 / 3)
    empty = recall.score(response="anything", reference="the")
    assert empty.value is None and "empty reference" in empty.reason


def test_metrics_reject_non_strings():
    with pytest.raises(ValueError):
        get_metric("rougeL").score(response=None, reference="x")


def test_normalize_answer():
    assert normalize_answer("  The Quick, brown FOX! ") == "quick brown fox"


def test_classification_report_properties():
    refs = ["pos", "pos", "neg", "neg", "neu", "neu"]
    preds = ["pos", "neg", "neg", "neg", None, "pos"]
    rep = classification_report(predictions=preds, references=refs, labels=["pos", "neg", "neu"])
    assert rep["accuracy"] == pytest.approx(3 / 6)
    assert rep["per_label"]["pos"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert rep["per_label"]["neg"]["precision"] == pytest.approx(2 / 3)
    assert rep["per_label"]["neg"]["recall"] == pytest.approx(1.0)
    assert rep["per_label"]["neu"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    )
    assert rep["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert rep["unparsed"] == 1
    assert rep["confusion"]["neu"] == {"(none)": 1, "pos": 1}
    for v in rep["per_label"].values():  # F1 lies between precision and recall
        assert min(v["precision"], v["recall"]) - 1e-9 <= v["f1"] <= max(v["precision"], v["recall"]) + 1e-9


def test_perfect_classification():
    refs = ["a", "b", "c"]
    rep = classification_report(predictions=refs, references=refs, labels=refs)
    assert rep["accuracy"] == rep["macro_f1"] == 1.0
    assert get_metric("macro_f1").aggregate(predictions=refs, references=refs, labels=refs) == 1.0


def test_metric_names_cover_defaults():
    for names in DEFAULT_METRICS.values():
        assert set(names) <= set(metric_names())


def test_best_marks_skip_full_ties():
    from bakeoff.eval.table import best_per_metric

    scores = {
        "metrics": ["a", "b"],
        "candidates": {
            "x": {"metrics": {"a": {"mean": 0.5}, "b": {"mean": 0.0}}},
            "y": {"metrics": {"a": {"mean": 0.7}, "b": {"mean": 0.0}}},
            "z": {"metrics": {"a": {"mean": 0.7}, "b": {"mean": 0.0}}},
        },
    }
    assert best_per_metric(scores) == {"a": {"y", "z"}, "b": set()}
