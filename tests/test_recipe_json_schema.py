"""The generated JSON Schema as an editor's validator uses it (the `jsonschema` package, Draft 2020-12, as
yaml-language-server reads the recipes' `$schema` line): shipped recipes pass, and a wrong value inside a
candidate is reported at that key, not as "the candidate matches none of the kinds"."""

from pathlib import Path

import jsonschema
import pytest
import yaml

from bakeoff.recipe.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))

BASE = {
    "name": "demo",
    "eval": {"questions": "qa.jsonl"},
    "candidates": [
        {"name": "rag", "agent": "rag", "k": 4},
        {"name": "shots", "agent": "fewshot", "k": 2},
    ],
}


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, recipe):
    return sorted(validator.iter_errors(recipe), key=lambda e: list(e.absolute_path))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate(validator, path):
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


def test_a_wrong_value_in_a_fewshot_candidate_is_reported_at_its_key(validator):
    recipe = {
        **BASE,
        "candidates": [BASE["candidates"][0], {"name": "shots", "agent": "fewshot", "k": "three"}],
    }
    [error] = _errors(validator, recipe)
    assert list(error.absolute_path) == ["candidates", 1, "k"]
    assert error.validator == "type" and error.message == "'three' is not of type 'integer'"
    best = jsonschema.exceptions.best_match(validator.iter_errors(recipe))
    assert best.json_path == "$.candidates[1].k"


def test_an_unknown_key_and_an_unknown_agent_are_located(validator):
    typo = {**BASE, "candidates": [{"name": "shots", "agent": "fewshot", "kk": 2}]}
    [error] = _errors(validator, typo)
    assert list(error.absolute_path) == ["candidates", 0] and "'kk' was unexpected" in error.message
    kind = {**BASE, "candidates": [{"name": "x", "agent": "fewshots"}]}
    [error] = _errors(validator, kind)
    assert list(error.absolute_path) == ["candidates", 0, "agent"] and error.validator == "enum"
    assert "'fewshot'" in error.message


def test_each_kind_is_checked_by_its_own_settings(validator):
    # `fetch_k` belongs to rag: fine there, unexpected in a fewshot candidate (and reported there)
    ok = {**BASE, "candidates": [{"name": "r", "agent": "rag", "fetch_k": 20}]}
    assert _errors(validator, ok) == []
    wrong = {
        **BASE,
        "candidates": [{"name": "r", "agent": "rag"}, {"name": "s", "agent": "fewshot", "fetch_k": 20}],
    }
    [error] = _errors(validator, wrong)
    assert list(error.absolute_path) == ["candidates", 1] and "'fetch_k' was unexpected" in error.message
