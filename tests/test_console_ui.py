"""Every console page, headless with Streamlit's AppTest, against a runs folder made by a REAL small run
(the quickstart recipe on the embedded model: 3 questions, short answers), plus fixture runs in the formats
the RAG and fine-tune candidates write, and a corrupt run. One browser test loads the Compare page in
headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from console_fixtures import write_corrupt_run, write_rich_run
from streamlit.testing.v1 import AppTest

from bakeoff.run.store import list_runs
from bakeoff.ui.arena import read_votes

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "ui" / "app.py")
TESTS = Path(__file__).resolve().parent
RICH = "contract-rag/20260101-120000-abcd"
RICH_OLDER = "contract-rag/20251231-120000-0000"
CANDIDATES = ["zero-shot", "three-shot"]


def _bakeoff() -> list[str]:
    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


@pytest.fixture(scope="session")
def console_runs(tmp_path_factory) -> Path:
    """A runs folder with one real quickstart run, two fixture runs of another recipe, and a corrupt one."""
    root = tmp_path_factory.mktemp("console")
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("../data/", f"{ROOT}/data/").replace("  questions: ", "  limit: 3\n  questions: ")
    text = text.replace("    agent: fewshot\n", "    agent: fewshot\n    generation: {max_new_tokens: 8}\n")
    recipe = root / "quickstart.yaml"
    recipe.write_text(text)
    runs = root / "runs"
    proc = subprocess.run(
        [*_bakeoff(), "run", str(recipe), "--runs-dir", str(runs), "--only", "zero-shot,three-shot"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    write_rich_run(runs)
    write_rich_run(runs, run_id=RICH_OLDER.split("/")[1])
    write_corrupt_run(runs)
    return runs


@pytest.fixture(scope="session")
def quick_key(console_runs) -> str:
    [info] = list_runs(console_runs, "quickstart")
    return f"quickstart/{info.run_id}"


@pytest.fixture
def app(console_runs, monkeypatch):
    """A fresh console session; ``app("views/compare.py", run=...)`` opens a page."""
    monkeypatch.setenv("BAKEOFF_RUNS_DIR", str(console_runs))
    monkeypatch.chdir(ROOT)  # the Recipes page lists ./recipes

    def open_(page: str | None = None, *, run: str | None = None, timeout: float = 120) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=timeout)
        if run:
            at.query_params["run"] = run
        at.run()
        assert not at.exception, at.exception[0].value
        if page:
            at.switch_page(page).run()
            assert not at.exception, at.exception[0].value
        return at

    return open_


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "success", "error")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


# --- Runs -------------------------------------------------------------------------------------------------


def test_runs_page_lists_every_run_and_the_corrupt_one_as_unreadable(app, quick_key):
    at = app()
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    rows = {f"{r.recipe}/{r.run_id}": r for r in table.itertuples()}
    assert set(rows) == {quick_key, RICH, RICH_OLDER, "broken/20250101-000000-dead"}
    quick = rows[quick_key]
    assert quick.status == "complete" and quick.candidates == "zero-shot, three-shot" and quick.questions == 3
    from bakeoff.eval import DEFAULT_HEADLINE

    assert quick.metric == DEFAULT_HEADLINE["qa"] and quick.best in CANDIDATES
    assert rows["broken/20250101-000000-dead"].status == "unreadable"
    assert any("is unreadable" in w.value for w in at.warning)
    at.multiselect(key="runs_recipes").set_value(["contract-rag"]).run()
    assert set(at.dataframe[0].value["recipe"]) == {"contract-rag"}


def test_runs_page_opens_a_run_on_another_page(app, quick_key):
    at = app()
    at.selectbox(key="runs_run_picker").set_value(quick_key).run()
    at.button(key="open_compare").click().run()
    assert not at.exception and at.title[0].value == "Compare"
    assert at.selectbox(key="compare_run_picker").value == quick_key


# --- Compare ----------------------------------------------------------------------------------------------


def test_compare_page_shows_candidates_metrics_and_answers(app, quick_key, console_runs):
    at = app("views/compare.py", run=quick_key)
    table = at.table[0].value
    assert list(table.index) == CANDIDATES
    for metric in ("bleu", "rougeL", "token_f1", "exact_match"):
        assert metric in table.columns
    assert all(isinstance(v, str) and v[0].isdigit() for v in table["rougeL"])
    questions = at.dataframe[0].value
    assert len(questions) == 3
    assert {"id", "question", "reference", *CANDIDATES, "disagreement"} <= set(questions.columns)
    [info] = list_runs(console_runs, "quickstart")
    from bakeoff.run.store import read_answers

    answers = {(r["candidate"], r["question_id"]): r["answer"] for r in read_answers(info.path)}
    for row in questions.itertuples():
        assert getattr(row, "_4" if False else "reference")  # the reference sits in the row
        assert questions.loc[row.Index, "zero-shot"] == answers[("zero-shot", row.id)]
    at.toggle(key="compare_q_disagree").set_value(True).run()
    at.slider(key="compare_q_threshold").set_value(1.0).run()
    assert len(at.dataframe[0].value) <= 3 and not at.exception
    cost = at.dataframe[1].value
    assert list(cost["candidate"]) == CANDIDATES and (cost["completion_tokens"] > 0).all()
    assert (cost["training_s"] == 0).all()  # prompts train nothing


def test_compare_page_shows_the_verdict_first(app, quick_key, console_runs):
    at = app("views/compare.py", run=quick_key)
    [info] = list_runs(console_runs, "quickstart")
    verdict = info.scores_document.verdict
    assert verdict.recommended in CANDIDATES
    assert at.success[0].value.startswith(
        f"**Verdict · {info.scores_document.headline}: use {verdict.recommended}"
    )
    page = texts(at)
    assert "**rule**: recommend the least costly candidate" in page and "**cost**:" in page
    assert "**why**:" in page


def test_compare_page_intervals_contexts_and_two_runs(app):
    at = app("views/compare.py", run=RICH)
    table = at.table[0].value
    assert table.loc["lora+rag", "rougeL"].endswith("★") and "[" in table.loc["rag", "rougeL"]
    assert any("95% interval" in c.value for c in at.caption)
    assert [e.label for e in at.expander] == ["retrieved contexts (2)", "retrieved contexts (2)"]
    assert "master-services-agreement.md" in texts(at)
    at.selectbox(key=f"compare_other_{RICH}").set_value(RICH_OLDER).run()
    assert not at.exception
    names = list(at.table[0].value.index)
    assert len(names) == 6 and "rag · 20251231-120000-0000" in names


# --- Training ---------------------------------------------------------------------------------------------


def test_training_page_curves_selected_step_and_hyperparameters(app, quick_key):
    at = app("views/training.py", run=RICH)
    facts = at.table[0].value
    assert list(facts.columns) == ["lora", "lora+rag"]
    assert facts.loc["selected step", "lora"] == "40" and facts.loc["train examples", "lora"] == "120"
    assert facts.loc["r", "lora+rag"] == "8"
    assert len(at.get("vega_lite_chart")) == 1
    assert "step 40" in texts(at)
    at.multiselect(key="training_candidates").set_value(["lora"]).run()
    assert list(at.table[0].value.columns) == ["lora"]
    at = app("views/training.py", run=quick_key)
    assert any("no fine-tuned candidates" in i.value for i in at.info)


# --- Chat -------------------------------------------------------------------------------------------------


def test_chat_streams_replies_side_by_side_with_separate_history(app, quick_key):
    at = app("views/chat.py", run=quick_key, timeout=600)
    assert at.multiselect(key=f"chat_candidates_{quick_key}").value == CANDIDATES
    at.button(key="chat_start").click().run()
    at.chat_input(key="chat_input").set_value("Who are the parties to the agreement?").run()
    assert not at.exception, at.exception[0].value
    messages = [(m.name, " ".join(x.value for x in m.markdown)) for m in at.chat_message]
    assert [role for role, _ in messages] == ["user", "assistant", "user", "assistant"]
    assert all(text.strip() for _, text in messages)
    histories = at.session_state["chat_histories"]
    assert {k.split("::")[1] for k in histories} == set(CANDIDATES)
    assert all(len(h) == 2 for h in histories.values())
    # another session starts empty
    other = app("views/chat.py", run=quick_key)
    assert "chat_histories" not in other.session_state


def test_chat_says_why_a_candidate_cannot_chat(app):
    at = app("views/chat.py", run=RICH)
    at.button(key="chat_start").click().run()
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2 and all("cannot chat" in w and "no longer validates" in w for w in warnings)


# --- Recipes ----------------------------------------------------------------------------------------------


def _edit(at: AppTest, text: str) -> AppTest:
    version = at.session_state["recipe_version"]
    return at.text_area(key=f"recipe_area_{version}").input(text).run()


def test_recipes_page_validates_live_with_located_errors(app, tmp_path):
    at = app("views/recipes.py")
    assert "recipes/quickstart.yaml" in at.selectbox(key="recipe_source").options
    at.selectbox(key="recipe_source").set_value("recipes/quickstart.yaml").run()
    assert any("valid: recipe **quickstart**" in s.value for s in at.success)
    at.toggle(key="recipe_plain").set_value(True).run()
    broken = (
        at.session_state["recipe_text"].replace("k: 3", "k: three").replace("  questions:", "  questoins:")
    )
    _edit(at, broken)
    assert at.error[0].value == "3 problems found"
    lines = at.code[0].value.splitlines()
    k_line = broken.splitlines().index("    k: three") + 1  # found, not hard-coded: the recipe may grow
    q_line = next(i for i, line in enumerate(broken.splitlines(), 1) if line.startswith("  questoins:"))
    assert lines[-1] == (
        f"recipes/quickstart.yaml:{k_line}:8: candidates[1].k: Input should be a valid integer, unable to parse "
        "string as an integer (got 'three')"
    )
    assert any(
        f":{q_line}:3: eval.questoins: unknown key 'questoins'; did you mean 'questions'?" in x for x in lines
    )
    assert "help: candidates[].k" in [e.label for e in at.expander]
    assert at.button(key="recipe_run").disabled
    at.selectbox(key="recipe_help_key").set_value("eval.limit").run()
    assert any("first N questions" in m.value for m in at.markdown)


def test_recipes_page_saves_and_runs_and_the_run_appears(app, tmp_path, monkeypatch, console_runs):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("BAKEOFF_RECIPES_DIR", str(tmp_path))  # Save as writes only inside it
    # The page defers only code that is not imported yet; earlier tests in the session may have imported it.
    monkeypatch.delitem(sys.modules, "toy_agents", raising=False)
    (tmp_path / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    text = (
        "name: console-launch\neval:\n  questions: qa.jsonl\ncandidates:\n"
        "  - name: echo\n    agent: toy_agents:EchoAgent\n"
    )
    at = app("views/recipes.py")
    at.selectbox(key="recipe_source").set_value("(new recipe)").run()
    at.toggle(key="recipe_plain").set_value(True).run()
    at.text_input(key="recipe_path").input(str(tmp_path / "launch.yaml")).run()
    _edit(at, text)
    assert any(
        "toy_agents:EchoAgent" not in i.value and "imported only when you press Run" in i.value
        for i in at.info
    )
    assert not at.button(key="recipe_run").disabled
    at.button(key="recipe_run").click().run()
    assert (tmp_path / "launch.yaml").read_text() == text  # "Save and run" saved first
    launch = at.session_state["recipe_launch"]
    assert launch.process.wait(timeout=300) == 0, launch.log_path.read_text()
    at.run()
    assert any("Run complete" in s.value for s in at.success)
    runs = app()
    assert "console-launch" in set(runs.dataframe[0].value["recipe"])


# --- Arena ------------------------------------------------------------------------------------------------


def test_arena_records_votes_and_ranks(app, quick_key, console_runs):
    run_path = console_runs / quick_key
    at = app("views/arena.py", run=quick_key)
    assert [m.value for m in at.markdown if m.value.startswith("**Answer")] == [
        "**Answer A**",
        "**Answer B**",
    ]
    assert not any(name in texts(at).split("Leaderboard")[0] for name in ("**zero-shot**", "**three-shot**"))
    first = at.session_state["arena_matchups"][quick_key]
    at.button(key="arena_vote_a").click().run()
    assert any(f"A was **{first.a}**" in s.value for s in at.success)
    at.button(key="arena_vote_both_bad").click().run()
    votes = read_votes(run_path)
    assert [(v["a"], v["b"], v["vote"]) for v in votes][0] == (first.a, first.b, "a")
    assert [v["vote"] for v in votes] == ["a", "both_bad"]
    board = at.dataframe[0].value
    top = board.iloc[0]
    assert top["candidate"] == first.a and top["wins"] == 1 and top["votes"] == 1 and top["elo"] > 1000
    assert set(board["candidate"]) == set(CANDIDATES) and board["both_bad"].sum() == 2
    assert not at.exception


# --- browser and benchmark ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_browser_renders_compare_page_with_every_candidate(console_runs, quick_key, tmp_path):
    from browser import Browser, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (make test installs it: apt-get install -y chromium)")
    port = _free_port()
    server = subprocess.Popen(
        [*_bakeoff(), "ui", "--runs-dir", str(console_runs), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                    == b"ok"
                ):
                    break
            except OSError:
                time.sleep(0.5)
        with Browser(profile=tmp_path / "chromium-profile") as browser:
            text = browser.load(f"http://127.0.0.1:{port}/compare?run={quick_key}", expect=CANDIDATES)
            shot = browser.screenshot(tmp_path / "compare.png")
            for name in CANDIDATES:
                assert name in text
            assert "bleu" in text and "Compare" in text
            assert "Verdict" in text and "use " in text and "recommend the least costly candidate" in text
            assert text.index("Verdict") < text.index("bleu")  # the decision above the tables
            dom = browser.html()
            assert all(name in dom for name in CANDIDATES)
            rich = browser.load(f"http://127.0.0.1:{port}/compare?run={RICH}", expect=["lora+rag", "★"])
            assert all(n in rich for n in ("rag", "lora", "lora+rag"))
            browser.screenshot(tmp_path / "compare-rich.png")
        assert shot.stat().st_size > 10_000
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_benchmark_runs_at_toy_size(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_console
    finally:
        sys.path.remove(str(ROOT / "bench"))
    bench_console.make_runs(tmp_path, 6, questions=3)
    result = bench_console.time_runs_page(tmp_path, warm_repeats=1)
    assert result["runs"] == 6 and result["cold_s"] > 0 and result["warm_s"] > 0
