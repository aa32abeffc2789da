"""The ``finetuned`` agent: the base model trained on your data (LoRA, QLoRA or full), answering closed-book.

``prepare()`` trains — or reuses the cached weights of an unchanged candidate — and writes the curves and
artifacts to ``<run>/training/<name>/``; ``generator()`` is the trained model, so ``candidate:NAME`` (RAG
over a fine-tune) answers with it too. Questions are asked exactly as the training examples were rendered:
the same system prompt, the same chat (or Alpaca) template. With ``register:`` the agent is
:class:`~bakeoff.agents.base.Registrable`: the runner registers the trained model in Ollama after preparation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from bakeoff.agents.base import Agent, AgentContext, AgentSettings, Registrable, Servable
from bakeoff.agents.prompts import QA_SYSTEM
from bakeoff.core import Answer, Message, Query
from bakeoff.models.refs import ModelRef, kind_of, parse_model_ref, scheme_forms
from bakeoff.serving.settings import (
    OllamaRegistration,
    OllamaRegistrationMixin,
    ServedForms,
    ServedFormsMixin,
)
from bakeoff.training.config import TrainSettings

__all__ = ["FineTunedAgent", "FineTunedSettings", "local_model_dir"]


class FineTunedSettings(AgentSettings, OllamaRegistrationMixin, ServedFormsMixin):
    """A candidate whose model is fine-tuned on the recipe's data before it answers (closed-book); with
    ``register:`` the trained model is exported to GGUF and registered in Ollama after training."""

    agent: Literal["finetuned"] = "finetuned"
    train: TrainSettings = Field(
        ..., description="What to train on and how (method, data, hyper-parameters)."
    )
    system: str | None = Field(
        QA_SYSTEM,
        description="System prompt before every instruct training example and every question (the same as the "
        "`fewshot` default, so a comparison changes only the weights); null: the chat template's own default.",
    )

    @model_validator(mode="after")
    def _trainable_model(self, info: ValidationInfo) -> FineTunedSettings:
        ref = self.model
        if ref is None:
            raw = (info.context or {}).get("base_model")
            try:
                ref = parse_model_ref(raw) if isinstance(raw, str) else None
            except ValueError:
                ref = None  # reported at base_model
        if ref is not None and not kind_of(ref).can("weights"):
            where = "model" if self.model is not None else "base_model"
            raise ValueError(
                f"{where} {ref} cannot be fine-tuned here: training needs local weights "
                f"({scheme_forms('weights')}); set `model:` on this candidate"
            )
        return self


def local_model_dir(ref: ModelRef) -> Path:
    """The folder that holds a model's weights (an embedded model is imported on first use; a hub id must
    already be in the Hugging Face cache — nothing is downloaded).

    Raises:
        TrainingError: the weights are not on this machine.
    """
    from bakeoff.models.weights import LocalWeightsError, local_weights
    from bakeoff.training.quantization import TrainingError

    try:
        return local_weights(ref)
    except LocalWeightsError as exc:
        raise TrainingError(str(exc)) from None


class FineTunedAgent(Agent, Registrable, Servable):
    """Trains (or reuses) weights in :meth:`prepare`, then answers with them."""

    settings_model = FineTunedSettings
    settings: FineTunedSettings

    def __init__(self, settings: FineTunedSettings, ctx: AgentContext) -> None:
        super().__init__(settings, ctx)
        self.trained = None  # bakeoff.training.trainer.TrainedModel, once prepared
        self._generator = None

    # -- training ------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Train, or reuse the cached weights of an unchanged candidate (writing to ``ctx.folder``)."""
        if self.trained is None:
            self.trained = self._train()

    def registration(self) -> OllamaRegistration | None:
        return self.settings.ollama_registration

    def served_forms(self) -> ServedForms | None:
        """The served forms the recipe asks to evaluate (``serve:``), or ``None``."""
        return self.settings.serve

    def _train(self):
        from bakeoff.training.data import ALPACA_CHAT_TEMPLATE, build_training_data
        from bakeoff.training.trainer import TrainRequest, train_candidate

        s, ctx = self.settings, self.ctx
        ref = s.model or ctx.base_model
        chunks = self._corpus_chunks() if s.train.data.kind == "causal" else None
        path = ctx.data_path(s.train.data.path) if s.train.data.path is not None else None
        data = build_training_data(s.train.data, system=s.system, seed=s.train.seed, chunks=chunks, path=path)
        for message in data.notes:
            ctx.console.print(f"{self.name}: {message}")
        request = TrainRequest(
            candidate=self.name,
            base_model=str(ref),
            model_dir=local_model_dir(ref),
            settings=s.train,
            data=data,
            chat_template=ALPACA_CHAT_TEMPLATE if s.train.data.template == "alpaca" else None,
        )
        return train_candidate(
            request,
            console=ctx.console,
            note=ctx.note,
            out_dir=ctx.folder,
            retrain=ctx.retrain,
            train_allowed=ctx.may_train,
        )

    def _corpus_chunks(self) -> list[str]:
        from bakeoff.training.quantization import TrainingError

        if self.ctx.corpus is None:
            raise TrainingError(f"{self.name}: data.kind causal needs the recipe's `corpus:` block")
        return self.ctx.corpus.chunk_texts()

    # -- answering -----------------------------------------------------------------------------------------
    def generator(self):
        """The trained model (what ``candidate:NAME`` resolves to), loaded once."""
        if self._generator is None:
            from bakeoff.training.trainer import load_trained

            self.prepare()
            self._generator = load_trained(self.trained, name=f"candidate:{self.name}")
        return self._generator

    def conversation(self, question: str) -> list[Message]:
        """The chat messages sent for one question (rendered like the training prompts)."""
        head = [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        return [*head, {"role": "user", "content": question}]

    def answer(self, questions: Sequence[Query]) -> list[Answer]:
        outs = self.generator().generate(
            [self.conversation(q.question) for q in questions], self.settings.generation
        )
        return [Answer.from_generation(q.id, out) for q, out in zip(questions, outs, strict=True)]

    def chat(self, messages: list[Message]) -> Iterator[str]:
        head = [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        yield from self.generator().stream([*head, *messages], self.settings.generation)

    def describe(self) -> dict[str, Any]:
        if self.trained is None:
            return {}
        summary = self.trained.summary
        keys = (
            "method",
            "requested_method",
            "select",
            "selected_step",
            "total_steps",
            "cache_key",
            "cache_hit",
            "resumed_from_step",
            "train_seconds",
            "tokens_per_second",
            "initial_val_loss",
            "final_val_loss",
            "best_val_loss",
            "test_loss",
            "peak_gpu_memory_gb",
        )
        return {"training": {k: summary.get(k) for k in keys}}
