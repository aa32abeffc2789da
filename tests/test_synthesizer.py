"""The synthesizer helper: prompt, reply checks (one test per rejection reason), and one real generation."""

import json
from pathlib import Path

import pytest
from toy_generators import ExtractiveGenerator

from bakeoff.agents.synthesizer import (
    REASONS,
    ChunkTask,
    Deduplicator,
    Labeller,
    LabelTask,
    Rejection,
    Synthesizer,
    check_label,
    check_reply,
    focus_sentences,
    normalise,
    parse_json_object,
    support,
)
from bakeoff.core import GenerationSettings

PASSAGE = (
    "A3.1 Standard Support Hours are 07:00 to 19:00 Central European Time, Monday to Friday, excluding public "
    "holidays in Norway.\n\nA3.2 Severity 1 incidents are supported 24 hours a day, 7 days a week, 365 days a year."
)


def qa(question, answer):
    return json.dumps({"question": question, "answer": answer})


def test_a_grounded_reply_is_accepted_with_whitespace_tidied():
    reply = (
        "```json\n"
        + qa("When are Severity 1 incidents supported?", "24 hours a day,\n 7 days a week")
        + "\n```"
    )
    assert check_reply(reply, PASSAGE) == (
        "When are Severity 1 incidents supported?",
        "24 hours a day, 7 days a week",
    )


def test_instruction_keys_are_read_too():
    reply = json.dumps(
        {"instruction": "Describe the support hours.", "response": "07:00 to 19:00, Monday to Friday"}
    )
    assert check_reply(reply, PASSAGE) == ("Describe the support hours.", "07:00 to 19:00, Monday to Friday")


