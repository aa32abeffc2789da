"""Answer stage, old vs new, side by side in one process: how `bakeoff run` calls the embedded model.

The quickstart's 48 questions, asked as its zero-shot and three-shot candidates ask them (the three-shot
prompt shares a long beginning, so prefix sharing is exercised), greedy, ``max_new_tokens`` 96:

- ``old``: what main's runner does — one call per 16 questions, a decoder batch of 16 rows;
- ``new``: this branch — one call for the whole question set, a decoder batch of 48 rows kept full;
- ``generate_batch``: transformers' own continuous batching (paged attention) on the same token ids;
- ``llama_cpp``: llama.cpp single-stream on the embedded GGUF (Q8, one question at a time).

Old and new run on the same loaded model, one after the other in each round (``rounds`` > 1 alternates
them, so that a shared machine's load hits both alike); the ratio is taken from the sums. Answers must be identical between old and new (same dtype,
same greedy path). Achieved FLOP/s counts 2 × parameters per processed token (prompt and generated).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench.common import DATA, EMBEDDED_MODEL, Result, cli, quiet_libraries

CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"questions": 4, "max_new_tokens": 6, "rounds": 1, "subset": 2},
    # subset: prompts given to generate_batch and llama.cpp (both far slower here; compared per token)
    "full": {"questions": 48, "max_new_tokens": 96, "rounds": 1, "subset": 8},
}
PEAK_GFLOPS = 141.7  # fp32 matmul peak on 2 threads, docs/benchmarks.md (bench/profile_ops.py)


def _agents(max_new_tokens: int):
    from rich.console import Console

    from bakeoff.agents.fewshot import FewShotAgent, FewShotSettings
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.run.context import RunContext

    ctx = RunContext(
        task="qa",
        labels=[],
        base_model=parse_model_ref(EMBEDDED_MODEL),
        recipe_dir=DATA.parent,
        recipe_name="bench-decoding",
        console=Console(quiet=True),
    )
    gen = {"max_new_tokens": max_new_tokens}
    zero = FewShotSettings.model_validate({"name": "zero-shot", "agent": "fewshot", "generation": gen})
    three = FewShotSettings.model_validate(
        {
            "name": "three-shot",
            "agent": "fewshot",
            "k": 3,
            "examples": str(DATA / "contract-examples.jsonl"),
            "generation": gen,
        }
    )
    agents = [FewShotAgent(s, ctx.for_candidate(s.name)) for s in (zero, three)]
    for a in agents:
        a.prepare()
    return agents


def _answer(gen, convos, settings, chunk: int):
    out = []
    for start in range(0, len(convos), chunk):
        out += gen.generate(convos[start : start + chunk], settings)
    return out


def run(scale: str = "full") -> Result:
    from bakeoff.core import GenerationSettings
    from bakeoff.questions import load_questions

    quiet_libraries()
    cfg = CONFIGS[scale]
    result = Result("decoding", scale)
    qs = load_questions(DATA / "contract-qa.jsonl", task="qa")[: cfg["questions"]]
    agents = _agents(cfg["max_new_tokens"])
    gen = agents[0].generator()
    convos = [a.conversation(q.question) for a in agents for q in qs]
    old = GenerationSettings(max_new_tokens=cfg["max_new_tokens"], batch_size=16)
    new = GenerationSettings(max_new_tokens=cfg["max_new_tokens"], batch_size=48)
    n_q = len(qs)
    load_before = os.getloadavg()
    gen.generate(convos[:2], new)  # warm-up
    times: dict[str, float] = {"old": 0.0, "new": 0.0}
    texts: dict[str, list[str]] = {}
    outs: dict[str, list] = {}
    for _ in range(cfg["rounds"]):
        for name, settings in (("old", old), ("new", new)):
            t0 = time.perf_counter()
            # old: per candidate, chunks of 16 questions; new: per candidate, every question in one call
            got = []
            for c in range(len(agents)):
                part = convos[c * n_q : (c + 1) * n_q]
                got += _answer(gen, part, settings, 16 if name == "old" else len(part))
            times[name] += time.perf_counter() - t0
            texts[name], outs[name] = [g.text for g in got], got
    same = sum(a == b for a, b in zip(texts["old"], texts["new"], strict=True))
    sub = cfg["subset"]
    gb_s, gb_same, gb_tokens = _generate_batch(gen, convos[:sub], cfg["max_new_tokens"], texts["new"])
    ll_s, ll_tokens = _llama_cpp(convos[:sub], new)
    load_after = os.getloadavg()

    n = len(convos)
    prompt_tokens = sum(g.prompt_tokens for g in outs["new"])
    completion = sum(g.completion_tokens for g in outs["new"])
    params = sum(p.numel() for p in gen.model.parameters())
    new_s, old_s = times["new"] / cfg["rounds"], times["old"] / cfg["rounds"]
    gflops = 2 * params * (prompt_tokens + completion) / new_s / 1e9
    result.add(
        "new_vs_old", times["old"] / times["new"], target=(">=", 3.0), note=f"{n} answers, one process"
    )
    result.add("identical_answers", same / n, unit="share", target=(">=", 1.0))
    if gb_s is not None:
        result.add(
            "new_vs_generate_batch",
            (gb_s / max(1, gb_tokens)) / (new_s / max(1, completion)),
            note=f"generated tokens/s; transformers continuous batching on {sub} of the prompts",
        )
    result.add(
        "new_vs_llama_cpp_single_stream",
        (ll_s / max(1, ll_tokens)) / (new_s / max(1, completion)),
        note=f"generated tokens/s; llama.cpp on {sub} of the prompts",
    )
    result.add("achieved_fraction_of_peak", gflops / PEAK_GFLOPS, unit="share", note=f"{gflops:.1f} GFLOP/s")
    result.raw = {
        "answers": n,
        "rounds": cfg["rounds"],
        "old_s": round(old_s, 2),
        "new_s": round(new_s, 2),
        "generate_batch_s": None if gb_s is None else round(gb_s, 2),
        "generate_batch_identical": f"{gb_same} of {sub}",
        "llama_cpp_s": round(ll_s, 2),
        "llama_cpp_tokens_per_s": round(ll_tokens / ll_s, 1),
        "new_tokens_per_s": round(completion / new_s, 1),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "parameters": params,
        "achieved_gflops": round(gflops, 2),
        "threads": list(gen.threads) if gen.threads else None,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    return result


def _generate_batch(gen, convos, max_new_tokens: int, reference: list[str]) -> tuple[float | None, int, int]:
    """transformers' ``generate_batch`` on the prompts' token ids: (seconds, answers equal to ``reference``,
    generated tokens)."""
    import torch
    from transformers import GenerationConfig

    ids = [gen.tokenizer(gen.render(c), add_special_tokens=False)["input_ids"] for c in convos]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=gen.stop_ids,
        pad_token_id=gen.tokenizer.pad_token_id,
    )
    try:
        with gen._cpu_threads(), torch.inference_mode():
            t0 = time.perf_counter()
            outs = gen.model.generate_batch(ids, generation_config=config)
            seconds = time.perf_counter() - t0
    except Exception as exc:  # an unsupported configuration on CPU is a result too
        print(f"  generate_batch failed: {type(exc).__name__}: {exc}", flush=True)
        return None, 0, 0
    ordered = sorted(outs.values(), key=lambda o: int(o.request_id.rpartition("_")[2]))
    texts = [gen.tokenizer.decode(o.generated_tokens, skip_special_tokens=True).strip() for o in ordered]
    tokens = sum(len(o.generated_tokens) for o in ordered)
    return seconds, sum(a == b for a, b in zip(texts, reference, strict=False)), tokens


def _llama_cpp(convos, settings) -> tuple[float, int]:
    from bakeoff.models.embedded import gguf_path
    from bakeoff.models.llama_cpp_backend import LlamaCppGenerator

    llm = LlamaCppGenerator(gguf_path("smollm2-135m-instruct"))
    llm.generate(convos[:1], settings)  # warm-up
    t0 = time.perf_counter()
    outs = llm.generate(convos, settings)
    return time.perf_counter() - t0, sum(o.completion_tokens for o in outs)


def main(argv: list[str] | None = None) -> int:
    return cli("bench_decoding", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
