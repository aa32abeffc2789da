import os
import subprocess
import sys
import time


def test_help_is_fast_and_imports_nothing_heavy(bakeoff_cmd):
    best = min(_timed([*bakeoff_cmd, "--help"]) for _ in range(3))
    assert best < 0.5, f"bakeoff --help took {best:.2f}s"
    code = "import sys; import bakeoff.cli; print(sorted(m for m in ('torch','transformers','chromadb','peft','trl','ragas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _timed(cmd) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0 and "validate" in proc.stdout
    return elapsed


def test_show_without_runs_is_a_clear_error(tmp_path, bakeoff_cmd):
    proc = subprocess.run(
        [*bakeoff_cmd, "show", "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "no runs in" in proc.stderr and "Traceback" not in proc.stderr


def test_hf_hub_offline_is_the_default():
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    code = "import bakeoff.cli, os; print(os.environ['HF_HUB_OFFLINE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "1"
