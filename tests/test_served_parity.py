"""Parity of served forms with the training-time model, on answer rows scored with the real rougeL metric
(no model runs here; tests/test_served.py runs the whole path)."""

from __future__ import annotations

import pytest

from bakeoff.core import Question
from bakeoff.eval.scoring import ScoringSettings, score_answers
from bakeoff.eval.served import diagnose, served_parity, served_warnings
from bakeoff.serving.settings import ServedForms

REFERENCES = [
    "The agreement starts on 1 March 2024.",
    "The initial term is thirty six months.",
    "Invoices are payable within thirty days.",
    "The laws of England and Wales govern it.",
    "Either party may terminate on ninety days notice.",
    "The uptime commitment is 99.9 percent per month.",
    "The customer owns all deliverables.",
    "Liability is capped at the fees of twelve months.",
]
QUESTIONS = [Question(id=f"q{i}", question=f"question {i}?", reference=r) for i, r in enumerate(REFERENCES)]


def _rows(texts: list[str], *, truncated: bool = False) -> list[dict]:
    return [
        {
            "question_id": q.id,
            "question": q.question,
            "reference": q.reference,
            "answer": t,
            "truncated": truncated,
        }
        for q, t in zip(QUESTIONS, texts, strict=True)
    ]


def _score(answers: dict[str, list[dict]], served: dict[str, dict]):
    scores = score_answers(QUESTIONS, answers, ScoringSettings(task="qa", metrics=["rougeL"]))
    parity = served_parity(scores, answers, served, permutations=2000, resamples=500)
    return scores, parity


def test_an_exact_export_agrees_on_every_answer_and_warns_nothing():
    trained = _rows(REFERENCES)
    facts = {"of": "lora", "form": "f16", "engine": "llama.cpp", "tolerance": 0.1}
    scores, parity = _score({"lora": trained, "lora@f16": _rows(REFERENCES)}, {"lora@f16": facts})
    p = parity["lora@f16"]
    assert (p.n, p.identical, p.identical_share, p.moved, p.moved_share) == (8, 8, 1.0, 0, 0.0)
    assert p.delta == 0.0 and not p.significant_drop and p.diagnosis is None and p.cause is None
    assert p.most_changed == [] and served_warnings(scores) == []
    assert scores.served["lora@f16"].candidate == "lora"


def test_a_lossy_quantization_is_a_significant_drop_with_its_most_changed_answers():
    lossy = [" ".join(r.split()[:2]) for r in REFERENCES]  # every answer cut to its first two words
    facts = {"of": "lora", "form": "q4_k_m", "engine": "llama.cpp", "tolerance": 0.1}
    scores, parity = _score({"lora": _rows(REFERENCES), "lora@q4_k_m": _rows(lossy)}, {"lora@q4_k_m": facts})
    p = parity["lora@q4_k_m"]
    assert p.identical == 0 and p.moved == 8 and p.delta < -0.3 and p.ci[1] < 0 and p.p < 0.05
    assert p.significant_drop and p.cause == "quantization loss" and p.diagnosis is None
    assert len(p.most_changed) == 5 and all(c.delta < 0 for c in p.most_changed)
    deltas = [abs(c.delta) for c in p.most_changed]
    assert deltas == sorted(deltas, reverse=True)
    [line] = served_warnings(scores)
    lo, hi = p.ci
    assert line.startswith(
        f"lora@q4_k_m: −{abs(p.delta):.2f} [−{abs(lo):.2f}, −{abs(hi):.2f}] vs lora on rougeL"
    )
    assert "— quantization loss" in line and "most changed:" in line


def test_tolerance_decides_which_answers_moved():
    slightly = [r.replace("The ", "") for r in REFERENCES]
    answers = {"lora": _rows(REFERENCES), "lora@q8_0": _rows(slightly)}
    loose = {"of": "lora", "form": "q8_0", "engine": "llama.cpp", "tolerance": 0.5}
    tight = {**loose, "tolerance": 0.0}
    _, p_loose = _score(answers, {"lora@q8_0": loose})
    _, p_tight = _score(answers, {"lora@q8_0": tight})
    changed = sum(a != b for a, b in zip(REFERENCES, slightly, strict=True))
    assert p_loose["lora@q8_0"].moved == 0 and p_tight["lora@q8_0"].moved == changed


def test_endless_answers_with_role_markers_are_a_template_mismatch():
    endless = [f"{r} <|im_start|>user\nAnd then? <|im_start|>assistant\n" for r in REFERENCES[:6]] + ["", ""]
    trained = _rows(REFERENCES)
    bad = _rows(endless, truncated=True)
    d = diagnose(bad, trained, template="{{ .Prompt }}", stop=["<|im_end|>"])
    assert d is not None and d.kind == "template/EOS mismatch"
    assert (d.n, d.to_token_limit, d.role_markers, d.empty) == (8, 8, 6, 2)
    assert d.share == 1.0 and d.trained_share == 0.0 and d.template == "{{ .Prompt }}"
    facts = {"of": "lora", "form": "q8_0", "engine": "ollama", "tolerance": 0.1, "template": "{{ .Prompt }}"}
    scores, parity = _score({"lora": trained, "lora@ollama-q8_0": bad}, {"lora@ollama-q8_0": facts})
    assert parity["lora@ollama-q8_0"].cause == "template/EOS mismatch"
    [line] = served_warnings(scores)
    assert "template/EOS mismatch: 8/8 answers ran to the token limit, 6/8 contain role markers" in line
    assert "template sent: '{{ .Prompt }}'" in line


def test_a_diagnosis_needs_two_answers_and_more_signs_than_the_trained_model():
    one = _rows(REFERENCES, truncated=True)[:1]
    assert diagnose(one, _rows(REFERENCES)[:1]) is None
    rambling = _rows(REFERENCES, truncated=True)  # the trained model runs long too: not the export's fault
    assert diagnose(_rows(REFERENCES, truncated=True), rambling) is None
    errors = [{**r, "error": "boom"} for r in _rows(REFERENCES, truncated=True)]
    assert diagnose(errors, _rows(REFERENCES)) is None  # failed answers are not judged


def test_forms_are_validated():
    assert ServedForms(forms=["f16", "q8_0"]).tolerance == 0.1
    with pytest.raises(ValueError, match="q8_0 more than once"):
        ServedForms(forms=["q8_0", "q8_0"])
    with pytest.raises(ValueError, match="forms"):
        ServedForms(forms=[])
    with pytest.raises(ValueError):
        ServedForms(forms=["q5_k"])
