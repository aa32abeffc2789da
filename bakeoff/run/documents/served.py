"""``scores.json`` → ``served.<NAME@FORM>``: how a served form of a fine-tune compares with the training-time
model it was exported from (built by :func:`bakeoff.eval.served.served_parity`)."""

from __future__ import annotations

from pydantic import Field

from bakeoff.run.documents.base import Document, Number

__all__ = ["ChangedAnswer", "ServedDiagnosis", "ServedParity"]


class ChangedAnswer(Document):
    """One question whose headline value moved most between the training-time model and the served form."""

    question_id: str = ""
    question: str = ""
    trained: str = ""
    """The training-time model's answer (cut to 300 characters)."""
    served: str = ""
    trained_value: Number | None = None
    served_value: Number | None = None
    delta: Number = 0.0
    """Served minus trained, on the headline metric."""


class ServedDiagnosis(Document):
    """Signs that a served form fails outright — the usual symptoms of a template or EOS mismatch."""

    kind: str = "template/EOS mismatch"
    n: int = 0
    """Answers judged."""
    to_token_limit: int = 0
    """Answers that ran to ``max_new_tokens`` (no end of turn)."""
    role_markers: int = 0
    """Answers containing turn or role markers (``<|im_start|>``, ``assistant``, the stop tokens …)."""
    empty: int = 0
    trained_share: Number = 0.0
    """Share of the training-time model's answers with any of these signs (the baseline)."""
    share: Number = 0.0
    """Share of the served form's answers with any of these signs."""
    template: str = ""
    """The template that was sent (Ollama's Go template, or the GGUF's chat template llama.cpp rendered)."""
    stop: list[str] = Field(default_factory=list)


class ServedParity(Document):
    """Agreement and paired difference of one served form with its training-time candidate."""

    candidate: str = ""
    """The training-time candidate."""
    form: str = ""
    """``f16``, ``q8_0`` or ``q4_k_m``."""
    engine: str = ""
    """``llama.cpp`` (in-process) or ``ollama``."""
    metric: str | None = None
    """The headline metric the difference is measured on."""
    n: int = 0
    """Questions both answered."""
    identical: int = 0
    """Answers identical to the training-time model's (greedy decoding, whitespace at the ends ignored)."""
    identical_share: Number | None = None
    tolerance: Number = 0.1
    moved: int = 0
    """Questions whose headline value changed by more than ``tolerance``."""
    moved_share: Number | None = None
    mean_trained: Number | None = None
    mean_served: Number | None = None
    delta: Number | None = None
    """Mean of served minus trained, per question."""
    ci: list[Number] | None = None
    p: Number | None = None
    test: str = "paired sign-flip permutation test"
    significant_drop: bool = False
    """The served form is significantly worse (p < alpha, in the metric's direction)."""
    cause: str | None = None
    """What the drop most likely is: ``quantization loss``, ``template/EOS mismatch``, ``export divergence``."""
    diagnosis: ServedDiagnosis | None = None
    most_changed: list[ChangedAnswer] = Field(default_factory=list)
    """The answers that moved most, largest change first (at most 5)."""
