"""Metric plugins: a toy metric built and pip-installed as a real distribution registers through the
entry-point group ``bakeoff.metrics``, is listed by ``bakeoff metrics``, validates and scores a run; broken,
clashing or ill-declared plugins are reported with the reason, never with a traceback."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import bakeoff.eval as registry
from bakeoff.core import Question
from bakeoff.eval import MetricError, get_metric, metric_class, metric_names
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.recipe.load import RecipeError, load_recipe

HERE = Path(__file__).resolve().parent

# question, reference -> the echo agent answers with the question; keyword_recall = shared words / reference words
QA = [
    ("what is the notice period", "the notice period is ninety days"),  # the notice period / 5 words -> 0.6
    ("who pays the fee", "the client pays"),  # the, pays / the, client, pays -> 2/3
]


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory) -> Path:
    """tests/toy_metric_dist built and installed by pip (offline, no dependencies) into a target folder."""
    work = tmp_path_factory.mktemp("toy-metrics")
    src = shutil.copytree(HERE / "toy_metric_dist", work / "src")  # the build writes next to its sources
    site = work / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (site / "toy_metrics.py").exists()
    [dist_info] = site.glob("toy_metrics-0.1.dist-info")
    assert "keyword_recall = toy_metrics:KeywordRecall" in (dist_info / "entry_points.txt").read_text()
    return site


@pytest.fixture
def on_path(monkeypatch):
    """Put folders on sys.path for this test, with the metric registry forgotten before and after."""

    def add(*folders: Path) -> None:
        for folder in folders:
            monkeypatch.syspath_prepend(str(folder))
        registry.reset_registry()

    yield add
    registry.reset_registry()


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    """A distribution (hand-written dist-info) whose entry points are wrong in every way a plugin can be."""
    site = tmp_path_factory.mktemp("bad-metrics")
    (site / "toy_metrics_bad.py").write_text(
        "from bakeoff.eval.metrics import Metric, MetricResult\n\n"
        "class FakeBleu(Metric):\n    name = 'bleu'\n    def score(self, *, response, reference):\n"
        "        return MetricResult(1.0)\n\n"
        "class Misnamed(Metric):\n    name = 'something_else'\n\n"
        "class Greedy(Metric):\n    name = 'greedy'\n    default = True\n    needs = ('a_gpu',)\n"
        "    def score(self, *, response, shoe_size):\n        return MetricResult(1.0)\n\n"
        "class NotAMetric:\n    name = 'not_a_metric'\n\n"
        "class Explodes(Metric):\n    name = 'explodes'\n    task = 'qa'\n"
        "    def score(self, *, response, reference):\n        raise RuntimeError('scorer on fire')\n\n"
        "class NotANumber(Metric):\n    name = 'nan_metric'\n"
        "    def score(self, *, response):\n        return MetricResult(float('nan'))\n"
    )
    info = site / "bad_metrics-0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-metrics\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text(
        "[bakeoff.metrics]\n"
        "bleu = toy_metrics_bad:FakeBleu\n"
        "broken_metric = no_such_module_here:Nope\n"
        "misnamed = toy_metrics_bad:Misnamed\n"
        "greedy = toy_metrics_bad:Greedy\n"
        "not_a_metric = toy_metrics_bad:NotAMetric\n"
        "explodes = toy_metrics_bad:Explodes\n"
        "nan_metric = toy_metrics_bad:NotANumber\n"
    )
    return site


def make_recipe(tmp_path: Path, metrics: str) -> Path:
    (tmp_path / "qa.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "question": q, "reference": r}) + "\n" for i, (q, r) in enumerate(QA))
    )
    path = tmp_path / "r.yaml"
    path.write_text(
        f"name: toy\ntask: qa\neval:\n  questions: qa.jsonl\n  metrics: {metrics}\n"
        "candidates:\n  - name: echo\n    agent: toy_agents:EchoAgent\n"
    )
    return path


def test_builtin_metrics_are_well_declared_and_the_lists_are_derived():
    builtins = registry.builtin_metrics()
    assert list(builtins)[:3] == ["bleu", "rouge1", "rouge2"]
    assert registry.DEFAULT_METRICS["qa"] == [n for n, c in builtins.items() if c.default and c.task == "qa"]
    judged = {"faithfulness", "answer_relevancy", "context_precision", "context_recall", "judge_rubric"}
    assert judged == {n for n, c in builtins.items() if "judge" in c.needs} == registry.JUDGE_METRICS
    assert registry.automatic_metrics() == ["hit_rate@k", "mrr", "answer_in_context@k"]
    assert "mrr" not in metric_names() and "judge_rubric" in metric_names()
    assert get_metric("hit_rate@k", k=3).name == "hit_rate@3"
    with pytest.raises(MetricError, match="unknown metric 'blue'; available: bleu, rouge1"):
        metric_class("blue")


def test_the_recipe_schema_text_names_the_derived_defaults():
    from bakeoff.recipe.schema import EvalSpec

    text = EvalSpec.model_fields["metrics"].description
    for task, names in registry.DEFAULT_METRICS.items():
        assert ", ".join(names) in text, (task, text)


def test_an_installed_toy_metric_is_listed_validates_and_scores_a_run(toy_site, tmp_path, bakeoff_cmd):
    env = {**os.environ, "PYTHONPATH": f"{toy_site}{os.pathsep}{HERE}", "COLUMNS": "250"}
    listed = subprocess.run([*bakeoff_cmd, "metrics"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith("keyword_recall")]
    assert "qa" in line and "share of the reference's words" in line and "plugin: toy-metrics 0.1" in line

    recipe = make_recipe(tmp_path, "[keyword_recall, exact_match]")
    ran = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [scores_file] = (tmp_path / "runs").glob("toy/*/scores.json")
    scores = json.loads(scores_file.read_text())
    assert scores["metrics"] == ["keyword_recall", "exact_match"] and scores["headline"] == "keyword_recall"
    assert scores["per_answer"]["echo"]["q0"]["keyword_recall"] == pytest.approx(0.6)
    assert scores["per_answer"]["echo"]["q1"]["keyword_recall"] == pytest.approx(2 / 3)
    entry = scores["candidates"]["echo"]["metrics"]["keyword_recall"]
    assert entry["mean"] == pytest.approx((0.6 + 2 / 3) / 2) and entry["n"] == 2 and "ci" in entry


def test_without_the_distribution_the_toy_metric_is_unknown(tmp_path, on_path):
    on_path(HERE)
    with pytest.raises(RecipeError) as exc:
        load_recipe(make_recipe(tmp_path, "[keyword_recall]"))
    [problem] = exc.value.problems
    assert problem.path == "eval.metrics[0]" and "unknown metric 'keyword_recall'" in problem.message


def test_the_toy_metric_in_process(toy_site, tmp_path, on_path):
    on_path(toy_site, HERE)
    assert "keyword_recall" in metric_names() and registry.metric_origin("keyword_recall") == "toy-metrics 0.1"
    assert "keyword_recall" in registry.METRICS and "keyword_recall" not in registry.DEFAULT_METRICS["qa"]
    recipe = load_recipe(make_recipe(tmp_path, "[keyword_recall]"))
    from bakeoff.run.runner import run_recipe
    from bakeoff.run.store import read_run

    path = run_recipe(recipe, recipe_text="x", runs_dir=tmp_path / "runs", console=Console(quiet=True))
    assert read_run(path).scores["candidates"]["echo"]["metrics"]["keyword_recall"]["mean"] == pytest.approx(
        (0.6 + 2 / 3) / 2
    )


def test_broken_clashing_and_ill_declared_plugins_get_clear_errors(bad_site, tmp_path, on_path):
    on_path(bad_site, HERE)
    # a clash: the built-in keeps its name, the plugin is refused
    assert metric_class("bleu").__module__ == "bakeoff.eval.metrics"
    assert "has the name of a built-in metric" in str(registry.plugin_metrics()["bleu"])
    cases = {
        "broken_metric": "failed to import: ModuleNotFoundError: No module named 'no_such_module_here'",
        "misnamed": "loads a class named 'something_else'; the two names must agree",
        "not_a_metric": "is not a subclass of bakeoff.eval.metrics.Metric",
    }
    for name, message in cases.items():
        with pytest.raises(MetricError, match="bad-metrics 0.2") as exc:
            metric_class(name)
        assert message in str(exc.value), (name, str(exc.value))
    with pytest.raises(MetricError) as exc:
        metric_class("greedy")
    text = str(exc.value)
    assert "unknown `needs` ['a_gpu']" in text and "score() takes ['shoe_size']" in text
    assert "`default` and `automatic` are for built-ins" in text
    # the recipe validator locates the problem
    with pytest.raises(RecipeError) as exc:
        load_recipe(make_recipe(tmp_path, "[token_f1, broken_metric]"))
    [problem] = exc.value.problems
    assert problem.path == "eval.metrics[1]" and "no_such_module_here" in problem.message
    # the good names still validate, and the derived list leaves the bad plugins out
    assert load_recipe(make_recipe(tmp_path, "[bleu, explodes]")).eval.metrics == ["bleu", "explodes"]
    assert set(registry.METRICS) >= {"bleu", "explodes"} and "broken_metric" not in registry.METRICS


def test_a_plugin_that_fails_while_scoring_is_named(bad_site, on_path):
    on_path(bad_site)
    questions = [Question("q1", "q?", "a")]
    with pytest.raises(MetricError, match=r"metric 'explodes' \(bad-metrics 0.2\) failed: RuntimeError: scorer on fire"):
        score_answers(
            questions, {"c": [{"question_id": "q1", "answer": "a"}]}, ScoringSettings(metrics=["explodes"])
        )
    with pytest.raises(MetricError, match=r"metric 'nan_metric' \(bad-metrics 0.2\) returned nan, outside its score_range"):
        score_answers(
            questions, {"c": [{"question_id": "q1", "answer": "a"}]}, ScoringSettings(metrics=["nan_metric"])
        )


def test_the_cli_reports_bad_plugins_without_a_traceback(bad_site, tmp_path, bakeoff_cmd):
    site = shutil.copytree(bad_site, tmp_path / "site")  # this test fixes a plugin, in its own copy
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{HERE}", "COLUMNS": "250"}
    listed = subprocess.run([*bakeoff_cmd, "metrics"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and "Traceback" not in listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert any(ln.startswith("bleu") and "default" in ln for ln in lines)  # the built-in
    assert any(ln.startswith("bleu") and "broken" in ln and "name of a built-in" in ln for ln in lines)
    assert any(ln.startswith("broken_metric") and "failed to import" in ln for ln in lines)
    assert any(ln.startswith("explodes") and "plugin: bad-metrics 0.2" in ln for ln in lines)

    checked = subprocess.run(
        [*bakeoff_cmd, "validate", str(make_recipe(tmp_path, "[broken_metric]"))],
        capture_output=True, text=True, env=env, timeout=120,
    )
    out = checked.stdout + checked.stderr
    assert checked.returncode == 2 and "eval.metrics[0]" in out and "failed to import" in out
    assert "Traceback" not in out

    ran = subprocess.run(
        [*bakeoff_cmd, "run", str(make_recipe(tmp_path, "[explodes]")), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1 and "scorer on fire" in out and "Traceback" not in out
    [run_dir] = (tmp_path / "runs").glob("toy/*")
    assert len((run_dir / "answers.jsonl").read_text().splitlines()) == len(QA)  # the answers are kept
    assert f"bakeoff run --resume {run_dir.name}" in out
    module = site / "toy_metrics_bad.py"  # fix the plugin, then finish the run
    module.write_text(module.read_text().replace("raise RuntimeError('scorer on fire')", "return MetricResult(1.0)"))
    resumed = subprocess.run(
        [*bakeoff_cmd, "run", str(tmp_path / "r.yaml"), "--resume", run_dir.name, "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["candidates"]["echo"]["metrics"]["explodes"]["mean"] == 1.0


def test_the_readme_shows_the_toy_plugin_as_tested():
    readme = (HERE.parent / "README.md").read_text()
    section = readme.split("## Adding a metric plugin", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    toy = (HERE / "toy_metric_dist" / "toy_metrics.py").read_text()
    assert toy.split('"""\n\n', 1)[1] == code  # the module minus its docstring
    toml = (HERE / "toy_metric_dist" / "pyproject.toml").read_text()
    assert '[project.entry-points."bakeoff.metrics"]\nkeyword_recall = "' in section and "keyword_recall" in toml
