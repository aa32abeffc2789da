"""Where the CPU time goes: torch.profiler over a LoRA training step and over batched decoding steps.

    python -m bench.profile_ops            # prints the top operators of each (about a minute)

Not a benchmark (no ratio): the evidence behind the "what limits it" notes in docs/benchmarks.md. It uses the
embedded model on the threads bakeoff would choose now, the quickstart's LoRA shape and data, and the
``fewshot`` agent's prompts.
"""

from __future__ import annotations

import sys
import time

from bench.common import quiet_libraries


def _table(prof, n: int = 12) -> str:
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=n, max_name_column_width=40)


def profile_training(threads: int) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakeoff.models.embedded import ensure_imported
    from bakeoff.models.refs import DEFAULT_MODEL
    from bench.bench_training import SYSTEM

    torch.set_num_threads(threads)
    path = ensure_imported(DEFAULT_MODEL.name, quiet=True)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    texts = [
        tok.apply_chat_template(
            [
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": f"What does clause {i} of the agreement say about notice periods?",
                },
                {"role": "assistant", "content": "Either party may terminate on 90 days' written notice."},
            ],
            tokenize=False,
        )
        for i in range(8)
    ]
    batch = tok(texts, return_tensors="pt", padding=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        out = model(**batch, labels=batch["input_ids"])
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    tokens = int(batch["attention_mask"].sum())
    return (
        f"LoRA training step: batch {tuple(batch['input_ids'].shape)}, {tokens} tokens, {threads} thread(s), "
        f"{time.perf_counter() - t0:.2f} s (profiled)\n" + _table(prof)
    )


def profile_decoding(threads: int, rows: int = 16, steps: int = 8) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.bench_answering import make_agent, questions

    torch.set_num_threads(threads)
    agent = make_agent(32, rows)
    gen = agent.generator()
    prompts = [gen.render(agent.conversation(q.question)) for q in questions(rows)]
    enc = gen.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = gen.model(**enc, use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - t0
        past, nxt, mask = (
            out.past_key_values,
            out.logits[:, -1].argmax(-1, keepdim=True),
            enc["attention_mask"],
        )
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=1)
                o = gen.model(input_ids=nxt, attention_mask=mask, past_key_values=past, use_cache=True)
                past, nxt = o.past_key_values, o.logits[:, -1].argmax(-1, keepdim=True)
            per_step = (time.perf_counter() - t0) / steps
    return (
        f"Decoding: {rows} rows, prompt {tuple(enc['input_ids'].shape)}, {threads} thread(s); prefill "
        f"{prefill:.2f} s ({int(enc['attention_mask'].sum()) / prefill:.0f} tokens/s), decoding step {per_step * 1000:.0f} "
        f"ms ({rows / per_step:.0f} tokens/s, profiled)\n" + _table(prof)
    )


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    from bakeoff.threads import cpu_threads

    threads, why = cpu_threads()
    print(f"threads: {threads} ({why})\n", flush=True)
    print(profile_training(threads), flush=True)
    print(profile_decoding(threads), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
