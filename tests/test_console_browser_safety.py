"""Issue 17's acceptance in headless Chromium, against a real ``bakeoff ui --host 0.0.0.0``: without the
printed token the browser gets no page; with it, the console. *Save as* ``../x.yaml``, ``/tmp/x.yaml`` and an
existing non-recipe file are refused with a message, a save inside the recipes folder works, and a ``.py``
saved beside a recipe is not importable by *Run*."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from console_fixtures import write_rich_run
from console_server import start_console, stop_console

pytestmark = pytest.mark.browser

RICH = "contract-rag/20260101-120000-abcd"
VALID = "name: good\neval:\n  questions: qa.jsonl\ncandidates:\n  - name: zero-shot\n    agent: fewshot\n"
SAVE_AS = 'input[aria-label="Save as"]'


@pytest.fixture(scope="module")
def console(tmp_path_factory, bakeoff_cmd_module):
    """One exposed console over a recipes folder (a valid recipe, a compose file, a recipe naming a module
    that sits beside it) and a runs folder with a fixture run."""
    root = tmp_path_factory.mktemp("exposed")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    (recipes / "a-good.yaml").write_text(VALID)
    (recipes / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    marker = root / "evilmod2-was-imported"
    (recipes / "evilmod2.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    (recipes / "b-evil.yaml").write_text(VALID.replace("agent: fewshot", "agent: 'evilmod2:X'"))
    write_rich_run(root / "runs")
    proc, port, token = start_console(
        bakeoff_cmd_module, root, "--host", "0.0.0.0", "--recipes-dir", str(recipes), cwd=root
    )
    try:
        yield {"root": root, "recipes": recipes, "marker": marker, "base": f"http://127.0.0.1:{port}", "token": token}
    finally:
        stop_console(proc)


@pytest.fixture(scope="module")
def bakeoff_cmd_module():
    import sys

    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from browser import Browser, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (make test installs it: apt-get install -y chromium)")
    with Browser(profile=tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


def test_without_the_token_the_browser_gets_no_page(console, browser):
    for path in ("/", "/runs", f"/compare?run={RICH}", "/recipes"):
        text = browser.load(console["base"] + path, expect=["needs its token"], settle=0.5)
        assert "Runs" not in text and "contract-rag" not in text
        dom = browser.html()
        assert "stApp" not in dom and "<script" not in dom.lower(), path


def test_with_the_token_the_browser_gets_the_console(console, browser, tmp_path):
    text = browser.load(f"{console['base']}/?token={console['token']}", expect=["Runs", "1 run(s) in"])
    assert "needs its token" not in text
    url = browser.call("Runtime.evaluate", {"expression": "location.href", "returnByValue": True})
    assert "token=" not in url["result"]["value"]  # the token left the address bar for a cookie
    compare = browser.load(f"{console['base']}/compare?run={RICH}", expect=["lora+rag", "★"])
    assert "rag" in compare
    browser.screenshot(tmp_path / "compare-with-token.png")


def _recipes_page(console, browser) -> None:
    browser.load(f"{console['base']}/recipes?token={console['token']}", expect=["Recipes", "Save as", "valid"])


@pytest.mark.parametrize(
    "asked, says",
    [
        ("../x.yaml", "is outside the recipes folder"),
        ("/tmp/x.yaml", "is outside the recipes folder"),
        ("recipes/compose.yaml", "exists and is not a recipe"),
    ],
)
def test_save_as_outside_or_over_a_non_recipe_is_refused_with_a_message(console, browser, asked, says):
    absolute = Path(asked) if asked.startswith("/") else console["root"] / asked  # the console runs in root
    before = absolute.read_bytes() if absolute.is_file() else None
    _recipes_page(console, browser)
    browser.type_into(SAVE_AS, asked)
    browser.click_button("Save")
    text = browser.wait_for(says)
    assert "Not saved:" in text
    after = absolute.read_bytes() if absolute.is_file() else None
    assert after == before  # nothing written (a /tmp/x.yaml made by someone else is left as it was)
    assert (console["recipes"] / "compose.yaml").read_text().startswith("services:")


def test_save_as_inside_the_recipes_folder_works(console, browser):
    target = console["recipes"] / "copy.yaml"
    _recipes_page(console, browser)
    browser.type_into(SAVE_AS, "recipes/copy.yaml")
    browser.click_button("Save")
    deadline = time.time() + 30
    while not target.exists() and time.time() < deadline:
        time.sleep(0.3)
    assert target.read_text() == VALID
    assert "Not saved" not in browser.text()


def test_a_py_file_beside_a_recipe_is_not_importable_by_run(console, browser):
    _recipes_page(console, browser)
    browser.type_into('[data-testid="stSelectbox"] input', "b-evil.yaml")
    browser.wait_for("imported only when you press Run")
    browser.click_button("Run")
    text = browser.wait_for("Not started")
    assert "agent evilmod2:X: no module 'evilmod2' is installed" in text
    assert not console["marker"].exists()
    assert not (console["root"] / "runs" / "good").exists()
