import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help_is_fast_and_imports_nothing_heavy(bakeoff_cmd):
    # CPU time of the child, not wall time: robust when the machine is busy (wall time on an idle 2-core
    # machine is ~0.2 s; see docs/benchmarks.md).
    best = min(_cpu_seconds([*bakeoff_cmd, "--help"]) for _ in range(3))
    assert best < 0.5, f"bakeoff --help used {best:.2f}s of CPU"
    code = "import sys; import bakeoff.cli.app; print(sorted(m for m in ('torch','transformers','chromadb','peft','trl','ragas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _cpu_seconds(cmd, expect: str = "validate") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0 and expect in proc.stdout
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_validate_is_fast_and_imports_only_what_validation_needs(bakeoff_cmd):
    # `bakeoff validate` runs on every save in editors and CI; ~0.3 s of CPU here (docs/benchmarks.md).
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    best = min(_cpu_seconds([*bakeoff_cmd, "validate", recipe], "recipe 'quickstart'") for _ in range(3))
    assert best < 0.5, f"bakeoff validate used {best:.2f}s of CPU"
    unwanted = (
        "torch",
        "transformers",
        "chromadb",
        "ragas",
        "numpy",
        "httpx",
        "ollama",
        "bakeoff.serving.register",
        "bakeoff.serving.go_template",
        "bakeoff.serving.ollama_template",
        "bakeoff.serving.ollama",
        "bakeoff.rag.vectorstore",
        "bakeoff.run.runner",
    )
    code = (
        f"import sys; from bakeoff.recipe.load import load_recipe; load_recipe({recipe!r}); "
        f"print(sorted(m for m in {unwanted!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_show_without_runs_is_a_clear_error(tmp_path, bakeoff_cmd):
    proc = subprocess.run(
        [*bakeoff_cmd, "show", "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "no runs in" in proc.stderr and "Traceback" not in proc.stderr


def test_hf_hub_offline_is_the_default():
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    code = "import bakeoff.cli.app, os; print(os.environ['HF_HUB_OFFLINE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "1"


def test_runs_lists_whole_run_ids_on_a_narrow_terminal(tmp_path, bakeoff_cmd):
    from bakeoff.run.store import RunWriter

    writer = RunWriter.create(tmp_path, "a-recipe-with-a-long-name", "name: x\n", task="qa")
    writer.finish("complete")
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run(
        [*bakeoff_cmd, "runs", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert writer.path.name in proc.stdout  # whole, on one line: it is what --resume and export take
    assert "complete" in proc.stdout and "a-recipe" in proc.stdout
