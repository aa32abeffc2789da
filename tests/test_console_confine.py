"""Every file the console writes stays in its place (issue 17, finding 1): the confinement rule, *Save as*
(recipes folder only, recipes only, valid recipes unless confirmed) and arena votes (inside the run folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bakeoff.recipe.load import RecipeError
from bakeoff.ui.arena import VOTES_FILE, Matchup, read_votes, record_vote
from bakeoff.ui.confine import PathRefused, check_recipe_target, confine, inside, is_recipe_file
from bakeoff.ui.editor import read_saved, save_recipe

VALID = (
    "name: saved\neval:\n  questions: qa.jsonl\ncandidates:\n  - name: zero-shot\n    agent: fewshot\n"
)


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    folder = tmp_path / "project" / "recipes"
    folder.mkdir(parents=True)
    (folder / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    return folder


def test_confine_returns_the_real_location_inside_the_root(recipes, monkeypatch):
    monkeypatch.chdir(recipes.parent)
    assert confine("recipes/a.yaml", [recipes]) == recipes.resolve() / "a.yaml"
    assert confine("recipes/../recipes/new/b.yaml", [recipes]) == recipes.resolve() / "new" / "b.yaml"
    inner = recipes / "inner"
    inner.mkdir()
    (recipes / "alias").symlink_to(inner)  # a link that stays inside is followed, and written through
    assert confine(recipes / "alias" / "c.yaml", [recipes]) == inner.resolve() / "c.yaml"
    assert inside(recipes / "alias" / "c.yaml", recipes) and not inside(recipes.parent, recipes)


@pytest.mark.parametrize(
    "asked, says",
    [
        ("../x.yaml", "is outside the recipes folder"),
        ("/tmp/x.yaml", "is outside the recipes folder"),
        ("recipes/../../../x.yaml", "is outside the recipes folder"),
        ("recipes/out/x.yaml", "(it resolves to"),  # a link inside that leads out
        ("recipes/.github/workflows/x.yml", "hidden folder or file '.github'"),
        ("recipes/.x.yaml", "hidden folder or file '.x.yaml'"),
        ("recipes", "is the recipes folder itself"),
    ],
)
def test_confine_refuses_paths_that_leave_the_root(recipes, tmp_path, monkeypatch, asked, says):
    monkeypatch.chdir(recipes.parent)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (recipes / "out").symlink_to(outside)
    with pytest.raises(PathRefused) as refused:
        confine(asked, [recipes], what="recipes folder")
    assert says in str(refused.value)
    assert not list(outside.iterdir()) and not (tmp_path / "x.yaml").exists()


def test_confine_without_roots_refuses_everything(tmp_path):
    with pytest.raises(PathRefused, match="given no folder"):
        confine(tmp_path / "a.yaml", [])


def test_what_counts_as_a_recipe_to_overwrite(recipes):
    cases = {
        "recipe.yaml": VALID,
        "draft.yaml": "name: half-done\ncandidates:\n  - {name: x, agent: fewshot, k: [\n",  # broken YAML
        "keys-only.yml": "name: later\ndescription: only recipe keys so far\n",
        "empty.yaml": "# nothing yet\n",
        "compose.yaml": "name: web\nservices:\n  web: {image: nginx}\n",
        "workflow.yml": "name: ci\non: push\njobs: {}\n",
        "script.sh": "#!/bin/sh\necho hi\n",
        "list.yaml": "- a\n- b\n",
        "binary.yaml": b"\xff\xfe\x00candidates:",
    }
    for name, text in cases.items():
        path = recipes / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (recipes / "huge.yaml").write_text("candidates:\n" + "#" * 1_100_000)
    (recipes / "link.yaml").symlink_to(recipes / "recipe.yaml")
    found = {p.name for p in recipes.iterdir() if is_recipe_file(p)}
    assert found == {"recipe.yaml", "draft.yaml", "keys-only.yml", "empty.yaml"}


def test_save_as_writes_a_valid_recipe_inside_the_folder(recipes, monkeypatch):
    monkeypatch.chdir(recipes.parent)
    written = save_recipe("recipes/saved.yaml", VALID, roots=[recipes])
    assert written == recipes.resolve() / "saved.yaml" and written.read_text() == VALID
    assert read_saved(written) == VALID
    again = VALID.replace("zero-shot", "plain")
    assert save_recipe(written, again, roots=[recipes]).read_text() == again  # a recipe may be overwritten
    assert sorted(p.name for p in recipes.iterdir()) == ["qa.jsonl", "saved.yaml"]  # no temporary file left
    nested = save_recipe("recipes/sub/deeper/saved.yaml", VALID, roots=[recipes], allow_invalid=True)
    assert nested == recipes.resolve() / "sub" / "deeper" / "saved.yaml"  # folders inside are made


@pytest.mark.parametrize(
    "asked, existing, says",
    [
        ("../x.yaml", None, "is outside the recipes folder"),
        ("/tmp/x.yaml", None, "is outside the recipes folder"),
        ("recipes/run.sh", "#!/bin/sh\necho ok\n", "is not a recipe file name"),
        ("recipes/evilmod2.py", None, "is not a recipe file name"),
        ("recipes/compose.yaml", "services:\n  web: {image: nginx}\n", "exists and is not a recipe"),
        ("recipes/folder.yaml", "DIR", "is a folder"),
    ],
)
def test_save_as_refuses_with_a_reason(recipes, monkeypatch, asked, existing, says):
    monkeypatch.chdir(recipes.parent)
    target = recipes.parent / asked
    if existing == "DIR":
        target.mkdir()
    elif existing is not None:
        target.write_text(existing)
    before = target.read_text() if target.is_file() else None
    with pytest.raises(PathRefused) as refused:
        save_recipe(asked, VALID, roots=[recipes])
    assert says in str(refused.value)
    if before is not None:
        assert target.read_text() == before  # untouched
    assert read_saved(asked) is None or is_recipe_file(asked)
    assert not Path("/tmp/x.yaml").exists() or Path("/tmp/x.yaml").read_text() != VALID


def test_save_as_refuses_an_invalid_recipe_unless_confirmed(recipes):
    broken = VALID.replace("agent: fewshot", "agent: fewshot\n    k: three")
    with pytest.raises(RecipeError) as refused:
        save_recipe(recipes / "draft.yaml", broken, roots=[recipes])
    assert [p.path for p in refused.value.problems] == ["candidates[0].k"]
    assert not (recipes / "draft.yaml").exists()
    save_recipe(recipes / "draft.yaml", broken, roots=[recipes], allow_invalid=True)
    assert (recipes / "draft.yaml").read_text() == broken and is_recipe_file(recipes / "draft.yaml")


def test_save_as_does_not_follow_a_folder_link_out(recipes, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (recipes / "escape").symlink_to(outside)
    with pytest.raises(PathRefused, match="resolves to"):
        save_recipe(recipes / "escape" / "deep" / "x.yaml", VALID, roots=[recipes])
    assert not list(outside.iterdir())
    with pytest.raises(PathRefused):
        check_recipe_target(recipes / "escape" / "x.yaml", [recipes])


def test_read_saved_reads_only_recipes(recipes):
    (recipes / "secret.txt").write_text("password")
    assert read_saved(recipes / "secret.txt") is None and read_saved("/etc/passwd") is None
    assert read_saved(recipes / "missing.yaml") is None


def _matchup() -> Matchup:
    return Matchup("q1", "One?", "One.", "rag", "lora", "one", "1")


def test_votes_are_written_only_inside_their_run_folder(tmp_path):
    run = tmp_path / "runs" / "r" / "20260101-000000-abcd"
    run.mkdir(parents=True)
    record_vote(run, _matchup(), "a", session="s")
    assert [v["vote"] for v in read_votes(run)] == ["a"]
    # a votes.jsonl that is a link out of the run folder is refused; the target is untouched
    target = tmp_path / "bashrc"
    target.write_text("export A=1\n")
    other = tmp_path / "runs" / "r" / "20260101-000000-beef"
    other.mkdir()
    os.symlink(target, other / VOTES_FILE)
    with pytest.raises(PathRefused, match="outside the run folder"):
        record_vote(other, _matchup(), "b")
    assert target.read_text() == "export A=1\n"
