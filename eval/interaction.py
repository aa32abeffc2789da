"""Fine-tune × RAG: do fine-tuning and retrieval add up, overlap or interfere?

A recipe that holds the four cells of the 2×2 — recognised from the run's candidate facts (``agent`` and
``model`` in ``manifest.json``) —

* **base**: a ``fewshot`` candidate on the base model (the one with the fewest examples),
* **rag**: a ``rag`` candidate on the base model (preferably with the same ``k`` as ``finetuned_rag``),
* **finetuned**: a ``finetuned`` candidate (closed book),
* **finetuned_rag**: a ``rag`` candidate with ``model: candidate:<finetuned>``,

gets, per question ``q`` and in the headline metric's direction (+ is better)::

    finetune effect    = mean_q [ (F - B) + (FR - R) ] / 2
    RAG effect         = mean_q [ (R - B) + (FR - F) ] / 2
    interaction        = mean_q [ (FR - F) - (R - B) ]

each with a paired bootstrap interval over questions (the four cells resampled together). Reading: the
interaction's interval holds 0 → they **add up**; it is below 0 → they **overlap** (together they gain less
than the sum of their gains), or **interfere** when the combination is also below the better single cell;
above 0 → they **reinforce** each other.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bakeoff.run.documents.decision import Effect, Interaction
from bakeoff.run.documents.manifest import CandidateFacts

__all__ = ["find_cells", "interaction_effects"]

CELLS = ("base", "rag", "finetuned", "finetuned_rag")


def _k(facts: CandidateFacts) -> int:
    k = (facts.model_extra or {}).get("k")
    return k if isinstance(k, int) else 0


def find_cells(facts: Mapping[str, CandidateFacts], candidates: list[str]) -> dict[str, str] | None:
    """The four cells among ``candidates`` (names that have scores), or ``None`` when one is missing."""
    usable = {c: facts[c] for c in candidates if c in facts}
    for f_name, f in usable.items():
        if f.agent != "finetuned" or not f.model:
            continue
        base_model = f.model
        combined = [c for c, x in usable.items() if x.agent == "rag" and x.model == f"candidate:{f_name}"]
        rags = [c for c, x in usable.items() if x.agent == "rag" and x.model == base_model]
        bases = [c for c, x in usable.items() if x.agent == "fewshot" and x.model == base_model]
        if not (combined and rags and bases):
            continue
        fr = combined[0]
        rag = min(rags, key=lambda c: (_k(usable[c]) != _k(usable[fr]), rags.index(c)))
        base = min(bases, key=lambda c: (_k(usable[c]), bases.index(c)))
        return {"base": base, "rag": rag, "finetuned": f_name, "finetuned_rag": fr}
    return None


def _effects(y: np.ndarray) -> np.ndarray:
    """Rows = questions, columns = the cells in :data:`CELLS`; returns (finetune, rag, interaction)."""
    b, r, f, fr = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
    return np.stack([((f - b) + (fr - r)) / 2, ((r - b) + (fr - f)) / 2, (fr - f) - (r - b)], axis=-1)


def interaction_effects(
    per_question: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    cells: Mapping[str, str],
    metric: str,
    *,
    higher_is_better: bool = True,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interaction | None:
    """Main effects and interaction of the four cells on ``metric`` (``None``: fewer than 2 shared questions).

    Args:
        per_question: candidate -> question id -> metric -> value (``scores.json``'s ``per_answer``).
        cells: :data:`CELLS` -> candidate name (see :func:`find_cells`).
        metric: a per-answer metric.
        higher_is_better: the metric's direction; effects are reported with + meaning better.
        resamples, confidence, seed: the paired bootstrap over questions.
    """
    names = [cells[c] for c in CELLS]
    first = per_question.get(names[0], {})
    shared = [
        q for q in first if all(per_question.get(n, {}).get(q, {}).get(metric) is not None for n in names)
    ]
    if len(shared) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    y = sign * np.array([[per_question[n][q][metric] for n in names] for q in shared], dtype=float)
    per_q = _effects(y)
    estimate = per_q.mean(axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(shared), size=(resamples, len(shared)))
    boot = per_q[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail], axis=0)
    effects = [Effect(estimate=float(estimate[i]), ci=[float(lo[i]), float(hi[i])]) for i in range(3)]
    means = y.mean(axis=0)
    reading = _reading(effects[2], combined=means[3], best_single=max(means[1], means[2]))
    out = Interaction(
        cells=dict(cells),
        metric=metric,
        n=len(shared),
        finetune=effects[0],
        rag=effects[1],
        interaction=effects[2],
        reading=reading,
    )
    out.sentence = _sentence(out)
    return out


def _reading(effect: Effect, *, combined: float, best_single: float) -> str:
    lo, hi = effect.ci or (0.0, 0.0)
    if lo <= 0 <= hi:
        return "add up"
    if hi < 0:
        return "interfere" if combined < best_single else "overlap"
    return "reinforce"


def _fmt(e: Effect) -> str:
    lo, hi = e.ci or (float("nan"), float("nan"))
    return f"{e.estimate:+.2f} [{lo:+.2f}, {hi:+.2f}]"


_MEANING = {
    "add up": "the interaction's interval holds 0: RAG adds about as much on the fine-tune as on the base model",
    "overlap": "RAG adds less on the fine-tune than on the base model: the two teach partly the same facts",
    "interfere": "together they do worse than the better of the two alone",
    "reinforce": "RAG adds more on the fine-tune than on the base model",
}


def _sentence(x: Interaction) -> str:
    return (
        f"fine-tuning {_fmt(x.finetune)}, RAG {_fmt(x.rag)}, interaction {_fmt(x.interaction)} on {x.metric} "
        f"({x.n} questions): they {x.reading} — {_MEANING[x.reading]}."
    )
