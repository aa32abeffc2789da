import pytest
from rich.console import Console

from bakeoff.agents.fewshot import FewShotAgent, FewShotSettings
from bakeoff.agents.prompts import parse_label
from bakeoff.models.refs import EmbeddedRef
from bakeoff.run.context import RunContext

LABELS = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("text", "json_mode", "expected"),
    [
        ('{"label": "negative"}', True, "negative"),
        ('Sure! {"label": "Neutral"} is my answer', True, "neutral"),
        ('{"label": "meh"} but really positive', True, "positive"),
        ("Negative. Not positive at all.", False, "negative"),
        ("I think this is POSITIVE", False, "positive"),
        ("non-negativepositive", False, None),
        ("no idea", False, None),
    ],
)
def test_parse_label(text, json_mode, expected):
    assert parse_label(text, LABELS, json_mode=json_mode) == expected


def ctx(task="qa", labels=()):
    return RunContext(
        task=task,
        labels=list(labels),
        base_model=EmbeddedRef("smollm2-135m-instruct"),
        recipe_dir=None,
        recipe_name="t",
        console=Console(quiet=True),
    ).for_candidate("t")


def test_conversation_has_k_example_turns_before_the_question():
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    s = FewShotSettings(name="two", agent="fewshot", k=2, examples=examples, prompt="Q: {question}")
    convo = FewShotAgent(s, ctx()).conversation("real?")
    assert [m["role"] for m in convo] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert convo[1]["content"] == "Q: q0" and convo[2]["content"] == "a0"
    assert convo[-1]["content"] == "Q: real?"


def test_random_selection_is_seeded_and_json_examples_are_json():
    examples = [{"question": f"t{i}", "answer": LABELS[i % 3]} for i in range(9)]
    s = FewShotSettings(
        name="r", agent="fewshot", k=3, examples=examples, select="random", seed=3, output="json"
    )
    a = FewShotAgent(s, ctx("classification", LABELS))
    b = FewShotAgent(s, ctx("classification", LABELS))
    a.prepare(), b.prepare()  # the examples are chosen in prepare(), not when the agent is built
    assert [e.question for e in a.examples] == [e.question for e in b.examples]
    convo = a.conversation("great app")
    assert "positive, negative, neutral" in convo[0]["content"] and "JSON" in convo[0]["content"]
    assert convo[2]["content"].startswith('{"label": ')


def test_settings_reject_bad_combinations():
    with pytest.raises(ValueError, match="needs `examples:`"):
        FewShotSettings(name="x", agent="fewshot", k=2)
    with pytest.raises(ValueError, match="only 1 inline examples"):
        FewShotSettings(name="x", agent="fewshot", k=2, examples=[{"question": "a", "answer": "b"}])
    with pytest.raises(ValueError, match="must contain"):
        FewShotSettings(name="x", agent="fewshot", prompt="no placeholder")
    with pytest.raises(ValueError, match="Extra inputs"):
        FewShotSettings(name="x", agent="fewshot", shots=3)