@pytest.mark.parametrize(
    "reply, detail",
    [
        ("Sure, here is a question: what are the support hours?", "no JSON object"),
        ('{"question": "What are the support hours?", "answer": "07:00 to', "no JSON object"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_malformed_json_is_rejected(reply, detail):
    result = check_reply(reply, PASSAGE)
    assert isinstance(result, Rejection) and result.reason == "malformed_json" and detail in result.detail
    assert result.reply == reply


def test_a_cut_off_reply_says_so():
    result = check_reply('{"question": "What', PASSAGE, truncated=True)
    assert result.reason == "malformed_json" and "max_new_tokens" in result.detail


@pytest.mark.parametrize(
    "obj, missing",
    [
        ({"question": "What are the support hours?"}, "answer"),
        ({"question": "  ", "answer": "07:00 to 19:00"}, "question"),
        ({"question": "What?", "answer": 42}, "answer"),
        ({}, "question, answer"),
    ],
)
def test_empty_fields_are_rejected(obj, missing):
    result = check_reply(json.dumps(obj), PASSAGE)
    assert isinstance(result, Rejection) and result.reason == "empty_field"
    assert result.detail == f"missing or blank: {missing}"


def test_an_answer_not_grounded_in_the_chunk_is_unsupported():
    result = check_reply(
        qa("What is the Supplier?", "A non-profit organisation with a charitable mission"), PASSAGE
    )
    assert result.reason == "unsupported" and "support 0.00 < 0.6" in result.detail


def test_an_answer_with_an_invented_number_is_unsupported():
    result = check_reply(qa("When is support available?", "07:00 to 21:00 Central European Time"), PASSAGE)
    assert result.reason == "unsupported" and result.detail == "numbers not in the chunk: 21:00"


@pytest.mark.parametrize(
    "question, answer",
    [
        (
            "Severity 1 incidents are supported 24 hours a day.",
            "Severity 1 incidents are supported 24 hours a day",
        ),
        ("Is support provided 24 hours a day, 7 days a week?", "24 hours a day, 7 days a week"),
    ],
)
def test_a_question_that_repeats_its_answer_is_an_echo(question, answer):
    result = check_reply(qa(question, answer), PASSAGE)
    assert isinstance(result, Rejection) and result.reason == "echo"


def test_the_support_threshold_is_a_setting():
    reply = qa("When is support available?", "Monday to Friday, in the evenings and at weekends")
    assert 0.3 < support("Monday to Friday, in the evenings and at weekends", PASSAGE) < 0.6
    assert check_reply(reply, PASSAGE).reason == "unsupported"
    assert check_reply(reply, PASSAGE, min_support=0.3) == (
        "When is support available?",
        "Monday to Friday, in the evenings and at weekends",
    )


def test_support_ignores_stop_words_case_and_plurals():
    assert support("the HOLIDAY in Norway", PASSAGE) == 1.0
    assert support("of the and", PASSAGE) == 0.0  # nothing to ground


def test_duplicates_are_detected_on_normalised_text():
    dedupe = Deduplicator(["What are the support hours?"])
    assert normalise("  What are   the SUPPORT hours ") == "what are the support hours"
    assert not dedupe.admit("what are the support hours")
    assert dedupe.admit("Who staffs the telephone line?")
    assert not dedupe.admit("Who staffs the telephone line ?!")


def test_labels_parse_from_json_or_words_and_unparseable_is_rejected():
    labels = ["positive", "negative", "neutral"]
    assert check_label('{"label": "Negative"}', labels) == "negative"
    assert check_label("I think this is positive.", labels) == "positive"
    result = check_label("It's a review about an app.", labels)
    assert isinstance(result, Rejection) and result.reason == "unparseable_label"


def test_rejection_reasons_are_a_closed_set():
    assert set(REASONS) == {
        "generation_error",
        "malformed_json",
        "empty_field",
        "unsupported",
        "echo",
        "duplicate",
        "unparseable_label",
    }
    with pytest.raises(ValueError, match="unknown rejection reason"):
        Rejection("bad vibes")


def test_parse_json_object_skips_text_and_braces_around_it():
    assert parse_json_object('Here you go: {"a": 1}} and {"b": 2}') == {"a": 1}
    assert parse_json_object('{not json} {"ok": true}') == {"ok": True}
    assert parse_json_object("nothing") is None


def test_focus_sentences_are_distinct_seeded_and_padded():
    a = focus_sentences(PASSAGE, 2, "s")
    assert len(set(a)) == 2 and a == focus_sentences(PASSAGE, 2, "s")
    assert all(s in PASSAGE for s in a)
    assert focus_sentences(PASSAGE, 4, "s")[2:] == [None, None]  # fewer sentences than asked: whole chunk
    assert focus_sentences("# Heading only", 1, 0) == [None]


def test_prompt_has_a_one_shot_json_example_and_the_chunk():
    task = ChunkTask("k", "c1", "a.md", PASSAGE, "qa", 2)
    convos = Synthesizer.conversations(task)
    assert len(convos) == 2
    for convo in convos:
        assert [m["role"] for m in convo] == ["system", "user", "assistant", "user"]
        assert "JSON" in convo[0]["content"] and json.loads(convo[2]["content"])["question"]
        assert PASSAGE in convo[3]["content"]
    assert convos[0][3]["content"] != convos[1][3]["content"]  # different focus sentences


def test_generation_errors_fail_the_unit_and_records_carry_their_source():
    gen = ExtractiveGenerator(failing=("Severity",))
    ok = ChunkTask("k1", "c1", "a.md", PASSAGE.split("\n\n")[0], "qa", 1)
    bad = ChunkTask("k2", "c2", "a.md", PASSAGE.split("\n\n")[1], "qa", 1)
    first, second = Synthesizer(gen).run([ok, bad])
    assert gen.calls == 1  # one batched call for the whole batch
    assert not first.failed and first.generated == 1 and not first.rejected
    [record] = first.records
    assert record["chunk_id"] == "c1" and record["source"] == "a.md" and record["kind"] == "qa"
    assert record["passage"] == ok.text and record["unit"] == "k1" and record["generator"] == "toy:extractive"
    assert second.failed and [r.reason for r in second.rejected] == ["generation_error"]


def test_labeller_prompt_shows_examples_as_turns():
    labeller = Labeller(
        ExtractiveGenerator(), labels=["positive", "negative"], examples=[("Great app", "positive")]
    )
    convo = labeller.conversation("Crashes daily")
    assert (
        convo[0]["content"]
        == 'Classify the text as one of: positive, negative. Reply with JSON only: {"label": "<label>"}.'
    )
    assert convo[1:] == [
        {"role": "user", "content": "Great app"},
        {"role": "assistant", "content": '{"label": "positive"}'},
        {"role": "user", "content": "Crashes daily"},
    ]
    first, second = labeller.run(
        [LabelTask("a", "r1", "this is negative", gold="negative"), LabelTask("b", "r2", "meh")]
    )
    assert first.records[0] | {"unit": None} == {
        "id": "r1",
        "kind": "label",
        "text": "this is negative",
        "label": "negative",
        "gold": "negative",
        "generator": "toy:extractive",
        "unit": None,
    }
    assert [r.reason for r in second.rejected] == ["unparseable_label"]


@pytest.mark.slow
def test_real_model_writes_checked_records(embedded_generator, root: Path):
    """The embedded SmolLM2-135M on two sample-contract chunks: every reply is either a record or a reason."""
    from bakeoff.rag.corpus import CorpusSpec, load_corpus

    chunks = load_corpus(CorpusSpec(paths=["data/contract/annex-a-service-levels.md"]), root).chunks[3:5]
    tasks = [ChunkTask(f"k{i}", c.id, c.source, c.text, "qa", 1) for i, c in enumerate(chunks)]
    synth = Synthesizer(embedded_generator, generation=GenerationSettings(max_new_tokens=64))
    results = synth.run(tasks)
    assert sum(r.generated for r in results) == 2
    for task, result in zip(tasks, results, strict=True):
        assert len(result.records) + len(result.rejected) == 1
        for record in result.records:
            assert record["question"].strip() and record["answer"].strip()
            assert support(record["answer"], task.text) >= 0.6
        for rejection in result.rejected:
            assert rejection.reason in REASONS and rejection.reply
