"""Training one candidate across several processes: `bakeoff run` launches them, they train, rank 0 writes.

The run's process keeps the cache key's lock and hands the request to the launcher in a job file beside the
cache folder; every process started by the launcher runs :func:`main` (``python -m
bakeoff.training.distributed JOB``), which is the same :class:`~bakeoff.training.session.TrainingSession` as a
one-process run. The launcher is ``accelerate launch`` with CUDA (so an accelerate config file — DDP, FSDP or
DeepSpeed — applies as written) and ``torchrun`` without it: accelerate's CPU launcher starts a single
process unless MPI is installed, while torchrun starts N gloo processes that accelerate recognises.

What makes N processes train the adapter a one-process run would (the same cache key):

- the *global* batch is ``batch_size``: accelerate's ``split_batches`` hands each process its slice of the
  batch one sampler drew, so data order, step count and learning-rate schedule do not depend on N;
- the loss is averaged over the tokens of the whole global batch (``average_tokens_across_devices``, and
  gradients are averaged by DDP); every process seeds the same way, and DDP starts from rank 0's weights;
- only rank 0 writes the curves, snapshots, weights and ``summary.json``; the others train and evaluate.

The launched processes cannot share the run's Python objects: ``TrainRequest.callbacks`` stay behind.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Console

from bakeoff.training.config import DistributedSettings
from bakeoff.training.quantization import TrainingError
from bakeoff.training.request import TrainRequest

__all__ = ["ERROR_PREFIX", "launch_command", "main", "train_distributed"]

ERROR_PREFIX = "bakeoff-distributed-error: "  # a launched process' one-line error, read by the run
_JOB = "distributed-job.pkl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(settings: DistributedSettings, job: Path, *, cuda: bool, port: int) -> list[str]:
    """The command that starts ``settings.processes`` training processes on this machine.

    Raises:
        TrainingError: an accelerate config file was given but there is no CUDA to run it on.
    """
    entry = ["-m", "bakeoff.training.distributed", str(job)]
    if not cuda:
        if settings.config is not None:
            raise TrainingError(
                f"train.distributed.config {settings.config}: an accelerate config (FSDP, DeepSpeed, multi-GPU) "
                "needs CUDA GPUs, and this machine has none; drop `config:` to train DDP on gloo CPU processes"
            )
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc_per_node", str(settings.processes), "--master_addr", "127.0.0.1",
            "--master_port", str(port), *entry,
        ]  # fmt: skip
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.config is not None:
        command += ["--config_file", str(settings.config)]
    elif settings.processes > 1:
        command += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--num_processes", str(settings.processes), "--main_process_port", str(port), *entry]
    return command


def train_distributed(
    req: TrainRequest, method: str, key: str, folder: Path, console: Console, out_dir: Path | None
) -> dict[str, Any]:
    """Train in ``req.settings.distributed.processes`` launched processes; the summary rank 0 wrote.

    The launched processes' output is printed as it comes.

    Raises:
        TrainingError: a process failed (its one-line error, or the launcher's last lines).
    """
    from bakeoff.training.quantization import cuda_available

    settings = req.settings.distributed
    assert settings is not None
    job = folder / _JOB
    job.write_bytes(pickle.dumps((_portable(req), method, key, folder, out_dir)))
    command = launch_command(settings, job, cuda=cuda_available(), port=settings.port or free_port())
    console.print(
        f"{req.candidate}: training on {settings.processes} processes: {' '.join(command[1:4])} …",
        soft_wrap=True,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    tail: deque[str] = deque(maxlen=30)
    error = None
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(ERROR_PREFIX):
                error = error or line[len(ERROR_PREFIX) :]
                continue
            tail.append(line)
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    job.unlink(missing_ok=True)
    if proc.returncode != 0 or not (folder / "summary.json").is_file():
        detail = error or " | ".join(x.strip() for x in list(tail)[-6:] if x.strip())
        raise TrainingError(
            f"{req.candidate}: distributed training on {settings.processes} processes failed "
            f"(exit {proc.returncode}): {detail}"
        )
    import json

    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def _portable(req: TrainRequest) -> TrainRequest:
    """The request without what cannot cross into another process (in-process callbacks)."""
    return TrainRequest(
        req.candidate, req.base_model, req.model_dir, req.settings, req.data, req.chat_template, callbacks=[]
    )


def main(argv: list[str] | None = None) -> int:
    """One launched training process: read the job, train, report a failure as one line."""
    from bakeoff.errors import BakeoffError
    from bakeoff.training.ranks import close_group, is_main_process
    from bakeoff.training.session import TrainingSession

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bakeoff.training.distributed JOB (written by `bakeoff run`)", file=sys.stderr)
        return 2
    # The job file is written by the run that launched this process, next to the cache folder it owns.
    req, method, key, folder, out_dir = pickle.loads(Path(args[0]).read_bytes())  # noqa: S301
    console = Console(file=sys.stdout, width=160, quiet=not is_main_process(), soft_wrap=True)
    try:
        TrainingSession(req, method, key, folder, console, out_dir).run()
    except BakeoffError as exc:
        print(f"{ERROR_PREFIX}{exc}", flush=True)
        return 1
    finally:
        close_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
