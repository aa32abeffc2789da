"""The console's pages facing hostile input, headless with AppTest (issue 17): *Save as* refuses paths that
leave the recipes folder, files that are not recipes and (unless confirmed) invalid recipes, saying why; *Run*
refuses code beside the recipe before anything starts; an unknown ``?run=`` is named on the page."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from console_fixtures import write_rich_run
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "ui" / "app.py")
RICH = "contract-rag/20260101-120000-abcd"
VALID = "name: good\neval:\n  questions: qa.jsonl\ncandidates:\n  - name: zero-shot\n    agent: fewshot\n"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder with a recipes folder (one valid recipe) and a runs folder (two fixture runs)."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    (recipes / "a-good.yaml").write_text(VALID)
    write_rich_run(tmp_path / "runs")
    write_rich_run(tmp_path / "runs", run_id="20251231-120000-0000")
    monkeypatch.setenv("BAKEOFF_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BAKEOFF_RECIPES_DIR", str(recipes))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _open(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception[0].value
    return at


def _save_as(at: AppTest, path: str) -> AppTest:
    at.text_input(key="recipe_path").input(path).run()
    return at.button(key="recipe_save").click().run()


@pytest.mark.parametrize(
    "asked, says",
    [
        ("../x.yaml", "is outside the recipes folder"),
        ("/tmp/bakeoff-x.yaml", "is outside the recipes folder"),
        ("recipes/compose.yaml", "exists and is not a recipe"),
        ("recipes/evilmod2.py", "is not a recipe file name"),
    ],
)
def test_save_as_refuses_with_a_message(project, asked, says):
    (project / "recipes" / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    at = _save_as(_open("views/recipes.py"), asked)
    assert not at.exception
    [error] = [e.value for e in at.error if e.value.startswith("Not saved")]
    assert says in error
    assert not (project / "x.yaml").exists() and not Path("/tmp/bakeoff-x.yaml").exists()
    assert not (project / "recipes" / "evilmod2.py").exists()
    assert (project / "recipes" / "compose.yaml").read_text().startswith("services:")


def test_save_as_inside_the_recipes_folder_works(project):
    at = _save_as(_open("views/recipes.py"), "recipes/copy.yaml")
    assert not at.error and (project / "recipes" / "copy.yaml").read_text() == VALID
    assert at.button(key="recipe_save").disabled is not False  # saved: nothing left to save


def test_an_invalid_recipe_is_saved_only_when_confirmed(project):
    at = _open("views/recipes.py")
    at.toggle(key="recipe_plain").set_value(True).run()
    version = at.session_state["recipe_version"]
    at.text_area(key=f"recipe_area_{version}").input(VALID.replace("fewshot", "fewshot\n    k: three")).run()
    at.text_input(key="recipe_path").input("recipes/draft.yaml").run()
    at.button(key="recipe_save").click().run()
    [error] = [e.value for e in at.error if e.value.startswith("Not saved")]
    assert "the recipe has 1 problem" in error and "Save it with its problems" in error
    assert not (project / "recipes" / "draft.yaml").exists()
    at.checkbox(key="recipe_save_draft").check().run()
    at.button(key="recipe_save").click().run()
    assert "k: three" in (project / "recipes" / "draft.yaml").read_text()


def test_run_refuses_code_beside_the_recipe_before_starting(project):
    marker = project / "evilmod2-was-imported"
    (project / "recipes" / "evilmod2.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    )
    (project / "recipes" / "b-evil.yaml").write_text(VALID.replace("agent: fewshot", "agent: 'evilmod2:X'"))
    sys.modules.pop("evilmod2", None)
    at = _open("views/recipes.py")
    at.selectbox(key="recipe_source").set_value("recipes/b-evil.yaml").run()
    assert not at.button(key="recipe_run").disabled  # valid as far as validation without code can tell
    at.button(key="recipe_run").click().run()
    [error] = [e.value for e in at.error]
    assert error.startswith("Not started: this recipe names code the console does not run.")
    assert "agent `evilmod2:X`: no module 'evilmod2' is installed" in error
    assert "recipe_launch" not in at.session_state
    assert not marker.exists() and "evilmod2" not in sys.modules and not (project / "runs" / "good").exists()


def test_an_unknown_run_in_the_link_is_named_on_the_page(project):
    at = _open(run="contract-rag/20990101-000000-nope")
    [warning] = [w.value for w in at.warning]
    assert "no run `contract-rag/20990101-000000-nope`" in warning and f"`{RICH}`" in warning
    assert at.selectbox(key="runs_run_picker").value == RICH
    at.selectbox(key="runs_run_picker").set_value("contract-rag/20251231-120000-0000").run()
    assert not at.warning  # picked: the page no longer claims to show the newest
    hostile = _open(run="x` [click](http://evil.example) `")
    assert "[click](http://evil.example)" in hostile.warning[0].value  # kept inside the code span
    assert "`x' [click](http://evil.example) '`" in hostile.warning[0].value
    assert not _open(run=RICH).warning  # a known run: nothing to say
