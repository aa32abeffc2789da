"""METEOR on the machine's WordNet (Debian's wordnet-base), and a located validation error without one."""

import json
import os
import subprocess

import pytest
from eval_toys import write_run

from bakeoff.eval import get_metric
from bakeoff.eval import meteor as meteor_mod
from bakeoff.recipe.load import RecipeError, load_recipe

# NLTK's own doctest pair (nltk/translate/meteor_score.py): round(meteor_score([reference1], hypothesis1), 4)
HYPOTHESIS = "It is a guide to action which ensures that the military always obeys the commands of the party"
REFERENCE = "It is a guide to action that ensures that the military will forever heed Party commands"
NLTK_REFERENCE_VALUE = 0.6944

needs_wordnet = pytest.mark.skipif(
    meteor_mod.find_wordnet()[0] is None,
    reason="no WordNet here: apt-get install wordnet-base (make test does)",
)


def _recipe(tmp_path, metrics: str):
    (tmp_path / "qa.jsonl").write_text(json.dumps({"id": "q1", "question": "q?", "reference": "a"}) + "\n")
    path = tmp_path / "r.yaml"
    path.write_text(
        f"name: r\neval:\n  questions: qa.jsonl\n  metrics: {metrics}\ncandidates:\n  - name: a\n    agent: fewshot\n"
    )
    return path


@pytest.fixture
def no_wordnet(tmp_path, monkeypatch):
    """Every place METEOR looks for WordNet is empty."""
    monkeypatch.delenv(meteor_mod.WORDNET_ENV, raising=False)
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk_data"))
    monkeypatch.setattr(meteor_mod, "NLTK_DATA_DIRS", (str(tmp_path / "home_nltk"),))
    monkeypatch.setattr(meteor_mod, "DEBIAN_WORDNET", tmp_path / "usr-share-wordnet")


@needs_wordnet
def test_meteor_matches_nltk_reference_value_on_debian_wordnet():
    folder, why = meteor_mod.find_wordnet()
    assert why == "" and (folder / "data.noun").is_file()
    metric = get_metric("meteor")
    assert round(metric.score(response=HYPOTHESIS, reference=REFERENCE).value, 4) == NLTK_REFERENCE_VALUE
    assert metric.score(response=REFERENCE, reference=REFERENCE).value > 0.99
    assert metric.score(response="", reference=REFERENCE).value == 0.0
    # WordNet is really read: "auto" matches "car" as a synonym (a WordNet lemma of car.n.01), "banana" does
    # not; without the synonym the two matched words form two chunks and the fragmentation penalty halves it
    synonym = metric.score(response="the auto stopped", reference="the car stopped").value
    unrelated = metric.score(response="the banana stopped", reference="the car stopped").value
    assert synonym == pytest.approx(0.98148, abs=1e-4) and unrelated == pytest.approx(1 / 3)


@needs_wordnet
def test_meteor_scores_a_run(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, "[meteor, token_f1]"))
    assert recipe.eval.metrics == ["meteor", "token_f1"]
    rows = [
        {
            "question_id": "q1",
            "question": "q?",
            "reference": REFERENCE,
            "answer": HYPOTHESIS,
            "latency_s": 0.1,
        },
        {
            "question_id": "q2",
            "question": "q?",
            "reference": "a red car",
            "answer": "a red car",
            "latency_s": 0.1,
        },
    ]
    run = write_run(tmp_path, {"task": "qa", "candidates": {}}, {"cand": rows})
    from bakeoff.cli.eval import rescore_run

    scores = rescore_run(run, recipe).to_dict()
    per = scores["per_answer"]["cand"]
    assert round(per["q1"]["meteor"], 4) == NLTK_REFERENCE_VALUE
    assert per["q2"]["meteor"] == pytest.approx(1 - 0.5 / 27)  # one chunk of 3 words: penalty 0.5 * (1/3)^3
    mean = scores["candidates"]["cand"]["metrics"]["meteor"]["mean"]
    assert mean == pytest.approx((per["q1"]["meteor"] + per["q2"]["meteor"]) / 2)
    assert json.loads((run / "scores.json").read_text())["candidates"]["cand"]["metrics"]["meteor"]["n"] == 2


@needs_wordnet
def test_bakeoff_wordnet_points_at_a_copy(tmp_path, monkeypatch):
    folder, _ = meteor_mod.find_wordnet()
    copy = tmp_path / "my-wordnet"
    copy.mkdir()
    for f in folder.iterdir():
        if f.is_file():
            (copy / f.name).symlink_to(f)
    monkeypatch.setenv(meteor_mod.WORDNET_ENV, str(copy))
    assert meteor_mod.find_wordnet() == (copy, "")
    (copy / "data.verb").unlink()
    found, why = meteor_mod.find_wordnet()
    assert (
        found is None and f"{meteor_mod.WORDNET_ENV}={copy} lacks data.verb" in why and "wordnet-base" in why
    )


def test_without_wordnet_meteor_is_a_located_validation_error_naming_the_package(tmp_path, no_wordnet):
    with pytest.raises(RecipeError) as exc:
        load_recipe(_recipe(tmp_path, "[token_f1, meteor]"))
    [problem] = exc.value.problems
    assert problem.path == "eval.metrics[1]"
    assert "unavailable" in problem.message and "WordNet" in problem.message
    assert "apt-get install wordnet-base" in problem.message and "BAKEOFF_WORDNET" in problem.message


def test_bakeoff_metrics_lists_meteor_as_unavailable_without_wordnet(tmp_path, bakeoff_cmd):
    env = {**os.environ, "COLUMNS": "300", meteor_mod.WORDNET_ENV: str(tmp_path / "nowhere")}
    proc = subprocess.run([*bakeoff_cmd, "metrics"], capture_output=True, text=True, timeout=60, env=env)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("meteor"))
    assert "unavailable" in line and "does not exist" in line and "wordnet-base" in line
