"""A first result early: what trains nothing is prepared and answered first, and its scores print with what
is left."""

from pathlib import Path

from rich.console import Console

from bakeoff.questions import load_questions
from bakeoff.recipe.load import load_recipe
from bakeoff.run.first_results import phases, print_first_results
from bakeoff.run.runner import select_candidates

ROOT = Path(__file__).resolve().parent.parent


def _quickstart():
    path = ROOT / "recipes" / "quickstart.yaml"
    return load_recipe(path)


def test_candidates_that_train_nothing_come_first_in_the_recipes_order():
    recipe = _quickstart()
    _, needed = select_candidates(recipe, None)
    first, later = phases(needed)
    assert [c.name for c in first] == ["zero-shot", "three-shot", "rag"]
    assert [c.name for c in later] == ["lora", "lora+rag"]  # the fine-tune before what builds on it
    # nothing to train, or nothing else: one phase
    _, only_lora = select_candidates(recipe, ["lora+rag"])
    assert [[c.name for c in p] for p in phases(only_lora)] == [["lora", "lora+rag"]]
    _, cheap = select_candidates(recipe, ["zero-shot,rag"])
    assert [[c.name for c in p] for p in phases(cheap)] == [["zero-shot", "rag"]]


def test_first_results_print_scores_and_what_is_left():
    recipe = _quickstart()
    questions = load_questions(ROOT / "data" / "contract-qa.jsonl", task="qa")[:6]
    answers = {
        name: [
            {
                "question_id": q.id,
                "question": q.question,
                "reference": q.reference,
                "answer": q.reference if name == "rag" else "I do not know.",
                "latency_s": 0.1,
            }
            for q in questions
        ]
        for name in ("zero-shot", "rag")
    }
    _, needed = select_candidates(recipe, None)
    console = Console(record=True, width=80, color_system=None)
    print_first_results(
        recipe, questions, answers, answer_s=12.0, later=phases(needed)[1], later_answering=2, console=console
    )
    text = console.export_text()
    assert "first results" in text and "zero-shot" in text and "rag" in text
    assert "1.000 ★" in text  # rag's answers are the references
    # 12 answers took 12 s: 2 candidates × 6 questions more take about 12 s
    assert "still to come: lora, lora+rag (training lora first" in text
    assert "then 12 answers, about 12 s at this run's rate so far" in text
