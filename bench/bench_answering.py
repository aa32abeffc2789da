"""Answering throughput: the ``fewshot`` agent over 64 questions vs a one-question-at-a-time ``generate`` loop.

Both use the same loaded embedded model, the same chat messages (the agent's zero-shot conversation), greedy
decoding and the same ``max_new_tokens``, in this one process. The agent goes through bakeoff's transformers
backend as a run does (prompts sorted by length, a batch of ``generation.batch_size`` rows kept full as
answers finish, stop at the end of the turn); the loop is what a user writes first: ``apply_chat_template``
and ``model.generate`` per question. The questions are the quickstart's 48 plus 16 from its training file.

- ``answers_per_s_vs_loop`` (target ≥ 3x): the agent given all 64 questions in one call, against the loop
  running on the same CPU threads as bakeoff chooses — so the ratio is batching alone;
- ``answers_per_s_vs_loop_as_run``: the agent called with one batch (16) at a time, as ``bakeoff run`` calls
  it (fixed batch boundaries keep resumed runs identical), so there are no waiting prompts to refill from;
- ``loop_threads_policy_vs_default``: the loop on bakeoff's threads against torch's default (one per core),
  on a subset — what the thread choice alone is worth on this machine at this moment.

The share of identical answers is reported too: batching must not change what greedy decoding says.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import DATA, EMBEDDED_MODEL, Result, Scale, cli, quiet_libraries

CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"questions": 3, "max_new_tokens": 4, "batch_size": 2, "default_threads_subset": 1},
    # batch_size None: the agent's default (16)
    "full": {"questions": 64, "max_new_tokens": 96, "batch_size": None, "default_threads_subset": 2},
}


def questions(n: int) -> list:
    """The quickstart's questions, then training-file questions, ``n`` in all."""
    from bakeoff.core import Question
    from bakeoff.questions import load_questions, read_records

    qs = load_questions(DATA / "contract-qa.jsonl", task="qa")
    for i, row in enumerate(read_records(DATA / "contract-train.jsonl")):
        if len(qs) >= n:
            break
        qs.append(Question(id=f"t{i}", question=row["instruction"], reference=row["output"]))
    return qs[:n]


def make_agent(max_new_tokens: int, batch_size: int | None):
    from rich.console import Console

    from bakeoff.agents.fewshot import FewShotAgent, FewShotSettings
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.run.context import RunContext

    generation: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if batch_size is not None:
        generation["batch_size"] = batch_size
    settings = FewShotSettings.model_validate(
        {"name": "zero-shot", "agent": "fewshot", "generation": generation}
    )
    ctx = RunContext(
        task="qa",
        labels=[],
        base_model=parse_model_ref(EMBEDDED_MODEL),
        recipe_dir=DATA.parent,
        recipe_name="bench-answering",
        console=Console(quiet=True),
    )
    return FewShotAgent(settings, ctx.for_candidate(settings.name))


def one_at_a_time(
    model, tokenizer, conversations: list, max_new_tokens: int, *, threads_policy: bool = False
) -> tuple[list[str], list[int], list[float]]:
    """The hand-written loop: one ``generate`` per question, greedy. With ``threads_policy`` it runs on
    bakeoff's CPU threads (:mod:`bakeoff.threads`), so that a comparison isolates batching."""
    import contextlib

    import torch

    from bakeoff.threads import adjust_torch_threads, torch_threads

    texts, lengths, seconds = [], [], []
    with torch_threads() if threads_policy else contextlib.nullcontext():
        for messages in conversations:
            t0 = time.perf_counter()
            if threads_policy:
                adjust_torch_threads()
            ids = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, ids["input_ids"].shape[1] :]
            lengths.append(int(new.shape[0]))
            texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
            seconds.append(time.perf_counter() - t0)
    return texts, lengths, seconds


def run(scale: Scale = "full") -> Result:
    import torch

    quiet_libraries()
    cfg = CONFIGS[scale]
    result = Result("answering", scale)
    qs = questions(cfg["questions"])
    agent = make_agent(cfg["max_new_tokens"], cfg["batch_size"])
    gen = agent.generator()  # loaded before the clocks start; both ways use this model
    conversations = [agent.conversation(q.question) for q in qs]
    step = agent.settings.generation.batch_size
    n = len(qs)

    # Warm-up (first-call allocations); then the loop on bakeoff's threads, the agent over every question,
    # the agent in the runner's chunks, and the loop on torch's default threads for a subset.
    one_at_a_time(gen.model, gen.tokenizer, conversations[:1], 2)
    loop_texts, loop_lengths, loop_each = one_at_a_time(
        gen.model, gen.tokenizer, conversations, cfg["max_new_tokens"], threads_policy=True
    )
    loop_s = sum(loop_each)
    queries = [q.query for q in qs]  # what the runner gives an agent: no references
    t0 = time.perf_counter()
    answers = agent.answer(queries)
    agent_s = time.perf_counter() - t0
    threads = gen.threads
    t0 = time.perf_counter()
    for start in range(0, n, step):  # as `bakeoff run` calls it: one generation batch per call
        agent.answer(queries[start : start + step])
    as_run_s = time.perf_counter() - t0
    subset = list(range(0, n, max(1, n // cfg["default_threads_subset"])))[: cfg["default_threads_subset"]]
    _, _, default_each = one_at_a_time(
        gen.model, gen.tokenizer, [conversations[i] for i in subset], cfg["max_new_tokens"]
    )

    errors = [a.error for a in answers if a.error]
    if errors:
        raise RuntimeError(f"the agent failed: {errors[0]}")
    same = sum(a.text == t for a, t in zip(answers, loop_texts, strict=True))
    policy_subset_s = sum(loop_each[i] for i in subset)
    result.add(
        "answers_per_s_vs_loop", loop_s / agent_s, target=(">=", 3.0), note=f"{n} questions in one call"
    )
    result.add(
        "answers_per_s_vs_loop_as_run",
        loop_s / as_run_s,
        note=f"calls of {step} questions, as `bakeoff run` makes them",
    )
    result.add(
        "loop_threads_policy_vs_default",
        sum(default_each) / policy_subset_s,
        note=f"the loop on bakeoff's threads vs torch's default {torch.get_num_threads()}, {len(subset)} questions",
    )
    result.raw = {
        "questions": n,
        "max_new_tokens": cfg["max_new_tokens"],
        "batch_size": step,
        "threads": {"agent": list(threads) if threads else None, "torch_default": torch.get_num_threads()},
        "agent_s": round(agent_s, 3),
        "agent_as_run_s": round(as_run_s, 3),
        "loop_s": round(loop_s, 3),
        "loop_default_threads_subset_s": round(sum(default_each), 3),
        "loop_subset_s": round(policy_subset_s, 3),
        "agent_answers_per_s": round(n / agent_s, 3),
        "loop_answers_per_s": round(n / loop_s, 3),
        "completion_tokens": sum(a.completion_tokens for a in answers),
        "loop_completion_tokens": sum(loop_lengths),
        "agent_tokens_per_s": round(sum(a.completion_tokens for a in answers) / agent_s, 1),
        "loop_tokens_per_s": round(sum(loop_lengths) / loop_s, 1),
        "truncated_answers": sum(a.truncated for a in answers),
        "identical_answers": same,
    }
    if same < n:
        result.notes.append(
            f"{n - same} of {n} answers differ between batched and one-at-a-time greedy decoding"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    return cli("bench_answering", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
