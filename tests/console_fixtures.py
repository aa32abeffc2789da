"""Run folders in the formats the console reads, for tests that need what a small real run does not have:
fine-tune training logs, RAG contexts, metric intervals, a corrupt run."""

from __future__ import annotations

import json
from pathlib import Path

QUESTIONS = [
    ("q1", "Which state's law governs the agreement?", "The laws of Delaware."),
    ("q2", "How many days does the customer have to pay an invoice?", "Thirty days."),
    ("q3", "What uptime does Annex A promise?", "99.9 percent per month."),
    ("q4", "Who owns the work product?", "The customer owns all deliverables."),
]
ANSWERS = {
    "rag": ["The laws of Delaware.", "Thirty days from the invoice date.", "99.9%.", "The customer."],
    "lora": ["Delaware law.", "Sixty days.", "99 percent.", "The provider owns it."],
    "lora+rag": ["The laws of Delaware.", "Thirty days.", "99.9 percent per month.", "The customer."],
}
METRICS = ["rougeL", "token_f1"]


def _score(answer: str, reference: str) -> float:
    a, r = set(answer.lower().strip(".").split()), set(reference.lower().strip(".").split())
    return round(len(a & r) / max(len(a | r), 1), 3)


def write_rich_run(
    runs_dir: Path, recipe: str = "contract-rag", run_id: str = "20260101-120000-abcd"
) -> Path:
    """A complete run with three candidates: RAG answers with contexts, per-metric 95% intervals, and
    training logs (metrics.jsonl + summary.json) for the two fine-tuned candidates."""
    path = Path(runs_dir) / recipe / run_id
    path.mkdir(parents=True)
    (path / "recipe.yaml").write_text(f"name: {recipe}\n", encoding="utf-8")
    names = list(ANSWERS)
    manifest = {
        "run_id": run_id,
        "recipe": recipe,
        "status": "complete",
        "started_at": "2026-01-01T12:00:00+00:00",
        "ended_at": "2026-01-01T12:05:30+00:00",
        "task": "qa",
        "n_questions": len(QUESTIONS),
        "answering": names,
        "candidates": {n: {"agent": "rag" if "rag" in n else "finetuned"} for n in names},
        "timings_s": {"prepare": 100.0, "answer": 200.0, "score": 30.0},
    }
    rows, per_answer, cands = [], {}, {}
    for name in names:
        per_answer[name] = {}
        values = {m: [] for m in METRICS}
        for (qid, question, reference), answer in zip(QUESTIONS, ANSWERS[name], strict=True):
            contexts = (
                [
                    {
                        "text": f"Clause about {question[:20]}…",
                        "source": "master-services-agreement.md",
                        "score": 0.81,
                    },
                    {
                        "text": "Annex A, section 2: availability.",
                        "source": "annex-a-service-levels.md",
                        "score": 0.64,
                    },
                ]
                if "rag" in name
                else []
            )
            rows.append(
                {
                    "candidate": name,
                    "question_id": qid,
                    "question": question,
                    "reference": reference,
                    "answer": answer,
                    "latency_s": 0.5 if "rag" in name else 0.3,
                    "prompt_tokens": 300 if "rag" in name else 40,
                    "completion_tokens": 12,
                    "error": None,
                    "label": None,
                    "contexts": contexts,
                    "truncated": False,
                }
            )
            s = _score(answer, reference)
            per_answer[name][qid] = {m: s for m in METRICS}
            for m in METRICS:
                values[m].append(s)
        cands[name] = {
            "metrics": {
                m: {
                    "mean": sum(v) / len(v),
                    "n": len(v),
                    "missing": 0,
                    "ci_low": max(0.0, sum(v) / len(v) - 0.1),
                    "ci_high": min(1.0, sum(v) / len(v) + 0.1),
                }
                for m, v in values.items()
            },
            "errors": 0,
            "n": len(QUESTIONS),
            "latency_s": {"mean": 0.5, "p50": 0.5, "p95": 0.6},
            "tokens": {"prompt": 1200, "completion": 48},
            "truncated": 0,
        }
    scores = {
        "task": "qa",
        "metrics": METRICS,
        "n_questions": len(QUESTIONS),
        "candidates": cands,
        "per_answer": per_answer,
    }
    (path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (path / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for name, offset in (("lora", 0.0), ("lora+rag", 0.15)):
        folder = path / "training" / name
        folder.mkdir(parents=True)
        lines = []
        for step in range(0, 60, 10):
            lines.append(
                {
                    "step": step,
                    "epoch": round(step / 20, 2),
                    "train_loss": round(3.0 - step * 0.03 + offset, 3),
                    "val_loss": round(
                        3.1 - step * 0.02 + offset + (0.002 * (step - 40) ** 2 / 10 if step > 40 else 0), 3
                    )
                    if step % 20 == 0
                    else None,
                    "learning_rate": 2e-4,
                }
            )
        (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
        summary = {
            "method": "lora",
            "requested_method": "qlora",
            "select": "best_val_loss",
            "selected_step": 40,
            "train_examples": 120,
            "val_examples": 14,
            "hyperparameters": {"r": 8, "alpha": 16, "learning_rate": 2e-4, "epochs": 3, "batch_size": 4},
            "final_train_loss": lines[-1]["train_loss"],
            "final_val_loss": None,
            "best_val_loss": 2.3 + offset,
            "cache_hit": False,
            "train_seconds": 812.5,
            "tokens_per_second": 1450.0,
        }
        (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return path


def write_corrupt_run(runs_dir: Path, recipe: str = "broken", run_id: str = "20250101-000000-dead") -> Path:
    """A run folder whose manifest is not JSON."""
    path = Path(runs_dir) / recipe / run_id
    path.mkdir(parents=True)
    (path / "manifest.json").write_text('{"run_id": "20250101-000000-dead", "status": ', encoding="utf-8")
    return path
