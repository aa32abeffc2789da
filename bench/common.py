"""What every benchmark shares: the result shape, the printed lines, the CLI, and the machine description.

A benchmark module has ``run(scale) -> Result`` and ``main(argv)``; ``scale`` is ``"toy"`` (seconds: what the
tests run so the benchmarks cannot rot) or ``"full"`` (what ``make bench`` runs). A result prints one
``name: value`` line per measure — ratios are ``Nx`` (bakeoff over the hand-written way: above 1 is faster)
— then its raw numbers, and can be written or appended as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bakeoff.models.refs import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
EMBEDDED_MODEL = str(DEFAULT_MODEL)
Scale = Literal["toy", "full"]
SCALES: tuple[Scale, ...] = ("toy", "full")

__all__ = [
    "DATA",
    "EMBEDDED_MODEL",
    "ROOT",
    "SCALES",
    "Measure",
    "Result",
    "Scale",
    "cli",
    "isolated_home",
    "machine",
    "percentile",
    "quiet_libraries",
    "stopwatch",
]


@dataclass
class Measure:
    """One headline number: a ratio (``unit="x"``) or an absolute value with its target.

    ``target`` is ``(op, bound)`` with ``op`` one of ``>=``/``<``; ``met`` is computed from it.
    """

    name: str
    value: float
    unit: str = "x"
    target: tuple[str, float] | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, bound = self.target
        return self.value >= bound if op == ">=" else self.value < bound

    def target_text(self) -> str:
        if self.target is None:
            return ""
        op, bound = self.target
        return f"{op} {bound:g}{self.unit if self.unit == 'x' else ' ' + self.unit}"

    def line(self) -> str:
        value = f"{self.value:.2f}x" if self.unit == "x" else f"{self.value:.3g} {self.unit}"
        tail = ""
        if self.target is not None:
            tail = f"  (target {self.target_text()}: {'met' if self.met else 'NOT met'})"
        if self.note:
            tail += f"  [{self.note}]"
        return f"{self.name}: {value}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target_text() or None,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class Result:
    """What one benchmark found."""

    benchmark: str
    scale: Scale
    measures: list[Measure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the benchmark did not run here (e.g. no CUDA)
    seconds: float = 0.0
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    load_average: list[float] = field(default_factory=lambda: _loadavg())

    def add(self, name: str, value: float, unit: str = "x", target=None, note: str = "") -> Measure:
        m = Measure(f"{self.benchmark}.{name}", float(value), unit, target, note)
        self.measures.append(m)
        return m

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.benchmark}: skipped ({self.skipped})"]
        out = [m.line() for m in self.measures]
        out += [f"  {self.benchmark}.raw.{k} = {_fmt(v)}" for k, v in _flatten(self.raw)]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def print(self) -> None:
        for line in self.lines():
            print(line, flush=True)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measures"] = [m.to_dict() for m in self.measures]
        return d


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@contextlib.contextmanager
def stopwatch(into: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the block takes to ``into[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - t0


@contextlib.contextmanager
def isolated_home(prefix: str) -> Iterator[Path]:
    """A fresh ``BAKEOFF_HOME`` (cold training cache and vector stores) sharing the imported model."""
    import tempfile

    from bakeoff import paths

    models = str(paths.models_dir())
    saved = {k: os.environ.get(k) for k in ("BAKEOFF_HOME", "BAKEOFF_MODELS_DIR")}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["BAKEOFF_MODELS_DIR"] = models
        os.environ["BAKEOFF_HOME"] = str(Path(tmp) / "home")
        try:
            yield Path(tmp)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def quiet_libraries() -> None:
    """No progress bars or warnings from the libraries: the benchmark prints its own lines."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(ImportError):
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, accelerator, library versions and the load average now."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "chromadb", "sentence-transformers", "bakeoff"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    gpu = None
    with contextlib.suppress(FileNotFoundError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        gpu = out.stdout.strip() or None if out.returncode == 0 else None
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gib": mem_gib,
        "gpu": gpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "load_average": _loadavg(),
    }


def cli(
    benchmark: str, run: Callable[[Scale], Result], doc: str | None, argv: list[str] | None = None
) -> int:
    """The command line every benchmark module shares: ``--toy``, ``--json PATH``, ``--append PATH``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{benchmark}", description=(doc or benchmark).strip().splitlines()[0]
    )
    parser.add_argument("--toy", action="store_true", help="run at toy size (seconds)")
    parser.add_argument("--json", type=Path, help="write the result to this JSON file")
    parser.add_argument("--append", type=Path, help="append the result to this JSON-lines file")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = run("toy" if args.toy else "full")
    result.seconds = round(time.perf_counter() - t0, 2)
    result.print()
    print(f"  ({benchmark} took {result.seconds:.1f} s)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.append:
        args.append.parent.mkdir(parents=True, exist_ok=True)
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.to_dict()) + "\n")
    return 0


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def python() -> str:
    return sys.executable
