import json
import os
import subprocess
from pathlib import Path

import pytest

from bakeoff.models.refs import EmbeddedRef
from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.recipe.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    (tmp_path / "qa.jsonl").write_text('{"id": "1", "question": "Who?", "reference": "Ann"}\n')
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """\
name: demo
task: qa
eval:
  questions: qa.jsonl
candidates:
  - name: zero
    agent: fewshot
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.candidates
    assert path.read_text().lstrip().startswith("# yaml-language-server: $schema=")


def test_good_recipe_resolves_paths_and_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.eval.questions == (tmp_path / "qa.jsonl").resolve()
    assert recipe.base_model == EmbeddedRef("smollm2-135m-instruct")
    assert recipe.candidates[0].agent == "fewshot"
    assert recipe.candidates[0].generation.temperature == 0.0


def test_unknown_key_line_4_and_bad_type_line_7_both_reported(tmp_path):
    text = """\
name: demo
task: qa
eval:
  questionz: qa.jsonl
candidates:
  - name: zero
    k: many
    agent: fewshot
"""
    path = write(tmp_path, text)
    found = problems_of(path)
    assert any(
        p.startswith(f"{path}:4:3: eval.questionz: unknown key 'questionz'; did you mean 'questions'")
        for p in found
    ), found
    assert any(p.startswith(f"{path}:7:8: candidates[0].k:") and "integer" in p for p in found), found
    # the missing `questions` key is reported too, at the mapping that lacks it
    assert any(":4:3: eval.questions: required key 'questions' is missing" in p for p in found), found


def test_cli_validate_exits_2_with_every_problem_and_no_traceback(tmp_path, bakeoff_cmd):
    path = write(
        tmp_path, GOOD.replace("task: qa", "task: summarise").replace("name: zero", "name: zero\n    k: -1")
    )
    proc = subprocess.run([*bakeoff_cmd, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(str(path))]
    assert len(lines) == 2, proc.stderr
    assert f"{path}:2:7: task:" in lines[0]
    assert f"{path}:7:8: candidates[0].k:" in lines[1]


def test_cli_validate_ok(tmp_path, bakeoff_cmd):
    proc = subprocess.run(
        [*bakeoff_cmd, "validate", str(write(tmp_path, GOOD))], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "recipe 'demo'" in proc.stdout


def test_unknown_agent_and_scheme(tmp_path):
    text = GOOD.replace("agent: fewshot", "agent: fewshoot\n    model: s3:x")
    found = problems_of(write(tmp_path, text))
    assert any(
        ":7:12: candidates[0].agent: unknown agent 'fewshoot'" in p and "fewshot" in p for p in found
    ), found


def test_bad_model_scheme_is_located(tmp_path):
    text = GOOD + "    model: s3:bucket/model\n"
    found = problems_of(write(tmp_path, text))
    assert any(":8:12: candidates[0].model: unknown model scheme 's3'" in p for p in found), found


def test_cross_field_checks(tmp_path):
    text = GOOD + "  - name: zero\n    agent: fewshot\n    model: candidate:nobody\n"
    found = problems_of(write(tmp_path, text))
    assert any(":8:11: candidates[1].name: duplicate candidate name 'zero'" in p for p in found), found
    assert any(":10:12: candidates[1].model: no candidate named 'nobody'" in p for p in found), found


def test_classification_needs_labels_and_metrics_must_fit_task(tmp_path):
    text = GOOD.replace("task: qa", "task: classification").replace(
        "qa.jsonl", "qa.jsonl\n  metrics: [rougeL, nope]"
    )
    found = problems_of(write(tmp_path, text))
    assert any("task: task 'classification' needs a `labels:` list" in p for p in found), found
    assert any("eval.metrics[1]: unknown metric 'nope'" in p for p in found), found


def test_missing_question_file_is_reported(tmp_path):
    found = problems_of(write(tmp_path, GOOD.replace("qa.jsonl", "missing.jsonl")))
    assert any(":4:14: eval.questions: file not found" in p for p in found), found


def test_fewshot_k_needs_examples(tmp_path):
    found = problems_of(write(tmp_path, GOOD + "    k: 3\n"))
    assert any("candidates[0]: k: 3 needs `examples:`" in p for p in found), found


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\n  bad indent: [\n", "YAML syntax"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "not allowed"),
        ("name: !!python/name:os.system x\n", "not allowed"),
        ("- just\n- a list\n", "a recipe is a YAML mapping"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
    ],
)
def test_hostile_or_broken_yaml_is_a_located_error(tmp_path, text, fragment):
    found = problems_of(write(tmp_path, text))
    assert len(found) == 1 and fragment in found[0], found


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    found = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert "after expanding aliases" in found[0]


def test_non_utf8_is_reported(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    found = problems_of(path)
    assert "not valid UTF-8" in found[0]


def test_schema_lists_agents_and_documents_fields(bakeoff_cmd):
    schema = json_schema()
    assert schema["title"] == "bakeoff recipe"
    assert "candidates" in schema["properties"]
    text = json.dumps(schema)
    assert "Number of examples shown before the question" in text  # field docs flow into the schema
    proc = subprocess.run([*bakeoff_cmd, "schema"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["title"] == "bakeoff recipe"


def test_recipe_reference_doc_is_generated_from_the_schema():
    from bakeoff.recipe.schema_doc import render_markdown

    doc = (ROOT / "docs" / "recipe-reference.md").read_text()
    assert doc == render_markdown(json_schema()), "docs/recipe-reference.md is stale: run `make docs`"


def test_committed_json_schema_is_current():
    committed = json.loads((ROOT / "docs" / "recipe.schema.json").read_text())
    assert committed == json_schema(), "docs/recipe.schema.json is stale: run `make docs`"


def test_paths_may_not_escape_the_project_root(tmp_path, monkeypatch, bakeoff_cmd):
    monkeypatch.delenv("BAKEOFF_ALLOW_OUTSIDE")
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "qa.jsonl").write_text('{"id": "1", "question": "Who?", "reference": "Ann"}\n')
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"id": "1", "question": "Who?", "reference": "Ann"}\n')
    (project / "recipes" / "link.jsonl").symlink_to(secret)
    ok = project / "recipes" / "ok.yaml"
    ok.write_text(GOOD.replace("qa.jsonl", "../qa.jsonl"))  # up one level, still inside the project
    assert load_recipe(ok).eval.questions == (project / "qa.jsonl").resolve()
    for target in ("../../secret.jsonl", str(secret), "link.jsonl"):
        bad = project / "recipes" / "bad.yaml"
        bad.write_text(GOOD.replace("qa.jsonl", target))
        found = problems_of(bad)
        assert any(
            ":4:14: eval.questions:" in p and "outside the project root" in p and "--allow-outside" in p
            for p in found
        ), found
    proc = subprocess.run(
        [*bakeoff_cmd, "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "BAKEOFF_ALLOW_OUTSIDE"},
    )
    assert proc.returncode == 2 and "outside the project root" in proc.stderr
    proc = subprocess.run(
        [*bakeoff_cmd, "--allow-outside", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "BAKEOFF_ALLOW_OUTSIDE"},
    )
    assert proc.returncode == 0, proc.stderr
