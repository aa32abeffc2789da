"""Fanning batches of model work out on Dask (``dask.distributed``), or running them in this process.

:func:`open_executor` gives one interface over three places to run:

``local``
    a :class:`distributed.LocalCluster` on this machine: worker processes with one thread each, as many as
    the machine has cores (at most one per 2 GiB of free memory), never more than there are batches;
``tcp://HOST:PORT``
    an existing scheduler, so the work spreads over every machine whose ``dask worker`` joined it (each one
    needs bakeoff installed and the model reachable, e.g. the same ``BAKEOFF_MODELS_DIR`` or an Ollama URL);
``inline``
    no Dask: batches run one after another in this process (debugging, tiny jobs).

A worker loads each model once and keeps it for every batch it runs (:class:`GeneratorCache`, a Dask worker
plugin), so a batch carries only its prompts' inputs, never weights.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

if TYPE_CHECKING:
    from bakeoff.models.generators import Generator
    from bakeoff.models.refs import ModelRef

__all__ = [
    "Executor",
    "GeneratorCache",
    "PLUGIN_NAME",
    "machine_workers",
    "open_executor",
    "worker_generator",
]

PLUGIN_NAME = "bakeoff-generators"
_GIB = 1024**3
MEMORY_PER_WORKER = (
    2 * _GIB
)  # a small model, its activations and the Python/torch runtime, with room to spare


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_workers() -> int:
    """How many one-thread workers this machine holds: its cores, at most one per 2 GiB of free memory."""
    try:
        import psutil  # a dependency of distributed

        by_memory = int(psutil.virtual_memory().available // MEMORY_PER_WORKER)
    except Exception:  # psutil missing or unreadable /proc: trust the core count
        by_memory = _cores()
    return max(1, min(_cores(), by_memory))


class GeneratorCache(WorkerPlugin):
    """Dask worker plugin: one loaded generator per model reference, per worker process.

    Args:
        torch_threads: intra-op threads for torch in each worker (LocalCluster: cores divided by workers, so
            workers do not fight over cores); None leaves torch's default (remote workers know their machine).
    """

    name = PLUGIN_NAME

    def __init__(self, torch_threads: int | None = None) -> None:
        self.torch_threads = torch_threads
        self._generators: dict[str, Generator] = {}
        self._lock = threading.Lock()

    def setup(self, worker: Any) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # workers never download weights either
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)

    def teardown(self, worker: Any) -> None:
        self._generators.clear()

    def generator(self, ref: ModelRef) -> Generator:
        """The loaded generator for ``ref`` (loaded on first use)."""
        from bakeoff.models.registry import load_generator

        key = str(ref)
        with self._lock:
            if key not in self._generators:
                self._generators[key] = load_generator(ref)
            return self._generators[key]

    def __getstate__(self) -> dict[str, Any]:  # shipped to workers without any loaded model or lock
        return {"torch_threads": self.torch_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["torch_threads"])


def worker_generator(ref: ModelRef) -> Generator:
    """Inside a Dask task: the generator for ``ref`` from this worker's :class:`GeneratorCache`.

    Raises:
        RuntimeError: not running in a worker that has the plugin (use :func:`open_executor`).
    """
    from distributed import get_worker

    plugin = get_worker().plugins.get(PLUGIN_NAME)
    if plugin is None:
        raise RuntimeError(f"the {PLUGIN_NAME!r} worker plugin is not registered on this Dask worker")
    return plugin.generator(ref)


@dataclass
class Executor:
    """Runs ``fn(payload)`` for many payloads and yields ``(index, result, error)`` as each one finishes."""

    where: str  # "inline", "LocalCluster", or the scheduler address
    workers: int
    _client: Any = None

    def map_unordered(
        self, fn: Callable[[Any], Any], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        if self._client is None:
            for i, payload in enumerate(payloads):
                try:
                    yield i, fn(payload), None
                except Exception as exc:  # a failed batch is reported, the others go on
                    yield i, None, exc
            return
        from distributed import as_completed

        futures = [self._client.submit(fn, payload, pure=False) for payload in payloads]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            try:
                result = future.result()
            except Exception as exc:
                yield i, None, exc
            else:
                yield i, result, None
            finally:
                future.release()


@contextmanager
def open_executor(
    scheduler: str, workers: int | None = None, *, n_tasks: int | None = None
) -> Iterator[Executor]:
    """Start (or connect to) the place that runs the batches; always closed on exit.

    Args:
        scheduler: ``local``, ``inline`` or a scheduler address (``tcp://HOST:PORT``).
        workers: LocalCluster workers; default :func:`machine_workers`.
        n_tasks: the number of batches (a LocalCluster never starts more workers than this).
    """
    if scheduler == "inline":
        yield Executor("inline", 1)
        return
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or machine_workers()
        if n_tasks is not None:
            n = max(1, min(n, n_tasks))
        threads = max(1, _cores() // n)
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster) as client:
                client.register_plugin(GeneratorCache(threads), name=PLUGIN_NAME)
                yield Executor("LocalCluster", n, client)
        finally:
            cluster.close()
        return
    with Client(scheduler, timeout="30s") as client:
        client.register_plugin(GeneratorCache(None), name=PLUGIN_NAME)
        n = len(client.scheduler_info().get("workers", {}))
        yield Executor(scheduler, n, client)
